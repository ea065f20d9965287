"""The FDS studies' machinery: sharing as window sums, the MSE and Theorem 4.1's terms, the
resumable outer loop, HD, the regret bookkeeping and the data fallback."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from hpolab import run
from hpolab.cache import StudyCache
from hpolab.data import data_root
from hpolab.history import History
from hpolab.hypergrad import box, classification_task, forward_mode, reverse_mode, schedule, sign_descent
from hpolab.hypergrad.task import logistic_regression_task
from hpolab.methods import fds as fds_loop
from hpolab.methods import make_tuner
from hpolab.problems.tuning import tuning_problem
from hpolab.studies import fds, fds_cifar, fds_noise, fds_schedules, fds_vs_hpo
from tasks import noisy_linear_labels


needs_mnist = pytest.mark.skipif(not (data_root() / "MNIST" / "raw").exists(),
                                 reason="needs the real MNIST in data/MNIST/raw (see data/README.md)")


def double_task():
    """A 5-8-2 tanh network in float64 on 120 / 60 points, batches of 20."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(120, 5, generator=generator, dtype=torch.float64)
    y = (x[:, 0] - x[:, 2] > 0).long()
    xv = torch.randn(60, 5, generator=generator, dtype=torch.float64)
    yv = (xv[:, 0] - xv[:, 2] > 0).long()
    torch.manual_seed(0)
    return classification_task(nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2)), (x, y), (xv, yv),
                               batch_size=20, dtype=torch.float64)


def test_sharing_a_rate_over_a_window_sums_the_per_step_hypergradients():
    task = double_task()
    T, W = 12, 4
    per_step = reverse_mode()(task, schedule(T, lr=0.1, momentum=0.9, windows={"lr": 1}), 3).grad
    shared = forward_mode()(task, schedule(T, lr=0.1, momentum=0.9, windows={"lr": W}), 3).grad
    torch.testing.assert_close(shared, per_step.reshape(-1, W).sum(1), rtol=1e-9, atol=1e-12)


def test_window_means_average_each_window_including_a_short_last_one():
    g = np.arange(10.0)[None, :]
    np.testing.assert_allclose(fds_noise.window_means(g, 4)[0], [1.5] * 4 + [5.5] * 4 + [8.5] * 2)


def test_mse_of_independent_noise_falls_as_one_over_w_and_stays_under_the_bound():
    rng = np.random.default_rng(0)
    g = 1.0 + 0.5 * rng.standard_normal((4000, 24))
    windows = [1, 2, 4, 8, 24]
    mse = fds_noise.mse_by_window(g, windows, mu=np.ones(24))
    np.testing.assert_allclose(mse, 0.25 / np.array(windows), rtol=0.08)
    terms = fds_noise.theorem_terms(g)
    assert terms.c < 0.1 and terms.epsilon < 0.05
    assert all(terms.bound(w) >= m * 0.95 for w, m in zip(windows, mse))


def test_a_shared_offset_per_seed_is_not_averaged_away():
    rng = np.random.default_rng(1)
    g = rng.standard_normal((500, 1)) + 0.01 * rng.standard_normal((500, 20))  # one draw per seed
    mse = fds_noise.mse_by_window(g, [1, 20])
    assert mse[1] == pytest.approx(mse[0], rel=0.01)
    assert fds_noise.theorem_terms(g).c > 0.99


def test_a_drifting_mean_makes_wide_windows_worse():
    mu = np.linspace(0, 10, 50)
    g = mu + 0.1 * np.random.default_rng(2).standard_normal((200, 50))
    table = fds_noise.mse_by_window(g, [1, 5, 50])
    assert table[2] > table[1] > 0 and table[2] > table[0]
    terms = fds_noise.theorem_terms(g)
    assert terms.bias(50) > terms.noise(50)


class Counting:
    """An estimator that counts its calls."""

    def __init__(self, estimator):
        self.estimator, self.calls = estimator, 0

    def __call__(self, task, hyper, seed):
        self.calls += 1
        return self.estimator(task, hyper, seed)


