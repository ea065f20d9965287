"""Study 02: the MNIST MLP problem (activation, look-ahead objective, minibatches, box), the
reference method, the study's summary, its claims (each shown failing and holding), the guard
check, bad input and the widget panel."""

import math

import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from hpolab import claims, joint_descent, run
from hpolab.data import data_root
from hpolab.history import History
from hpolab.methods.joint_descent import search_radii
from hpolab.problems.mlp import (
    MLP,
    MinibatchStream,
    activation,
    activation_mlp,
    on_minibatches,
)
from hpolab.studies import jd_mnist
from hpolab.studies.common import StudyResult
from hpolab.studies import jd_mnist_setup
from hpolab.studies import jd_mnist_summaries

needs_mnist = pytest.mark.skipif(not (data_root() / "MNIST" / "raw").exists(),
                                 reason="real MNIST not in data/: copy ../shared/data into data/, see data/README.md")


def toy(n=96, features=12, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, features, generator=generator, dtype=dtype)
    labels = torch.randint(10, (n,), generator=generator)
    return images, labels


def toy_problem(y0=(0.1, 1.0, 0.0), box=None, batch_size=16, lr=0.1, dtype=torch.float64):
    images, labels = toy(dtype=dtype)
    stream = MinibatchStream(images, labels, batch_size)
    return stream, activation_mlp(stream, (images, labels), lr=lr, y0=y0, box=box, hidden=5)


@pytest.mark.parametrize("alpha, b", [(1.0, 0.0), (0.0, 0.0), (0.3, 0.7), (-0.5, 2.0)])
def test_activation_is_leaky_relu_plus_b_elu(alpha, b):
    z = torch.linspace(-3, 3, 61, dtype=torch.float64)
    expected = F.leaky_relu(z, alpha) + b * F.elu(z)
    assert torch.allclose(activation(z, torch.tensor(alpha), torch.tensor(b)), expected)
    if (alpha, b) == (1.0, 0.0):
        assert torch.equal(activation(z, torch.tensor(1.0), torch.tensor(0.0)), z)  # linear
    if (alpha, b) == (0.0, 0.0):
        assert torch.equal(activation(z, torch.tensor(0.0), torch.tensor(0.0)), F.relu(z))


def test_paper_network_has_784_30_10_weights_and_seeded_initialization():
    net = MLP(784, 30, 10)
    assert net.size == 784 * 30 + 30 + 30 * 10 + 10
    first = net.init(torch.Generator().manual_seed(3))
    assert torch.equal(first, net.init(torch.Generator().manual_seed(3)))
    assert not torch.equal(first, net.init(torch.Generator().manual_seed(4)))
    w1, b1, w2, b2 = net.unpack(first)
    assert w1.abs().max() <= 1 / math.sqrt(784) and w2.abs().max() <= 1 / math.sqrt(30)


def test_stream_covers_each_epoch_once_and_repeats_for_a_seed():
    images, labels = toy(n=50)
    stream = MinibatchStream(images, labels, 8)  # 6 batches per epoch, 2 examples dropped
    stream.reset(7)

    def epoch():
        rows = []
        for _ in range(stream.per_epoch):
            rows.append(stream.batch[0])
            stream.advance()
        return torch.cat(rows)

    first, second = epoch(), epoch()
    assert len(torch.unique(first, dim=0)) == 48 and len(torch.unique(second, dim=0)) == 48
    assert not torch.equal(first, second)  # a new permutation each epoch
    stream.reset(7)
    assert torch.equal(epoch(), first)
    stream.reset(8)
    assert not torch.equal(epoch(), first)


