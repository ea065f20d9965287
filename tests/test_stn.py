"""Self-Tuning Networks: the best response, its hypergradient and the study, against exact answers.

Ridge regression has a closed-form best response, so the hypergradient through a fitted
response, the exact hypergradient, the Jacobian and the minimizer of STN's training objective
are all checked against finite differences or quadrature in float64.
"""

import inspect
import math

import numpy as np
import pandas as pd
import pytest
import torch

from hpolab import claims, hypergrad, run
from hpolab.data import data_root
from hpolab.history import History
from hpolab.methods import stn, stn_mlp
from hpolab.hypergrad.task import logistic_regression_task
from hpolab.problems.tuning import tuning_problem
from hpolab import splits
from hpolab.studies import stn as study
from hpolab.studies import stn_network as network
from hpolab.studies import stn_ridge as ridge_study
from tasks import noisy_linear_labels

needs_mnist = pytest.mark.skipif(not (data_root() / "MNIST" / "raw").exists(),
                                 reason="real MNIST not in data/: copy ../shared/data into data/, see data/README.md")


@pytest.fixture
def ridge():
    return ridge_study.ridge_data(n_train=20, n_val=30, n_test=30, features=8, seed=1)


def central(f, h, eps=1e-5):
    return (f(h + eps) - f(h - eps)) / (2 * eps)


def random_structured(sizes=(6, 5, 4, 3), seed=0):
    generator = torch.Generator().manual_seed(seed)
    phi = list(stn_mlp.structured_init(sizes, 2, generator, dtype=torch.float64))
    for index in range(0, len(phi), stn_mlp.LAYER):
        phi[index + 4] = torch.randn(phi[index + 4].shape, generator=generator, dtype=torch.float64)
    x = torch.randn(7, sizes[0], generator=generator, dtype=torch.float64)
    y = torch.randint(0, sizes[-1], (7,), generator=generator)
    return tuple(phi), (x, y)


# --- the exact best response of ridge regression ------------------------------------------------


def test_ridge_best_response_minimizes_the_training_loss_and_its_jacobian_matches_finite_differences(ridge):
    x, y = ridge.train
    h = 0.7
    w = ridge_study.ridge_best_response(x, y, h)
    gradient = x.T @ (x @ w - y) + math.exp(h) * w
    assert gradient.norm() < 1e-10 * (x.T @ y).norm()
    numeric = central(lambda t: ridge_study.ridge_best_response(x, y, t), h)
    assert torch.allclose(ridge_study.ridge_jacobian(x, y, h)[:, 0], numeric, rtol=1e-7, atol=1e-10)


def test_exact_hypergradient_matches_finite_differences_of_the_exact_validation_loss(ridge):
    for h in (-2.0, 0.5, 3.0):
        numeric = central(lambda t: ridge_study.ridge_validation_curve(ridge, [t])[0], h)
        assert ridge_study.ridge_exact_hypergradient(ridge, h) == pytest.approx(numeric, rel=1e-6)


def test_ridge_optimum_is_the_minimum_of_the_exact_validation_curve(ridge):
    h = ridge_study.ridge_optimum(ridge)
    around = ridge_study.ridge_validation_curve(ridge, [h - 0.01, h, h + 0.01])
    assert around[1] <= around[0] and around[1] <= around[2]
    assert abs(ridge_study.ridge_exact_hypergradient(ridge, h)) < 1e-7


# --- hypergradients through a response --------------------------------------------------------


def test_hypergradient_through_a_linear_response_matches_finite_differences(ridge):
    generator = torch.Generator().manual_seed(0)
    d = ridge.train[0].shape[1]
    phi = (torch.randn(d, generator=generator, dtype=torch.float64),
           torch.randn(d, 1, generator=generator, dtype=torch.float64))
    model = ridge_study.ridge_model(len(ridge.train[1]))
    loss, grad = stn.hypergradient(model, phi, ridge.val, 1)
    numeric = central(lambda t: float(model.val_loss(phi, torch.tensor([t], dtype=torch.float64), ridge.val)), 0.0)
    assert float(grad[0]) == pytest.approx(numeric, rel=1e-7)
    assert float(loss) == pytest.approx(float(ridge_study.squared_loss(phi[0], ridge.val)))


