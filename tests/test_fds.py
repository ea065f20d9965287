"""The FDS studies' machinery: sharing as window sums, the MSE and Theorem 4.1's terms, the
resumable outer loop, HD, the regret bookkeeping and the data fallback."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from hpolab.cache import StudyCache
from hpolab.data import data_root
from hpolab.history import History
from hpolab.hypergrad import box, classification_task, forward_mode, reverse_mode, schedule, sign_descent
from hpolab.studies import fds, fds_noise, fds_schedules, fds_vs_hpo


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
    stopped = fds.learn(task, hyper, first, outer, 4, cache=cache, progress=False, should_stop=lambda: True)
    assert stopped.status == "stopped" and len(stopped.frame) == 1 and first.calls == 1
    again = Counting(reverse_mode())
    resumed = fds.learn(task, hyper, again, outer, 4, cache=cache, progress=False)
    assert again.calls == 3 and resumed.status == "finished" and len(resumed.frame) == 5
    fresh = fds.learn(task, hyper, reverse_mode(), outer, 4, progress=False)
    pd.testing.assert_frame_equal(resumed.frame.drop(columns="wall_time"), fresh.frame.drop(columns="wall_time"))
    assert fresh.frame["lr[0]"].iloc[1] == pytest.approx(0.05)  # one sign step up from 0
    longer = Counting(reverse_mode())
    fds.learn(task, hyper, longer, outer, 6, cache=cache, progress=False)
    assert longer.calls == 2  # steps 4 and 5; 0 to 3 come from the cache


def test_a_diverging_outer_step_ends_the_run_cleanly_and_keeps_the_rows_before():
    task = double_task()
    hyper = schedule(10, lr=0.5, momentum=0.9, dtype=torch.float64)
    history = fds.learn(task, hyper, reverse_mode(), sign_descent(1e4), 3, progress=False)
    assert history.status == "diverged" and "diverged at outer step 1" in history.message
    assert len(history.frame) == 2 and np.isfinite(history.frame["objective"].iloc[0])


def test_hd_raises_the_learning_rate_from_zero():
    task = double_task()
    history = fds.hd_training(task, 30, 0.01, 0, test=task.data, record_every=10)
    assert history.frame["lr"].iloc[0] > 0 and len(history.frame) == 3
    assert history.frame["objective"].iloc[-1] < math.log(2)


def test_regret_columns_follow_the_best_validated_finished_configuration():
    frame = pd.DataFrame({"kind": ["start", "trial", "diverged trial", "trial", "trial"],
                          "objective": [2.0, 1.0, 9.0, 0.5, 0.7], "test_error": [0.9, 0.3, 0.9, 0.2, 0.1],
                          "gradient_evaluations": [0, 10, 13, 23, 33], "wall_time": [0, 1, 2, 3, 4.0]})
    history = fds_vs_hpo.with_regret_columns(History(frame, "rs", "RS", "p", 0))
    assert history.frame["runs"].tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(history.frame["found_acc"], [np.nan, 0.7, 0.7, 0.8, 0.8])
    np.testing.assert_allclose(history.frame["found_val"], [np.nan, 1.0, 1.0, 0.5, 0.5])
    assert fds_vs_hpo.runs_to_regret(history, reference=0.805, target=0.01) == (3.0, 23.0, 3.0)


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
    (lambda: fds_noise.run_noise_study("smoke", lr=0.0), "lr"),
    (lambda: fds_noise.run_noise_study("smoke", windows=[0, 2]), "W"),
    (lambda: fds_noise.run_noise_study("smoke", seeds=1), "seeds"),
    (lambda: fds_schedules.run_schedule_study("smoke", W=99), r"W must be an integer in \[1, T\]"),
    (lambda: fds_schedules.run_schedule_study("smoke", gamma=0), "gamma"),
    (lambda: fds_schedules.run_schedule_study("smoke", methods=("adam",)), "method"),
    (lambda: fds_vs_hpo.run_hpo_study("smoke", methods=("grid",)), "method"),
    (lambda: fds_vs_hpo.run_hpo_study("huge"), "scale"),
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
    with pytest.raises(ValueError, match="full cifar-10-python.tar.gz"):
        fds.image_data("cifar10", 45_000, 5_000, None, "cpu")