def test_objective_is_the_loss_after_one_look_ahead_step_on_the_current_batch():
    stream, problem = toy_problem()
    x, _ = problem.initial_point(torch.Generator().manual_seed(0))
    y = torch.tensor([0.3, 0.2, 0.5], dtype=torch.float64)
    net = MLP(12, 5, 10)
    images, labels = stream.batch
    w = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(net.loss(w, y[1], y[2], images, labels), w)
    expected = net.loss(x - 0.3 * g, y[1], y[2], images, labels)
    assert float(problem.objective(x, y)) == pytest.approx(float(expected), rel=1e-12)
    stream.advance()
    assert float(problem.objective(x, y)) != pytest.approx(float(expected), rel=1e-6)


def test_gradient_of_the_look_ahead_objective_matches_finite_differences():
    _, problem = toy_problem()
    x, _ = problem.initial_point(torch.Generator().manual_seed(1))
    y = torch.tensor([0.4, 0.3, 0.6], dtype=torch.float64)
    grad = torch.func.grad(problem.objective)(x, y)
    generator = torch.Generator().manual_seed(2)
    for _ in range(3):
        direction = torch.randn(x.shape, generator=generator, dtype=torch.float64)
        h = 1e-5
        numeric = (problem.objective(x + h * direction, y) - problem.objective(x - h * direction, y)) / (2 * h)
        assert float(grad @ direction) == pytest.approx(float(numeric), rel=1e-6)


def test_box_makes_f_infinite_outside_and_jd_never_leaves_it():
    box = ((0.0, 1.0), (0.0, 1.0), (0.0, 1.0))
    stream, problem = toy_problem(box=box)
    x, y = problem.initial_point(torch.Generator().manual_seed(0))
    assert math.isinf(float(problem.objective(x, torch.tensor([1.5, 0.5, 0.5], dtype=torch.float64))))
    assert math.isfinite(float(problem.objective(x, y)))
    history = run(on_minibatches(joint_descent(p=0.3, r=0.25, R=4.0), stream), problem, 120, seed=0)
    for name in ("eta", "alpha", "b"):
        assert history.frame[name].between(0.0, 1.0).all()
    assert (history.frame["kind"] == "gradientless").any()


def test_every_step_draws_a_fresh_batch_and_a_gradientless_step_re_evaluates_y_on_it():
    stream, problem = toy_problem()
    radii = search_radii(2**-6, 2**-1)
    history = run(on_minibatches(joint_descent(p=0.5, r=2**-6, R=2**-1), stream), problem, 200, seed=0)
    steps = history.frame.iloc[1:]
    assert stream.drawn == len(steps)
    tuning = steps["kind"] == "gradientless"
    spent = steps["function_evaluations"].diff().fillna(steps["function_evaluations"].iloc[0])
    assert (spent[tuning] == len(radii) + 1).all()  # the cached f(x, y) was on another batch
    assert history.config["batch_size"] == 16


def test_runs_repeat_for_a_seed_and_record_accuracy_and_hyperparameters():
    def once(seed):
        stream, problem = toy_problem()
        frame = run(on_minibatches(joint_descent(p=0.5), stream), problem, 60, seed=seed).frame
        return frame.drop(columns="wall_time")

    first = once(0)
    assert first.equals(once(0))
    assert not first.equals(once(1))
    assert {"train_accuracy", "train_loss", "eta", "alpha", "b"} <= set(first.columns)
    assert first["train_accuracy"].between(0, 1).all()