def test_an_interrupted_outer_loop_resumes_from_its_cached_steps(tmp_path):
    task = double_task()
    hyper = schedule(10, lr=0.0, momentum=0.5, windows={"lr": 5}, dtype=torch.float64)
    outer = sign_descent(0.05, box(hyper, {"lr": (0.0, 1.0)}))
    cache = StudyCache("test", {"case": 1}, root=tmp_path)
    first = Counting(reverse_mode())
    stopped = fds_loop.learn(task, hyper, first, outer, 4, cache=cache, progress=False, should_stop=lambda: True)
    assert stopped.status == "stopped" and len(stopped.frame) == 1 and first.calls == 1
    again = Counting(reverse_mode())
    resumed = fds_loop.learn(task, hyper, again, outer, 4, cache=cache, progress=False)
    assert again.calls == 3 and resumed.status == "finished" and len(resumed.frame) == 5
    fresh = fds_loop.learn(task, hyper, reverse_mode(), outer, 4, progress=False)
    pd.testing.assert_frame_equal(resumed.frame.drop(columns="wall_time"), fresh.frame.drop(columns="wall_time"))
    assert fresh.frame["lr[0]"].iloc[1] == pytest.approx(0.05)  # one sign step up from 0
    longer = Counting(reverse_mode())
    fds_loop.learn(task, hyper, longer, outer, 6, cache=cache, progress=False)
    assert longer.calls == 2  # steps 4 and 5; 0 to 3 come from the cache


def test_a_diverging_outer_step_ends_the_run_cleanly_when_asked_to_stop():
    task = double_task()
    hyper = schedule(10, lr=0.5, momentum=0.9, dtype=torch.float64)
    history = fds_loop.learn(task, hyper, reverse_mode(), sign_descent(1e4), 3, on_diverge="stop", progress=False)
    assert history.status == "diverged" and "diverged at outer step 1" in history.message
    assert len(history.frame) == 2 and np.isfinite(history.frame["objective"].iloc[0])


def test_a_diverged_training_halves_the_last_outer_step_and_undoes_half_of_it():
    """The loop used to end at the first diverged training, leaving the schedule that diverged
    as the method's result (study 09 at cpu scale: FDS and W = 1 ended at outer steps 12 and 19)."""
    task = double_task()
    hyper = schedule(10, lr=0.1, momentum=0.9, dtype=torch.float64)
    exact = reverse_mode()

    def unstable(task, hyper, seed):  # training "diverges" above lr = 0.6
        found = exact(task, hyper, seed)
        if float(hyper.values["lr"][0]) <= 0.6:
            return found
        return found._replace(loss=math.nan, grad=None, diverged=True, message="the rate is above 0.6")

    history = fds_loop.learn(task, hyper, unstable, sign_descent(0.8), 8, progress=False)
    frame = history.frame
    diverged = frame.index[frame["kind"] == "diverged"].tolist()
    assert history.status == "finished" and diverged and "halved" in history.message
    k = diverged[0]
    lr = frame["lr"]
    assert (k, lr[k - 1], lr[k]) == (1, pytest.approx(0.1), pytest.approx(0.9))
    assert lr[k + 1] - lr[k - 1] == pytest.approx((lr[k] - lr[k - 1]) / 2)
    state = sign_descent(0.8).init(torch.tensor([0.9], dtype=torch.float64))
    anchor = torch.tensor([0.1], dtype=torch.float64)
    once = fds_loop.diverged_update(state, anchor)
    twice = fds_loop.diverged_update(once, anchor)  # repeated divergences close in on the last good point
    assert once.h.item() == pytest.approx(0.5) and twice.h.item() == pytest.approx(0.3)
    assert twice.step_size.item() == pytest.approx(0.2)
    assert np.isfinite(frame["objective"].iloc[-1]) and frame["kind"].iloc[-1] == "final"
    with pytest.raises(ValueError, match="on_diverge"):
        fds_loop.learn(task, hyper, reverse_mode(), sign_descent(1.0), 1, on_diverge="retry", progress=False)


def test_hd_raises_the_learning_rate_from_zero():
    task = double_task()
    history = fds.hd_training(task, 30, 0.01, 0, test=task.data, record_every=10)
    assert history.frame["lr"].iloc[0] > 0 and len(history.frame) == 3
    assert history.frame["objective"].iloc[-1] < math.log(2)


def test_best_hd_is_charged_every_training_as_done_before_its_own():
    task = double_task()
    runs = {rate: fds.hd_training(task, 30, rate, 0, test=task.data, record_every=30)
            for rate in fds.HD_HYPERGRAD_LRS}
    best = fds_vs_hpo.best_hd(task, 30, task.data)
    row = best.frame.iloc[-1]
    assert row["runs"] == len(runs) and row["gradient_evaluations"] == 30 * len(runs)
    assert row["iteration"] == row["gradient_evaluations"] + row["function_evaluations"]
    assert row["objective"] == min(float(h.frame["objective"].iloc[-1]) for h in runs.values())