def test_the_exact_linearization_gives_the_exact_hypergradient(ridge):
    """With w0 = w*(c) and W1 = dw*/dh(c), STN's hypergradient is d L_val(w*(h)) / dh at c."""
    x, y = ridge.train
    for h in (-1.0, 2.0):
        phi = (ridge_study.ridge_best_response(x, y, h), ridge_study.ridge_jacobian(x, y, h))
        _, grad = stn.hypergradient(ridge_study.ridge_model(len(y)), phi, ridge.val, 1)
        numeric = central(lambda t: ridge_study.ridge_validation_curve(ridge, [t])[0], h)
        assert float(grad[0]) == pytest.approx(numeric, rel=1e-6)


def test_hypergradient_through_the_structured_mlp_response_matches_finite_differences():
    phi, batch = random_structured()
    model = stn_mlp.mlp_response()
    _, grad = stn.hypergradient(model, phi, batch, 2)
    for k in range(2):
        def f(t, k=k):
            delta = torch.zeros(2, dtype=torch.float64)
            delta[k] = t
            return float(model.val_loss(phi, delta, batch))
        assert float(grad[k]) == pytest.approx(central(f, 0.0), rel=1e-6)


# --- STN's training objective ------------------------------------------------------------------


def test_closed_form_minimizer_zeroes_the_expected_training_gradient(ridge):
    """E_delta of the (shared-delta) training loss by Gauss-Hermite quadrature: its gradient in
    (w0, W1) vanishes at ridge_stn_optimum."""
    x, y = ridge.train
    h, sigma = 0.5, 0.6
    w0, w1 = (t.clone().requires_grad_() for t in ridge_study.ridge_stn_optimum(x, y, h, sigma))
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    model = ridge_study.ridge_model(len(y))
    hyper = torch.full((len(y), 1), h, dtype=torch.float64)
    expected = sum(float(wt) / math.sqrt(2 * math.pi) * model.train_loss(
        (w0, w1), hyper, torch.full((len(y), 1), sigma * float(node), dtype=torch.float64), ridge.train, None)
        for node, wt in zip(nodes, weights))
    grads = torch.autograd.grad(expected, (w0, w1))
    assert max(float(g.abs().max()) for g in grads) < 1e-10


def test_stn_objective_minimizer_tends_to_the_exact_response_as_sigma_shrinks(ridge):
    sweep = ridge_study.ridge_sigma_sweep(ridge, [0.5], [1e-3, 1e-2, 0.1, 1.0])
    assert sweep["Jacobian error"].is_monotonic_increasing and sweep["response error"].is_monotonic_increasing
    assert sweep["Jacobian error"].iloc[0] < 1e-4
    small = sweep.iloc[0]
    assert small["hypergradient"] == pytest.approx(small["exact hypergradient"], rel=1e-4)


def test_training_phase_fits_the_closed_form_minimizer(ridge):
    x, y = ridge.train
    h, sigma = 0.5, 0.3
    generator = torch.Generator().manual_seed(0)
    phi = stn.linear_init(x.shape[1], 1)
    for lr in (0.01, 0.001):  # Adam at a fixed step hovers around the minimizer at about that step's scale
        method = stn.self_tuning(ridge_study.ridge_model(len(y)), sigma, lr=lr, per_example=False)
        state = method.init(phi, torch.tensor([h], dtype=torch.float64))
        for _ in range(2000):
            state = method.train(state, ridge.train, generator)
        phi = state.phi
    w0, w1 = ridge_study.ridge_stn_optimum(x, y, h, sigma)
    assert ridge_study.relative_error(state.phi[0], w0) < 0.01
    assert ridge_study.relative_error(state.phi[1], w1) < 0.05
    assert float(state.hyper[0]) == h and state.train_steps == 2000 and state.tune_steps == 0