def test_references_keep_y_and_take_a_gradient_step_every_iteration():
    stream, problem = toy_problem(y0=(0.1, 0.0, 0.0))
    history = run(on_minibatches(jd_mnist_setup.fixed_hyperparameters("relu"), stream), problem, 30, seed=0)
    frame = history.frame
    assert history.label == "ReLU (fixed)" and len(frame) == 31
    assert (frame["gradient_evaluations"] == frame["iteration"]).all() and (frame["function_evaluations"] == 0).all()
    assert (frame[["eta", "alpha", "b"]].iloc[-1].tolist()) == [pytest.approx(0.1), 0.0, 0.0]
    assert frame["train_loss"].iloc[-1] < frame["train_loss"].iloc[0]


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": 0.0}, "lr must be a finite number > 0"),
    ({"y0": (0.1, 1.0)}, r"y0 must be \(eta, alpha, b\)"),
    ({"y0": (0.1, 1.5, 0.0), "box": ((0, 1), (0, 1), (0, 1))}, "y0 must lie inside the box"),
    ({"box": ((0, 1), (1, 0), (0, 1))}, "box must be three"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"batch_size": 1000}, "batch_size must be at most the 96 examples"),
])
def test_bad_problem_arguments_raise_value_error_naming_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message):
        toy_problem(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"scale": "huge"}, "scale must be one of"),
    ({"p_values": [0.5, 1.0]}, r"p must lie in the open interval \(0, 1\)"),
    ({"references": ["tanh"]}, "reference must be one of"),
    ({"iterations": -1}, "iterations must be an integer >= 0"),
    ({"seeds": 0}, "seeds must be an integer >= 1"),
    ({"lr": -0.1}, "lr must be a finite number > 0"),
    ({"r": 1.0, "R": 0.5}, "r must be smaller than R"),
    ({"device": "cuda:7"}, "device must be 'auto' or one of"),
])
def test_bad_study_arguments_raise_value_error_naming_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message):
        jd_mnist.run_study(**{"scale": "smoke", "progress": False, **kwargs})


@pytest.fixture(scope="module")
def smoke():
    return jd_mnist.run_study("smoke", p_values=[0.3, 0.7], iterations=40, progress=False)


@needs_mnist
def test_smoke_study_runs_jd_per_p_and_both_references(smoke):
    assert [h.label for h in smoke.histories] == ["JD p=0.3", "JD p=0.7", "ReLU (fixed)", "linear (fixed)"]
    summary = smoke.summary
    assert list(summary["method"]) == ["JD", "JD", "ReLU (fixed)", "linear (fixed)"]
    assert summary["p"].tolist()[:2] == [0.3, 0.7] and summary["p"].iloc[2:].isna().all()
    assert (summary["runs"] == 1).all()
    assert summary.loc[2, "gradient steps"] == 40 and summary.loc[0, "gradient steps"] < 40
    assert summary.loc[2, "alpha"] == 0.0 and summary.loc[3, "alpha"] == 1.0
    assert smoke.parameters["training_images"] == 2000 and smoke.parameters["monitor"] == 500
    jd = smoke.histories[0].frame
    assert jd["alpha"].iloc[0] == 1.0 and jd["b"].iloc[0] == 0.0 and jd["eta"].iloc[0] == pytest.approx(0.1)


@needs_mnist
def test_claims_run_on_the_smoke_result_and_are_not_decided_there(smoke):
    table = claims.evaluate("02_jd_mnist_activation", smoke, "smoke")
    assert list(table["claim"]) == [c.id for c in jd_mnist.CLAIMS]
    assert set(table["verdict"]) == {claims.UNTESTABLE}  # p = 0.5 not run, or too small to decide


@needs_mnist
def test_smoke_study_runs_the_printed_jd_with_study_01s_radii(smoke):
    jd = smoke.histories[0]
    assert jd.config["try_scale"] == "printed" and (jd.config["r"], jd.config["R"]) == jd_mnist.RADII
    assert smoke.parameters["box"] == [[0.0, 1.0]] * 3 and smoke.parameters["lr"] == jd_mnist.LR


@needs_mnist
def test_guard_check_reports_each_setting_and_seed():
    table = jd_mnist.guard_check("smoke", seeds=1, iterations=30, lrs=(0.4,), progress=False)
    assert list(table["setting"]) == ["lr 0.4, box", "lr 0.1, no box"]
    assert {"diverged", "collapsed", "train acc", "eta range", "alpha range", "b range"} <= set(table.columns)