def test_regret_columns_follow_the_best_validated_finished_configuration():
    frame = pd.DataFrame({"kind": ["start", "trial", "diverged trial", "trial", "trial"],
                          "objective": [2.0, 1.0, 9.0, 0.5, 0.7], "test_error": [0.9, 0.3, 0.9, 0.2, 0.1],
                          "gradient_evaluations": [0, 10, 13, 23, 33], "wall_time": [0, 1, 2, 3, 4.0]})
    history = fds_vs_hpo.with_regret_columns(History(frame, "rs", "RS", "p", 0, config={"method": "random-search"}))
    assert history.frame["runs"].tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(history.frame["found_acc"], [np.nan, 0.7, 0.7, 0.8, 0.8])
    np.testing.assert_allclose(history.frame["found_val"], [np.nan, 1.0, 1.0, 0.5, 0.5])
    result = fds_vs_hpo.HpoResult([history], pd.DataFrame(), reference=0.805, budget=4.0)
    assert result.time_to_regret("random-search", 0.01) == 3.0
    assert math.isnan(result.time_to_regret("random-search", 0.001)) and result.time_to_regret("fds", 0.01) is None


@needs_mnist
def test_svhn_missing_from_the_data_folder_falls_back_to_mnist_with_a_note(tmp_path, monkeypatch):
    from hpolab.data import data_root

    (tmp_path / "MNIST").symlink_to(data_root() / "MNIST")
    monkeypatch.setenv("HPOLAB_DATA", str(tmp_path))
    split, note = fds.image_data("svhn", 100, 50, 20, "cpu")
    assert "MNIST" in note and str(tmp_path / "SVHN") in note
    assert split["train"][0].shape == (100, 1, 28, 28) and split["test"][0].shape[0] == 20