# --- the structured response -------------------------------------------------------------------


def test_recentering_leaves_the_response_unchanged():
    phi, batch = random_structured()
    model = stn_mlp.mlp_response()
    shift, delta = torch.tensor([0.3, -0.7], dtype=torch.float64), torch.tensor([-0.2, 0.5], dtype=torch.float64)
    moved = model.recenter(phi, shift)
    assert float(model.val_loss(moved, delta, batch)) == pytest.approx(float(model.val_loss(phi, delta + shift, batch)),
                                                                       rel=1e-12)
    for a, b in zip(stn_mlp.structured_weights(moved, delta), stn_mlp.structured_weights(phi, delta + shift)):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
    linear = stn.linear_response(lambda w, hyper, batch: (w * w).sum(1), lambda w, batch: (w * w).sum())
    w0, w1 = torch.randn(5, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    assert float(linear.val_loss(linear.recenter((w0, w1), shift), delta, None)) == pytest.approx(
        float(linear.val_loss((w0, w1), delta + shift, None)), rel=1e-12)


def test_structured_penalty_is_the_squared_norm_of_each_examples_weights():
    phi, _ = random_structured()
    deltas = torch.randn(4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    penalty = stn_mlp.structured_penalty(phi, stn_mlp.layer_scales(phi, deltas))
    for i in range(4):
        weights = stn_mlp.structured_weights(phi, deltas[i])
        assert float(penalty[i]) == pytest.approx(float(sum((w * w).sum() for w in weights[::2])), rel=1e-12)


def test_per_example_scales_give_each_example_its_own_weights():
    phi, (x, _) = random_structured()
    deltas = torch.randn(len(x), 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    batched = stn_mlp.mlp_logits(phi, x, scales=stn_mlp.layer_scales(phi, deltas))
    for i in range(len(x)):
        single = stn_mlp.mlp_logits(stn_mlp.structured_weights(phi, deltas[i]), x[i:i + 1])
        assert torch.allclose(batched[i], single[0], rtol=1e-12, atol=1e-12)


def test_structured_response_starts_as_the_plain_mlp_of_the_same_seed():
    sizes = (6, 5, 3)
    phi = stn_mlp.structured_init(sizes, 2, torch.Generator().manual_seed(9), dtype=torch.float64)
    plain = stn_mlp.mlp_init(sizes, torch.Generator().manual_seed(9), dtype=torch.float64)
    x = torch.randn(4, 6, dtype=torch.float64)
    for delta in (torch.zeros(2, dtype=torch.float64), torch.tensor([1.0, -2.0], dtype=torch.float64)):  # V = 0
        assert torch.equal(stn_mlp.mlp_logits(phi, x, scales=stn_mlp.layer_scales(phi, delta)), stn_mlp.mlp_logits(plain, x))


def test_dropout_masks_keep_each_examples_rate_and_the_mean():
    keep = torch.tensor([0.9, 0.5, 0.2])
    masks = stn_mlp.dropout_masks((3, 200_000), keep, torch.Generator().manual_seed(0))
    assert torch.allclose((masks > 0).float().mean(1), keep, atol=0.005)
    assert torch.allclose(masks.mean(1), torch.ones(3), atol=0.02)


# --- the method ------------------------------------------------------------------------------


def test_stn_adam_takes_torch_adams_steps_bit_for_bit():
    generator = torch.Generator().manual_seed(0)
    params = tuple(torch.randn(shape, generator=generator, dtype=torch.float64) for shape in ((4,), (2, 3)))
    leaves = [p.clone().requires_grad_() for p in params]
    reference = torch.optim.Adam(leaves, lr=0.05)
    optimizer = stn.adam(0.05)
    state = optimizer.init(params)
    for _ in range(5):
        grads = tuple(torch.randn(p.shape, generator=generator, dtype=torch.float64) for p in params)
        params, state = optimizer.update(grads, state, params)
        for leaf, g in zip(leaves, grads):
            leaf.grad = g.clone()
        reference.step()
    for mine, theirs in zip(params, leaves):
        assert torch.equal(mine, theirs.detach())


def test_tuning_step_moves_lambda_downhill_recenters_and_stays_in_the_box(ridge):
    x, y = ridge.train
    model = ridge_study.ridge_model(len(y))
    method = stn.self_tuning(model, 0.1, hyper_lr=0.5, limits=([-1.0], [1.0]), per_example=False)
    h = -0.9
    state = method.init((ridge_study.ridge_best_response(x, y, h), ridge_study.ridge_jacobian(x, y, h)),
                        torch.tensor([h], dtype=torch.float64))
    tuned = method.tune(state, ridge.val)
    assert float(tuned.hypergradient[0]) < 0 and float(tuned.hyper[0]) == pytest.approx(h + 0.5)
    shift = tuned.hyper - state.hyper
    assert torch.allclose(tuned.phi[0], state.phi[0] + state.phi[1] @ shift)
    for _ in range(5):
        tuned = method.tune(tuned, ridge.val)
    assert float(tuned.hyper[0]) <= 1.0 and tuned.tune_steps == 6


@pytest.mark.parametrize("settings, message", [
    ({"sigma": 0.0}, "sigma must be finite and > 0"),
    ({"sigma": [0.5, -1.0]}, "sigma must be finite and > 0"),
    ({"sigma": 0.5, "train_steps": 0}, "train_steps must be an integer >= 1"),
    ({"sigma": 0.5, "hyper_lr": 0.0}, "hyper_lr must be a finite number > 0"),
    ({"sigma": 0.5, "limits": ([1.0], [0.0])}, "limits must have low < high"),
])
def test_bad_settings_fail_at_construction(settings, message):
    with pytest.raises(ValueError, match=message):
        stn.self_tuning(stn_mlp.mlp_response(), **settings)


def test_network_box_is_the_ranges_in_log_and_logit_space():
    low, high = network.network_limits((1e-5, 1e-2), (0.1, 0.5))
    assert low == pytest.approx([math.log(1e-5), math.log(0.1 / 0.9)]) and high == pytest.approx([math.log(1e-2), 0.0])
    with pytest.raises(ValueError, match="dropout low < high < 1"):
        network.network_limits((1e-5, 1e-2), (0.0, 0.5))


def test_to_lambda_needs_a_dropout_strictly_inside_zero_one():
    assert network.to_lambda(1e-3, 0.5).tolist() == pytest.approx([math.log(1e-3), 0.0])
    with pytest.raises(ValueError, match="dropout must lie in the open interval"):
        network.to_lambda(1e-3, 0.0)


# --- STN as a tuner of any task (TUNERS["stn"]) -------------------------------------------------


def logistic_setting(log_l2=-1.0):
    task = logistic_regression_task(*noisy_linear_labels(100))
    return task, hypergrad.schedule(40, lr=0.01, learn=("log_l2",), log_l2=log_l2)


def test_task_response_fitted_at_small_sigma_gives_the_implicit_hypergradient():
    """On l2-logistic regression (strongly convex), the linear response fitted by STN's training
    phase alone carries d L_val(w*(lambda)) / d lambda: checked against central differences of
    the validation loss at Newton-solved optima, in float64."""
    task, hyper = logistic_setting()
    batch = task.batch(slice(None))

    def optimum(log_l2):
        loss = lambda w: task.train_loss(w, batch, {"log_l2": torch.tensor(log_l2, dtype=torch.float64)})
        w = torch.zeros(20, dtype=torch.float64)
        for _ in range(30):
            w = w - torch.linalg.solve(torch.func.hessian(loss)(w), torch.func.grad(loss)(w))
        return w

    exact = float(central(lambda h: task.val_loss(optimum(h)), -1.0))
    model = stn.task_response(task, hyper)
    method = stn.self_tuning(model, 0.1, lr=0.03, train_steps=1, per_example=False)
    generator = torch.Generator().manual_seed(0)
    state = method.init((task.init(0), torch.zeros(20, 1, dtype=torch.float64)), hyper.pack())
    for _ in range(2000):
        state = method.train(state, batch, generator)
    _, estimate = stn.hypergradient(model, state.phi, None, 1)
    assert float(estimate) == pytest.approx(exact, rel=0.02)
    w_star = optimum(-1.0)
    assert float((state.phi[0] - w_star).norm() / w_star.norm()) < 1e-2


def test_stn_tuner_charges_each_cycle_and_records_the_response_at_its_centre():
    task, hyper = logistic_setting(log_l2=-2.0)
    method = stn.stn_tuning(task, hyper, sigma=0.5, lr=0.05, hyper_lr=0.1, train_steps=10, tune_steps=2)
    frame = run(method, tuning_problem(task, hyper), 5 * 12, seed=0).frame
    assert frame["iteration"].diff().iloc[1:].eq(12).all() and frame["kind"].iloc[1:].eq("stn").all()
    assert frame["log_l2"].iloc[-1] > -2.0 and frame["train_loss"].iloc[1:].notna().all()


def test_stn_tuner_refuses_to_learn_an_optimizer_schedule():
    task, _ = logistic_setting()
    hyper = hypergrad.schedule(40, lr=0.01, learn=("lr", "log_l2"), log_l2=-1.0)
    with pytest.raises(ValueError, match=r"not the optimizer's schedules \['lr'\]"):
        stn.stn_tuning(task, hyper)


# --- the study ----------------------------------------------------------------------------------


def test_stn_finds_the_ridge_optimum_and_fits_the_response_there():
    data = ridge_study.ridge_data(seed=2)
    run = ridge_study.run_ridge(data, log_lambda0=-4.0, cycles=200, warmup=1000)
    frame = run.history.frame
    assert abs(frame["log_lambda"].iloc[-1] - run.optimum) < 0.1
    assert frame["objective"].iloc[-1] < 1.01 * frame["exact_val_loss"].min()
    assert frame["jacobian_error"].iloc[len(frame) // 2:].median() < 0.3
    assert [s["tune_step"] for s in run.snapshots] == [0, 67, 133, 200]
    again = ridge_study.run_ridge(data, log_lambda0=-4.0, cycles=200, warmup=1000)
    assert again.history.frame.drop(columns="wall_time").equals(frame.drop(columns="wall_time"))


def test_response_curves_are_exact_at_the_fitted_line_and_linear(ridge):
    run = ridge_study.run_ridge(ridge, cycles=4, warmup=2000, snapshots=2)
    curves = study.ridge_response_curves(run, span=1.0, points=5, coordinates=2)
    assert set(curves["kind"]) == {"exact", "fitted"} and len(curves) == 2 * 5 * 2
    fitted = curves[(curves["kind"] == "fitted") & (curves["tune_step"] == 4)]
    assert np.allclose(np.diff(fitted["w0"], 2), 0, atol=1e-12)  # a straight line in log lambda


@needs_mnist
def test_network_runs_share_initialization_and_repeat_exactly():
    data = splits.mnist_split(64, 64, 64)
    common = {"hidden": (8,), "steps": 12, "batch_size": 16, "evaluations": 3, "warmup": 2, "train_steps": 2}
    runs = [network.run_network(network.NetworkSetting(m, 1e-3, 0.2, **common), data, seed=5) for m in ("stn", "fixed", "stn")]
    assert runs[0].frame["objective"].iloc[0] == runs[1].frame["objective"].iloc[0]  # same elementary weights
    assert runs[0].frame.drop(columns="wall_time").equals(runs[2].frame.drop(columns="wall_time"))
    assert runs[0].frame["tune_step"].iloc[-1] == 6 and runs[0].frame["step"].iloc[-1] == 12
    assert runs[1].frame["weight_decay"].eq(1e-3).all() and runs[0].frame["weight_decay"].nunique() > 1


@needs_mnist
def test_smoke_study_summarizes_every_setting_and_checks_its_claims(tmp_path):
    result = study.run_study("smoke", seeds=2, progress=False)
    summary = result.summary
    assert list(summary.columns) == ["task", "method", "weight decay", "dropout", "val loss", "val ±95%", "test loss",
                                     "test acc", "train steps", "val steps", "passes", "runs"]
    assert list(summary["method"]) == ["STN", "wd=0.0001, p=0", "wd=0.0001, p=0.5", network.REPLAY, "STN",
                                       "exact optimum"]
    assert list(summary["runs"]) == [2, 2, 2, 2, 1, 0] and summary["val loss"].notna().all()
    stn_runs = [h for h in result.histories if h.method == "stn" and h.problem == "mnist-mlp"]
    assert summary.loc[0, "val loss"] == pytest.approx(np.mean([h.final_objective for h in stn_runs]))
    warmup = network.WARMUP_EPOCHS * (256 // 128)  # 5 epochs of 2 batches
    assert result.parameters["warmup_steps"] == warmup == 10
    assert summary.loc[0, "val steps"] == (60 - warmup) // network.TRAIN_STEPS + 1
    assert len(stn_runs[0].schedule) == summary.loc[0, "val steps"] + 1
    assert summary.loc[0, "passes"] == 2 * (60 + summary.loc[0, "val steps"]) and summary.loc[1, "passes"] == 60
    replays = [h for h in result.histories if h.method == "replay"]
    assert [h.seed for h in replays] == [0, 1] and replays[0].as_schedule() == stn_runs[0].as_schedule()
    assert len(network.per_seed(result)) == 2
    grid, paths = study.grid_points(result)
    assert len(grid) == 2 and len(paths) == sum(len(h.frame) for h in stn_runs)
    assert set(result.save(tmp_path)) == {"summary", "histories", "parameters", "sigma_sweep"}
    table = claims.evaluate("12_stn_best_response", result, "smoke")
    assert len(table) == len(study.CLAIMS) and (table["verdict"] == "not testable here").all()
    for figure in (study.validation_figure(result), study.grid_figure(result), study.schedule_figure(result),
                   study.best_response_figure(result.ridge), study.ridge_trajectory_figure(result.ridge),
                   study.sigma_figure(result.sweep)):
        assert len(figure.data) > 1


def test_study_rejects_a_negative_warmup():
    with pytest.raises(ValueError, match=r"warmup_epochs must be a finite number >= 0"):
        study.run_study("smoke", warmup_epochs=-1, progress=False)


# --- the setting: the authors' code where the notes give none ----------------------------------


def test_network_defaults_follow_the_authors_code():
    """cnn/hypertrain.py of the STN authors: perturbation scale 0.5, two training steps per
    tuning step, validation batches of the training batch size, 5 warm-up epochs, dropout
    started at 0.05; the step size on lambda from travel_lr, not a fixed 0.1."""
    setting = network.NetworkSetting("stn", 1e-4, 0.05)
    assert (setting.sigma, setting.train_steps, setting.val_batch_size, setting.hyper_lr) == (0.5, 2, None, None)
    assert setting.warmup_steps(2000) == 5 * (2000 // 128)
    defaults = inspect.signature(study.run_study).parameters
    assert defaults["dropout"].default == 0.05 and defaults["warmup_epochs"].default == 5
    assert defaults["hyper_lr"].default is None and defaults["val_batch_size"].default is None
    assert defaults["ridge_sigma"].default == 0.5 == defaults["sigma"].default
    assert inspect.signature(ridge_study.run_ridge).parameters["sigma"].default == 0.5


def test_travel_lr_lets_adam_cross_the_widest_side_of_the_box_once():
    limits = network.network_limits()  # log weight decay spans ln(1e7)
    assert ridge_study.travel_lr(limits, 100) == pytest.approx(math.log(1e7) / 100)
    paper = network.NetworkSetting("stn", 1e-4, 0.05, steps=20_000)
    assert paper.tuning_steps(50_000) == (20_000 - 5 * 390) // 2 + 1
    assert ridge_study.travel_lr(limits, paper.tuning_steps(50_000)) == pytest.approx(1.79e-3, rel=0.01)
    with pytest.raises(ValueError, match="tuning_steps must be an integer >= 1"):
        ridge_study.travel_lr(limits, 0)


def test_scheduled_hyperparameters_are_those_in_force_before_each_step():
    schedule = ((0, 1e-4, 0.05), (10, 1e-3, 0.1), (12, 1e-2, 0.2))
    assert [network.scheduled(schedule, t) for t in (1, 10, 11, 12, 13, 99)] == [
        (1e-4, 0.05), (1e-4, 0.05), (1e-3, 0.1), (1e-3, 0.1), (1e-2, 0.2), (1e-2, 0.2)]


@needs_mnist
def test_replaying_a_constant_schedule_is_the_fixed_run_and_stn_records_its_schedule():
    data = splits.mnist_split(64, 64, 64)
    common = {"hidden": (8,), "steps": 12, "batch_size": 16, "evaluations": 3}
    fixed = network.run_network(network.NetworkSetting("fixed", 1e-3, 0.2, **common), data, seed=3)
    replay = network.run_network(network.NetworkSetting("replay", 0.0, 0.0, schedule=((0, 1e-3, 0.2),), **common),
                               data, seed=3)
    columns = ["step", "objective", "test_loss", "weight_decay", "dropout"]
    assert replay.frame[columns].equals(fixed.frame[columns]) and replay.label == network.REPLAY
    tuned = network.run_network(network.NetworkSetting("stn", 1e-3, 0.2, warmup=4, **common), data, seed=3)
    assert list(tuned.schedule["step"]) == [0, 4, 6, 8, 10, 12]
    last = tuned.schedule.iloc[-1]
    assert tuned.frame["weight_decay"].iloc[-1] == pytest.approx(last["weight_decay"])
    moving = network.run_network(network.NetworkSetting("replay", 0.0, 0.0, schedule=tuned.as_schedule(), **common),
                               data, seed=3)
    assert moving.frame["dropout"].iloc[-1] == pytest.approx(network.scheduled(tuned.as_schedule(), 12)[1])
    with pytest.raises(ValueError, match="schedule must hold at least one"):
        network.run_network(network.NetworkSetting("replay", 0.0, 0.0, **common), data)


def test_local_errors_of_the_exact_linearization_are_second_order_and_beat_the_constant(ridge):
    x, y = ridge.train
    h = 1.0
    w0, w1 = ridge_study.ridge_best_response(x, y, h), ridge_study.ridge_jacobian(x, y, h)[:, 0]
    small, large = (ridge_study.local_errors(x, y, w0, w1, h, sigma) for sigma in (0.05, 0.1))
    assert small["local_error"] < small["constant_error"] / 10
    assert large["local_error"] / small["local_error"] == pytest.approx(4, rel=0.1)  # O(sigma^2)
    assert large["constant_error"] / small["constant_error"] == pytest.approx(2, rel=0.1)  # O(sigma)


# --- the claims, on constructed results where each holds and where it fails ----------------------


def claim(claim_id):
    return next(c for c in study.CLAIMS if c.id == claim_id)


def ridge_result(ridge, log_lambdas, local=0.02, constant=0.1):
    frame = pd.DataFrame({"log_lambda": log_lambdas, "local_error": local, "constant_error": constant,
                          "jacobian_error": 0.05, "objective": 1.0})
    history = History(frame, "stn", "STN", "ridge", 0, {"sigma": 0.5, "hyper_lr": 0.08})
    run = ridge_study.RidgeRun(history, [], ridge_study.ridge_optimum(ridge), ridge)
    return study.STNResult([history], pd.DataFrame(columns=["task", "method"]), {}, run)


def test_ridge_claims_hold_near_the_exact_response_and_optimum_and_fail_away_from_them(ridge):
    best = ridge_study.ridge_optimum(ridge)
    good = ridge_result(ridge, [-4.0, 0.0, best])
    assert claim("linear-response-tracks-ridge").evaluate(good, "cpu").status == "holds"
    found = claim("hypergradient-through-response-finds-ridge-optimum").evaluate(good, "cpu")
    assert found.status == "holds" and "log lambda -4 ->" in found.measured
    far = ridge_result(ridge, [-4.0, -4.0, -4.0], local=0.2)
    assert claim("linear-response-tracks-ridge").evaluate(far, "cpu").status == "fails"
    assert claim("hypergradient-through-response-finds-ridge-optimum").evaluate(far, "cpu").status == "fails"
    no_better = ridge_result(ridge, [best] * 3, local=0.05, constant=0.04)  # small, but no better than w0 alone
    assert claim("linear-response-tracks-ridge").evaluate(no_better, "cpu").status == "fails"
    none = study.STNResult([], pd.DataFrame(columns=["task", "method"]), {})
    assert claim("linear-response-tracks-ridge").evaluate(none, "cpu").status == "not testable here"


def mlp_run(method, weight_decay, dropout, seed, val, passes, schedule=None):
    frame = pd.DataFrame({"step": [100], "tune_step": [50 if method == "stn" else 0], "objective": [val],
                          "weight_decay": [weight_decay], "dropout": [dropout], "test_loss": [val],
                          "test_accuracy": [0.9], "wall_time": [1.0], "passes": [passes]})
    setting = network.NetworkSetting(method, weight_decay, dropout)
    path = pd.DataFrame(schedule or [(0, weight_decay, dropout)], columns=["step", "weight_decay", "dropout"])
    return network.STNHistory(frame, method, setting.label, "mnist-mlp", seed, {"sigma": 0.5}, [], schedule=path)


def mlp_result(stn_val, replay_val, stn_passes=250, moved=True):
    runs = []
    for seed in (0, 1):
        end = (1e-2, 0.5) if moved else (1.2e-4, 0.06)
        runs += [mlp_run("stn", *end, seed, stn_val, stn_passes, [(0, 1e-4, 0.05), (50, *end)]),
                 mlp_run("fixed", 1e-3, 0.0, seed, 0.30, 100), mlp_run("fixed", 1e-2, 0.25, seed, 0.25, 100),
                 mlp_run("fixed", 1e-5, 0.5, seed, 0.40, 100), mlp_run("replay", 1e-2, 0.5, seed, replay_val, 100)]
    return study.STNResult(runs, network.summarize(runs), {})


def test_network_claims_hold_and_fail_on_constructed_results():
    good = mlp_result(stn_val=0.26, replay_val=0.24)
    for claim_id in ("stn-matches-best-fixed", "stn-schedule-beats-best-fixed-from-scratch", "stn-yields-a-schedule",
                     "stn-costs-less-than-the-grid"):
        assert claim(claim_id).evaluate(good, "cpu").status == "holds", claim_id
    found = claim("stn-matches-best-fixed").evaluate(good, "cpu")
    assert "best of 3 fixed (wd=0.01, p=0.25) 0.25" in found.measured and "ranks 2 of 4" in found.measured
    bad = mlp_result(stn_val=0.27, replay_val=0.25, stn_passes=350, moved=False)
    for claim_id in ("stn-matches-best-fixed", "stn-schedule-beats-best-fixed-from-scratch", "stn-yields-a-schedule",
                     "stn-costs-less-than-the-grid"):
        assert claim(claim_id).evaluate(bad, "cpu").status == "fails", claim_id
    found = claim("stn-schedule-beats-best-fixed-from-scratch").evaluate(bad, "cpu")
    assert "lower than the seed's best fixed in 0 of 2 seeds" in found.measured