@needs_mnist
def test_estimate_beta_is_the_top_curvature_at_the_start():
    beta = jd_mnist.estimate_beta("smoke", batches=2, power_steps=20)
    assert 0.5 < beta < 10  # ~1.4 on MNIST at eta = 0.1, alpha = 1, b = 0


def test_jd_gradient_step_on_the_mlp_is_the_study_step():
    _, problem = toy_problem(lr=0.25)
    assert problem.beta == problem.beta_x == 4.0  # JD steps x -= grad / beta


# --- claims on constructed results: each check can fail and can hold -------------------------

def fake(method="jd", p=0.5, accuracy=0.96, alpha=(1.0, 0.05, 0.05), eta=(0.1, 0.3, 0.1), iterations=3000,
         reference=None):
    """A history of 31 rows over ``iterations``: accuracy rising to ``accuracy``, alpha and eta
    piecewise constant over the three thirds of the run (alpha's middle value from iteration 500 on)."""
    its = [round(iterations * k / 30) for k in range(31)]
    rows = []
    for i, it in enumerate(its):
        third = min(2, int(3 * it / iterations)) if it < iterations else 2
        rows.append({"step": i, "iteration": it, "gradient_evaluations": it // 3, "function_evaluations": it - it // 3,
                     "hvp_evaluations": 0, "wall_time": 0.0, "objective": 1.0, "best_objective": 1.0,
                     "kind": "gradient", "eta": eta[third], "alpha": alpha[0] if it < 500 else alpha[min(third, 2) or 1],
                     "b": 0.0, "train_accuracy": accuracy * min(1.0, 0.5 + it / iterations), "train_loss": 0.1})
    config = {"p": p} if method == "jd" else {"reference": reference}
    label = f"JD p={p}" if method == "jd" else jd_mnist_setup.REFERENCE_LABELS[reference]
    return History(pd.DataFrame(rows), method, label, "mnist-mlp", 0, config)


def result_of(*histories):
    return StudyResult(list(histories), pd.DataFrame(), {})


CLAIM = {claim.id: claim for claim in jd_mnist.CLAIMS}


@pytest.mark.parametrize("accuracy, status", [(0.96, claims.HOLDS), (0.952, claims.HOLDS), (0.90, claims.FAILS)])
def test_accuracy_claim(accuracy, status):
    assert CLAIM["jd-mnist-96-percent"].evaluate(result_of(fake(accuracy=accuracy)), "cpu").status == status


def test_accuracy_claim_reads_p_half_only():
    assert CLAIM["jd-mnist-96-percent"].evaluate(result_of(fake(p=0.3)), "cpu").status == claims.UNTESTABLE


@pytest.mark.parametrize("jd, relu, status", [(0.95, 0.955, claims.HOLDS), (0.90, 0.95, claims.FAILS)])
def test_matches_relu_claim(jd, relu, status):
    result = result_of(fake(accuracy=jd), fake("fixed", accuracy=relu, reference="relu"))
    assert CLAIM["jd-matches-relu"].evaluate(result, "cpu").status == status


@pytest.mark.parametrize("jd, linear, status", [(0.95, 0.92, claims.HOLDS), (0.90, 0.92, claims.FAILS)])
def test_beats_linear_claim(jd, linear, status):
    result = result_of(fake(accuracy=jd), fake("fixed", accuracy=linear, reference="linear"))
    assert CLAIM["jd-beats-linear"].evaluate(result, "cpu").status == status


@pytest.mark.parametrize("alpha, status", [((1.0, 0.05, 0.05), claims.HOLDS), ((1.0, 0.6, 0.05), claims.FAILS)])
def test_alpha_claim_reads_alpha_at_iteration_500(alpha, status):
    verdict = CLAIM["alpha-near-zero-by-500"].evaluate(result_of(fake(alpha=alpha)), "cpu")
    assert verdict.status == status and "alpha at iteration 500" in verdict.measured