@pytest.mark.parametrize("call, message", [
    (lambda: fds.image_data("imagenet", 10, 10, 10, "cpu"), "dataset"),
    (lambda: fds.image_task({"train": (torch.zeros(2, 1, 28, 28), None)}, "vgg"), "model"),
    (lambda: fds.exact_estimator("adjoint", torch.device("cpu")), "estimator"),
    (lambda: fds_noise.run_study("smoke", lr=0.0), "lr"),
    (lambda: fds_noise.run_study("smoke", windows=[0, 2]), "W"),
    (lambda: fds_noise.run_study("smoke", seeds=1), "seeds"),
    (lambda: fds_schedules.run_study("smoke", W=99), r"W must be an integer in \[1, T\]"),
    (lambda: fds_schedules.run_study("smoke", gamma=0), "gamma"),
    (lambda: fds_schedules.run_study("smoke", methods=("adam",)), "method"),
    (lambda: fds_vs_hpo.run_study("smoke", methods=("grid",)), "method"),
    (lambda: fds_vs_hpo.run_study("huge"), "scale"),
])
def test_bad_arguments_raise_an_error_naming_the_parameter(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@needs_mnist
def test_schedule_panel_draws_live_and_its_plot_menu_switches_to_a_learned_rate():
    panel = fds_schedules.panel({"scale": "smoke", "device": "cpu", "W": 4, "outer_steps": 2})
    assert panel.controls["method"].value == "fds" and panel.controls["W"].value == 4
    panel.controls["W"].value = 8  # the smoke run's T: one rate for the whole run
    panel.start()
    panel.wait(120)
    (history,) = panel.histories
    assert history.status == "finished" and len(history.frame) == 3
    trace = panel.figure.data[0]
    assert list(trace.y) == history.frame["test_accuracy"].tolist()
    assert {"lr", "objective", "test_accuracy"} <= set(panel.plot.options)
    panel.plot.value = "lr"
    assert list(trace.y) == history.frame["lr"].tolist() and trace.y[0] == 0.0
    panel.controls["method"].value = "non-greedy"
    assert panel.controls["W"].layout.display == "none"


@pytest.mark.skipif(not (data_root() / "cifar10_partial").exists() or (data_root() / "cifar-10-batches-py").exists(),
                    reason="needs the partial CIFAR-10 copy (and not the full one) in data/")
def test_paper_scale_on_the_partial_cifar_copy_says_the_full_one_is_needed():
    with pytest.raises(FileNotFoundError, match="needs the full CIFAR-10 .* cifar-10-python.tar.gz"):
        fds.image_data("cifar10", 45_000, 5_000, None, "cpu")


# ---------------------------------------------------------------------------------------------
# The paper's settings (issue 13): each of these failed on the code before it


def test_greedy_in_study_09_learns_one_rate_per_step_without_sharing():
    """The paper's greedy baseline (H = 1) has one learning rate per step; it used to share
    FDS's windows (W = 20), which averaged its noise away."""
    greedy = fds_schedules.method_hyperparameters("greedy", 200, 20)
    assert greedy.windows["lr"] == 1 and greedy.values["lr"].numel() == 200
    assert fds_schedules.method_hyperparameters("non-greedy", 200, 20).values["lr"].numel() == 200
    assert fds_schedules.method_hyperparameters("fds", 200, 20).values["lr"].numel() == 10


def test_study_09_reads_the_papers_setting():
    n_train, n_val, _, batch, outer_steps, W, _ = fds_schedules.SIZES["paper"]
    assert 400 <= n_train // batch <= 600 and batch == 128  # "one epoch (T ~ 500 steps)"
    assert W == 50 and outer_steps == 50 and n_val == 0.05 * (n_train + n_val)
    assert fds_schedules.GAMMA == 0.1 and fds_schedules.LR_BOX == (-1.0, 1.0)
    import inspect
    assert inspect.signature(fds_schedules.run_study).parameters["gamma"].default == 0.1


def test_study_08_takes_hypergradients_at_the_authors_cosine_schedule():
    rates = fds_noise.fixed_schedule(250, 0.01)
    assert rates[0] == pytest.approx(0.01) and rates[125] == pytest.approx(0.005) and rates[-1] < 1e-5
    assert fds_noise.fixed_schedule(4, 0.01, "constant").tolist() == [0.01] * 4
    import inspect
    assert inspect.signature(fds_noise.run_study).parameters["shape"].default == "cosine"
    n_train, n_val, horizon, batch, seeds = fds_noise.SIZES["paper"]
    assert (n_val, horizon, batch, seeds) == (2000, 250, 128, 100)


def test_study_10_reads_the_papers_setting():
    model, n_train, n_val, _, batch, epochs, outer_steps, _ = fds_cifar.SIZES["paper"]
    assert (model, epochs, outer_steps, fds_cifar.LR_VALUES) == ("wrn-16-1", 50, 10, 5)
    assert n_train + n_val == 50_000 and batch == 256
    assert fds_cifar.GAMMAS == {"lr": 0.1, "momentum": 0.3, "weight_decay": 4e-4}
    hyper = fds_cifar.fds_hyperparameters(9250, -(-9250 // fds_cifar.LR_VALUES))
    assert hyper.sizes == [5, 1, 1] and hyper.pack().abs().sum() == 0


def test_study_11_reads_the_papers_setting():
    data, model, n_train, n_val, _, batch, epochs, _, seconds, seeds = fds_vs_hpo.SIZES["paper"]
    assert (data, model, epochs, seeds) == ("cifar10", "wrn-16-1", 50, 8)
    assert seconds == 100 * 3600 and fds_vs_hpo.WINDOWS == 7
    assert fds_vs_hpo.RANGES == {"lr": (-1.0, 1.0), "momentum": (-1.5, 1.5), "weight_decay": (-4e-3, 4e-3)}
    assert fds_vs_hpo.GAMMAS == {"lr": 0.1, "momentum": 0.1, "weight_decay": 3e-4}
    hyper = schedule(9250, lr=0.0, windows={"lr": -(-9250 // 7)}, learn=("lr", "momentum", "weight_decay"))
    assert hyper.sizes == [7, 1, 1]
    shapes = {p["shape"] for p in fds_vs_hpo.grid_points(hyper)}
    assert shapes == {"constant", "cosine"}


@needs_mnist
def test_the_studies_clamp_the_inner_gradient_as_the_authors_code_does():
    """The authors' code clamps each coordinate of the training gradient before the SGD update:
    to +-1 in figure2_hypergradients_fluctuation.py (study 08), to +-3 in main.py and
    scripts/paper_figure1.sh / paper_figure4.sh (studies 09 to 11). Their tasks used to clamp
    nothing."""
    import inspect

    cpu = torch.device("cpu")
    assert fds.GRAD_CLIP_FIGURE2 == 1.0 and fds.GRAD_CLIP == 3.0
    assert fds_noise.setting("smoke", "mnist", 0.01, 0.9, cpu)[0].grad_clip == 1.0
    assert fds_schedules.setting("smoke", "mnist", cpu)[0].grad_clip == 3.0
    assert fds_vs_hpo.setting("smoke", cpu)[0].grad_clip == 3.0
    assert fds_schedules.setting("smoke", "mnist", cpu, grad_clip=None)[0].grad_clip is None
    for study, clip in ((fds_noise.run_study, 1.0), (fds_schedules.run_study, 3.0),
                      (fds_cifar.run_study, 3.0), (fds_vs_hpo.run_study, 3.0)):
        assert inspect.signature(study).parameters["grad_clip"].default == clip
    assert inspect.signature(fds_cifar.setting).parameters["grad_clip"].default == 3.0


def test_hd_ignores_the_tasks_clamp():
    """The FDS authors publish no HD code and SGD-HD (Baydin et al.) does not clamp."""
    import dataclasses

    task = double_task()
    plain = fds.hd_training(task, 30, 0.01, 0, record_every=10).frame
    clamped = fds.hd_training(dataclasses.replace(task, grad_clip=1e-3), 30, 0.01, 0, record_every=10).frame
    assert plain["lr"].tolist() == clamped["lr"].tolist()
    assert plain["objective"].tolist() == clamped["objective"].tolist()


def test_the_networks_start_from_xavier_normal_weights_and_zero_biases():
    x = torch.zeros(8, 1, 28, 28)
    split = {"train": (x, torch.zeros(8, dtype=torch.long)), "val": (x, torch.zeros(8, dtype=torch.long))}
    task = fds.image_task(split, "lenet", 4)
    first, again, other = task.init(0), task.init(0), task.init(1)
    assert torch.equal(first, again) and not torch.equal(first, other)
    conv1 = first[:150]  # 6 x 1 x 5 x 5, then its 6 biases
    assert float(conv1.std()) == pytest.approx(math.sqrt(2 / (25 + 150)), rel=0.15)
    assert float(first[150:156].abs().max()) == 0.0
    default = fds.image_task(split, "lenet", 4, init="default").init(0)
    assert float(default[150:156].abs().max()) > 0
    with pytest.raises(ValueError, match="init"):
        fds.image_task(split, "lenet", 4, init="he")


def test_the_outer_loop_stops_once_every_step_is_below_its_share_of_the_value():
    task = double_task()
    hyper = schedule(10, lr=0.5, momentum=0.5, windows={"lr": 5}, dtype=torch.float64)
    history = fds_loop.learn(task, hyper, reverse_mode(), sign_descent(0.01), 6, converged_frac=0.05, progress=False)
    assert history.status == "finished" and "converged after outer step 0" in history.message
    assert history.frame["kind"].tolist() == ["hypergradient", "final"]
    assert history.frame["relative_step"].iloc[0] == pytest.approx(0.01 / 0.49, rel=0.05)
    slow = fds_loop.learn(task, hyper, reverse_mode(), sign_descent(0.1), 2, converged_frac=0.05, progress=False)
    assert len(slow.frame) == 3  # 0.1 / 0.5 is no convergence: every outer step runs
    with pytest.raises(ValueError, match="converged_frac"):
        fds_loop.learn(task, hyper, reverse_mode(), sign_descent(0.1), 2, converged_frac=1.5, progress=False)


# ---------------------------------------------------------------------------------------------
# The claims: every check fails on a constructed result where the claim is false


def verdicts(claims_list, result):
    return {claim.id: claim.check(result).status for claim in claims_list}


def noise(g, greedy_g=None):
    windows = fds_noise.windows_for_horizon(g.shape[1])
    return fds_noise.noise_result(g, g if greedy_g is None else greedy_g, windows)


def test_noise_claims_hold_where_sharing_helps_and_greedy_is_biased():
    rng = np.random.default_rng(0)
    T = 250
    mu = 0.0069 * np.arange(T)  # drift chosen so that noise 1 / W and bias eps^2 W^2 / 12 cross near W = 50
    g = mu + rng.standard_normal((2000, T))
    result = noise(g, greedy_g=-mu + 0.1 * rng.standard_normal((2000, T)))
    found = verdicts(fds_noise.CLAIMS, result)
    assert found["greedy-hypergradients-poor-estimate"] == "holds"
    assert found["sharing-lowers-mse"] == "holds"
    assert found["best-window-about-50"] == "holds"
    assert found["theorem-4-1-bound-holds"] == "holds"


def test_noise_claims_fail_where_the_noise_is_one_offset_per_seed_and_greedy_is_exact():
    rng = np.random.default_rng(1)
    g = rng.standard_normal((40, 1)) + 0.01 * rng.standard_normal((40, 250))
    result = noise(g, greedy_g=g.mean(0) + 0.001 * rng.standard_normal((40, 250)))
    found = verdicts(fds_noise.CLAIMS, result)
    assert found["greedy-hypergradients-poor-estimate"] == "fails"
    assert found["sharing-lowers-mse"] == "fails"
    iid = noise(1.0 + rng.standard_normal((400, 250)))
    assert verdicts(fds_noise.CLAIMS, iid)["best-window-about-50"] == "fails"  # best at W = T: no trade-off


def test_theorem_claims_read_the_bound_against_the_measured_mse():
    rng = np.random.default_rng(2)
    result = noise(rng.standard_normal((50, 10)))
    result.table["bound"] = result.table["measured MSE"] * 0.5
    assert verdicts(fds_noise.CLAIMS, result)["theorem-4-1-bound-holds"] == "fails"
    result.table["measured MSE"] = [5, 4, 1, 3]  # windows 1, 2, 5, 10: lowest at 5
    result.table["bound"] = [9, 8, 2, 9]
    assert verdicts(fds_noise.CLAIMS, result)["theorem-4-1-bound-shape"] == "holds"
    result.table["bound"] = [1, 8, 9, 9]
    assert verdicts(fds_noise.CLAIMS, result)["theorem-4-1-bound-shape"] == "fails"


def schedules(dataset="mnist", greedy=0.01, single=0.05, fds_rate=0.05, acc=None):
    acc = {"greedy": [0.85, 0.86, 0.84], "non-greedy": [0.92, 0.93, 0.92], "fds": [0.93, 0.92, 0.93],
           "cosine": [0.925, 0.93, 0.92], **(acc or {})}
    rates = {"greedy": [greedy] * 100, "non-greedy": [single] * 100, "fds": [fds_rate] * 100, "cosine": [0.02] * 100}
    return fds_schedules.ScheduleResult([], pd.DataFrame(), rates=rates, accuracies=acc, dataset=dataset)


def test_schedule_claims_hold_fail_and_leave_svhn_untested_on_mnist():
    found = verdicts(fds_schedules.CLAIMS, schedules())
    assert found == {"greedy-learns-too-small-rates": "holds", "no-sharing-works-on-mnist": "holds",
                     "no-sharing-fails-on-svhn": "not testable here", "fds-works-against-cosine": "holds",
                     "fds-beats-cosine-on-svhn": "not testable here"}
    worse = schedules(greedy=0.08, acc={"non-greedy": [0.5, 0.52, 0.51], "fds": [0.80, 0.81, 0.80]})
    found = verdicts(fds_schedules.CLAIMS, worse)
    assert found["greedy-learns-too-small-rates"] == "fails"
    assert found["no-sharing-works-on-mnist"] == "fails" and found["fds-works-against-cosine"] == "fails"
    svhn = verdicts(fds_schedules.CLAIMS, schedules("svhn", single=0.5, acc={"non-greedy": [0.2, 0.21, 0.19]}))
    assert svhn["no-sharing-fails-on-svhn"] == "holds" and svhn["fds-beats-cosine-on-svhn"] == "holds"
    assert svhn["no-sharing-works-on-mnist"] == "not testable here"
    svhn = verdicts(fds_schedules.CLAIMS, schedules("svhn", acc={"fds": [0.9, 0.9, 0.91]}))
    assert svhn["no-sharing-fails-on-svhn"] == "fails" and svhn["fds-beats-cosine-on-svhn"] == "fails"


def cifar(relative_steps, fds_acc, hd_acc):
    n = len(relative_steps)
    frame = pd.DataFrame({"step": range(n + 1), "kind": ["hypergradient"] * n + ["final"],
                          "relative_step": [*relative_steps, math.nan]})
    return fds_cifar.CifarResult([History(frame, "fds", "FDS", "p", 0), None], pd.DataFrame(),
                                 accuracies={"FDS": fds_acc, "HD": hd_acc})


def test_cifar_claims_read_convergence_and_the_gap_to_hd():
    good = cifar([1, 0.5, 0.25, 0.1, 0.04], [0.90, 0.91, 0.90], [0.80, 0.81, 0.80])
    assert verdicts(fds_cifar.CLAIMS, good) == {"fds-converges-within-10-outer-steps": "holds",
                                                 "fds-significantly-better-than-hd": "holds"}
    bad = cifar([1] * 12, [0.80, 0.82, 0.78], [0.80, 0.81, 0.80])
    assert verdicts(fds_cifar.CLAIMS, bad) == {"fds-converges-within-10-outer-steps": "fails",
                                                "fds-significantly-better-than-hd": "fails"}
    late = cifar([1] * 11 + [0.01], [0.9], [0.8])
    assert verdicts(fds_cifar.CLAIMS, late)["fds-converges-within-10-outer-steps"] == "fails"
    short = cifar([1] * 4, [0.9], [0.8])
    assert verdicts(fds_cifar.CLAIMS, short)["fds-converges-within-10-outer-steps"] == "not testable here"


def hpo_history(method, times, accuracies, seed=0):
    frame = pd.DataFrame({"wall_time": times, "found_acc": accuracies, "runs": range(1, len(times) + 1),
                          "gradient_evaluations": range(len(times)), "kind": "trial", "found_val": 1.0})
    return History(frame, method, method, "p", seed, config={"method": method})


def hpo(fds_times, bohb_times, others_reach=False, hd_acc=0.5, budget=100.0):
    reach = [0.8, 0.9]
    histories = [hpo_history("fds", fds_times, reach), hpo_history("bohb", bohb_times, reach),
                 hpo_history("hd", [5.0], [hd_acc])]
    for name in ("random-search", "bayesian", "hyperband"):
        histories.append(hpo_history(name, [1.0, 90.0], [0.5, 0.9 if others_reach else 0.6]))
    return fds_vs_hpo.HpoResult(histories, pd.DataFrame(), reference=0.9, budget=budget)


def test_hpo_claims_hold_fail_or_cannot_decide_on_the_budget():
    found = verdicts(fds_vs_hpo.CLAIMS, hpo([1.0, 2.0], [10.0, 60.0]))
    assert found == {"fds-zero-regret-20x-sooner-than-bohb": "holds", "others-never-reach-zero-regret": "holds",
                     "fds-beats-hd-by-10-points": "holds"}
    found = verdicts(fds_vs_hpo.CLAIMS, hpo([1.0, 20.0], [10.0, 60.0], others_reach=True, hd_acc=0.88))
    assert found == {"fds-zero-regret-20x-sooner-than-bohb": "fails", "others-never-reach-zero-regret": "fails",
                     "fds-beats-hd-by-10-points": "fails"}
    never = hpo([1.0, 2.0], [10.0, 60.0])
    never.histories[1].frame["found_acc"] = [0.5, 0.6]  # BOHB never gets there: the budget bounds the speed-up
    assert verdicts(fds_vs_hpo.CLAIMS, never)["fds-zero-regret-20x-sooner-than-bohb"] == "holds"
    never.budget = 15.0
    assert verdicts(fds_vs_hpo.CLAIMS, never)["fds-zero-regret-20x-sooner-than-bohb"] == "not testable here"


def test_regret_over_seeds_is_the_mean_of_each_seeds_step_function():
    histories = [hpo_history("fds", [1.0, 3.0], [0.5, 0.9], seed=0), hpo_history("fds", [2.0, 4.0], [0.7, 0.9], seed=1)]
    result = fds_vs_hpo.HpoResult(histories, pd.DataFrame(), reference=0.9, budget=10.0)
    x, regret = result.regret_curve("fds")
    np.testing.assert_allclose(x, [1, 2, 3, 4])
    np.testing.assert_allclose(regret, [(0.4 + 0.9) / 2, (0.4 + 0.2) / 2, 0.1, 0.0], atol=1e-12)
    assert result.time_to_regret("fds", 0.01) == 4.0 and result.final_regret("fds") == pytest.approx(0.0)


def test_outer_loops_from_different_seeds_do_not_share_cached_steps(tmp_path):
    """Study 11 runs FDS from several seeds into one cache: each seed's steps are its own."""
    task = double_task()
    hyper = schedule(10, lr=0.0, momentum=0.5, windows={"lr": 5}, dtype=torch.float64)
    outer = sign_descent(0.05, box(hyper, {"lr": (0.0, 1.0)}))
    cache = StudyCache("test", {"case": 2}, root=tmp_path)
    fds_loop.learn(task, hyper, reverse_mode(), outer, 2, cache=cache, seed=0, progress=False)
    other = Counting(reverse_mode())
    history = fds_loop.learn(task, hyper, other, outer, 2, cache=cache, seed=1, progress=False)
    assert other.calls == 2 and history.frame["seed"].tolist() == [fds_loop.run_seed(1, k) for k in range(3)]


def test_the_start_check_scales_gamma_down_until_two_steps_from_zero_still_train():
    task = double_task()
    hyper = schedule(10, lr=0.0, momentum=0.9, dtype=torch.float64)
    factor, table = fds.start_check(task, hyper, 0.1)
    assert factor == 1.0 and table["trains"].tolist() == [True]  # lr 0.2 trains
    factor, table = fds.start_check(task, hyper, 10.0, factors=(1.0, 0.1, 0.01))
    assert factor < 1.0 and not table["trains"].iloc[0] and table["trains"].iloc[-1]  # lr 20 does not
    assert table["val loss"].iloc[-1] < 0.9 * table["untrained val loss"].iloc[-1]


def test_a_dead_training_after_one_that_trained_goes_halfway_back_like_a_diverged_one():
    """A run that ends where the network does not train (validation loss not below 0.9 of the
    untrained network's) gives a near-zero hypergradient of noisy sign, from which sign steps
    cannot leave: study 09 at cpu scale stalled at ln 10 from outer step 2 on and ended at
    chance accuracy. After a run that trained, such a run is marked "stalled" and undone by
    half, as a diverged one; at the start (alpha = 0 trains nothing) it is an ordinary step."""
    task = double_task()
    hyper = schedule(10, lr=0.0, momentum=0.9, dtype=torch.float64)
    exact = reverse_mode()

    def dies_above(task, hyper, seed):  # the network ends untrained above lr = 0.6, with a push upwards
        found = exact(task, hyper, seed)
        if float(hyper.values["lr"][0]) <= 0.6:
            return found
        theta = task.init(seed)
        return found._replace(theta=theta, loss=float(task.val_loss(theta)), grad=-torch.ones_like(found.grad))

    history = fds_loop.learn(task, hyper, dies_above, sign_descent(0.4), 6, progress=False)
    frame = history.frame
    kinds, lr = frame["kind"].tolist(), frame["lr"].tolist()
    assert kinds[0] == "hypergradient" and lr[0] == 0.0  # untrained at alpha = 0: not a failure
    k = kinds.index("stalled")
    assert lr[k] > 0.6 >= lr[k - 1] and kinds[k - 1] == "hypergradient"
    assert lr[k + 1] == pytest.approx(lr[k - 1] + (lr[k] - lr[k - 1]) / 2)
    assert "stalled" in history.message and history.status == "finished"
    assert max(lr) < 1.0  # without the rule the push upwards takes it to 0.4 more at every step


def test_a_final_training_that_diverges_falls_back_to_the_last_hyperparameters_that_trained(monkeypatch):
    task = double_task()
    hyper = schedule(10, lr=0.1, momentum=0.9, dtype=torch.float64)
    plain = fds_loop.train

    def unstable(task, hyper, seed):  # the final plain training "diverges" above lr = 0.6
        trained = plain(task, hyper, seed)
        return trained._replace(diverged=True, message="above 0.6") if float(hyper.values["lr"][0]) > 0.6 else trained

    monkeypatch.setattr(fds_loop, "train", unstable)
    history = fds_loop.learn(task, hyper, reverse_mode(), sign_descent(0.8), 1, progress=False)
    assert history.frame["kind"].tolist() == ["hypergradient", "diverged", "final"]
    assert history.frame["lr"].tolist() == [pytest.approx(0.1), pytest.approx(0.9), pytest.approx(0.1)]
    assert history.status == "finished" and "back to them" in history.message


def test_fds_tuner_steps_against_the_sign_and_halves_a_step_when_the_sign_flips():
    """TUNERS["fds"] under hpolab.run: each outer step moves log lambda by its current step,
    which starts at gamma and halves exactly where the direction reverses (row k holds the log
    lambda run k trained with: row 1 the start's)."""
    task = logistic_regression_task(*noisy_linear_labels(100))
    hyper = schedule(40, lr=0.01, learn=("log_l2",), log_l2=-2.0)
    history = run(make_tuner("fds", task, hyper, box(hyper, {"log_l2": (-6.0, 3.0)}), gamma=0.5),
                  tuning_problem(task, hyper), 10 * 41, seed=0)
    assert history.method == "fds" and history.status == "finished"
    moves = history.frame["log_l2"].diff().iloc[1:].to_numpy()
    assert len(moves) == 10 and moves[0] == 0 and abs(moves[1]) == 0.5
    moves = moves[1:]
    flips = 0
    for before, after in zip(moves, moves[1:]):
        flipped = np.sign(after) != np.sign(before)
        flips += flipped
        assert abs(after) == abs(before) / (2 if flipped else 1)
    assert flips >= 1  # the run crosses the interior optimum