def test_alpha_claim_is_untestable_on_a_short_run():
    result = result_of(fake(iterations=300))
    assert CLAIM["alpha-near-zero-by-500"].evaluate(result, "cpu").status == claims.UNTESTABLE


@pytest.mark.parametrize("eta, status", [((0.1, 0.3, 0.1), claims.HOLDS), ((0.1, 0.3, 0.3), claims.FAILS),
                                         ((0.3, 0.2, 0.4), claims.FAILS)])
def test_eta_claim_compares_the_last_third_with_the_middle(eta, status):
    assert CLAIM["eta-shrinks-near-convergence"].evaluate(result_of(fake(eta=eta)), "cpu").status == status


@needs_mnist
def test_save_writes_summary_histories_and_parameters(smoke, tmp_path):
    paths = smoke.save(tmp_path / "out")
    assert paths["summary"].read_text().startswith(
        "method,p,gradient steps,train acc,train loss,eta,alpha,b,lowest alpha,runs,diverged")
    assert "train_accuracy" in pd.read_csv(paths["histories"]).columns


def test_first_iteration_and_value_at_an_iteration_read_the_history():
    stream, problem = toy_problem()
    history = run(on_minibatches(joint_descent(p=0.5), stream), problem, 40, seed=0)
    frame = history.frame
    assert jd_mnist_summaries.at_iteration(history, "alpha", 0) == 1.0
    assert jd_mnist_summaries.at_iteration(history, "alpha", 10_000) == frame["alpha"].iloc[-1]
    assert math.isnan(jd_mnist_summaries.first_iteration(history, "alpha", -5.0))
    assert jd_mnist_summaries.first_iteration(history, "alpha", 1.0) == 0.0
    assert jd_mnist_summaries.window_mean(history, "eta", 0, 1) == pytest.approx(frame["eta"].mean())
    last = frame["iteration"] >= frame["iteration"].iloc[-1] * 2 / 3
    assert jd_mnist_summaries.window_mean(history, "eta", 2 / 3, 1) == pytest.approx(frame.loc[last, "eta"].mean())


@needs_mnist
def test_panel_runs_in_background_and_hides_p_for_the_references():
    panel = jd_mnist.panel(scale="smoke", iterations=30)
    panel.start()
    panel.wait(120)
    panel.controls["method"].value = "relu"
    assert "p" not in panel.settings()
    panel.start()
    panel.wait(120)
    assert [h.label for h in panel.histories] == ["JD p=0.5", "ReLU (fixed)"]
    assert len(panel.figure.data[0].y) == len(panel.histories[0].frame)
    assert panel.figure.layout.yaxis.title.text == "train_accuracy"


def test_cpu_runs_use_one_thread_and_restore_the_setting():
    before = torch.get_num_threads()
    with jd_mnist.study_threads(torch.device("cpu")):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_accuracy_figure_draws_a_mean_per_label_and_a_band_over_seeds():
    runs = []
    for seed in (0, 1):
        stream, problem = toy_problem()
        runs.append(run(on_minibatches(joint_descent(p=0.5), stream), problem, 40, seed=seed))
    stream, problem = toy_problem(y0=(0.1, 0.0, 0.0))
    runs.append(run(on_minibatches(jd_mnist_setup.fixed_hyperparameters("relu"), stream), problem, 40, seed=0))
    figure = jd_mnist.accuracy_figure(runs, x="gradient_evaluations", x_max=25)
    assert [trace.name for trace in figure.data] == [None, "JD p=0.5", "ReLU (fixed)"]  # band, then lines
    finals = [h.frame["train_accuracy"].iloc[-1] for h in runs]
    low, high = figure.layout.yaxis.range
    assert low <= min(finals) and high >= max(finals) and 0 <= low and high <= 1
    assert tuple(figure.layout.xaxis.range) == (0, 25)
    hyper = jd_mnist.hyperparameter_figure(runs[:2])
    assert [trace.name for trace in hyper.data] == ["JD p=0.5"] * 3
