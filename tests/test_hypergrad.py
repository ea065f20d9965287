"""Hypergradient estimators against central finite differences (float64) and each other."""

import importlib
import math

import pytest
import torch
from torch import nn

from hpolab.hypergrad import (
    box,
    classification_task,
    forward_mode,
    gradient_descent,
    greedy,
    implicit,
    make_estimator,
    per_entry,
    reverse_mode,
    schedule,
    sign_descent,
    train,
    validation_losses,
    zeroth_order,
)
from hpolab.hypergrad.forward import forward_hypergradient
from hpolab.hypergrad.task import Adam
from hpolab.smoothing import smoothed_gradient

FD_STEP = 1e-6


def synthetic(n, d, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator, dtype=torch.float64)
    y = (x[:, 0] - 0.7 * x[:, 1] + 0.3 * torch.randn(n, generator=generator, dtype=torch.float64) > 0).long()
    return x, y


def mlp_task(batch_norm=False):
    torch.manual_seed(0)
    layers = [nn.Linear(5, 8)] + ([nn.BatchNorm1d(8)] if batch_norm else []) + [nn.Tanh(), nn.Linear(8, 2)]
    return classification_task(nn.Sequential(*layers), synthetic(64, 5, 1), synthetic(32, 5, 2), batch_size=16,
                               dtype=torch.float64)


def logistic_task():
    return classification_task(nn.Linear(4, 2), synthetic(60, 4, 3), synthetic(40, 4, 4), batch_size=None,
                               l2_term=True, dtype=torch.float64)


def finite_differences(task, hyper, seed=0):
    h = hyper.pack()

    def loss(point):
        return float(task.val_loss(train(task, hyper, seed, point).theta))

    return torch.tensor([(loss(h + FD_STEP * e) - loss(h - FD_STEP * e)) / (2 * FD_STEP)
                         for e in torch.eye(h.numel(), dtype=torch.float64)])


def relative(a, b):
    return float((a - b).abs().max() / b.abs().max())


def optimizer_hyper(window):
    T = 30
    n = math.ceil(T / window)
    return schedule(T, lr=torch.linspace(0.1, 0.3, n), momentum=0.5, weight_decay=1e-3, windows={"lr": window},
                    learn=("lr", "momentum", "weight_decay"))


@pytest.mark.parametrize("window", [1, 7, 30])
@pytest.mark.parametrize("batch_norm", [False, True], ids=["mlp", "mlp-batchnorm"])
def test_forward_and_reverse_match_finite_differences_on_mlp(window, batch_norm):
    task, hyper = mlp_task(batch_norm), optimizer_hyper(window)
    fd = finite_differences(task, hyper)
    forward = forward_mode()(task, hyper, 0)
    reverse = reverse_mode()(task, hyper, 0)
    assert relative(forward.grad, fd) < 1e-4
    assert relative(reverse.grad, fd) < 1e-4
    assert relative(forward.grad, reverse.grad) < 1e-6
    assert forward.loss == pytest.approx(reverse.loss, rel=1e-12)


def test_every_registered_gradient_estimator_agrees_on_logistic_regression():
    task = logistic_task()
    hyper = schedule(400, lr=1.0, momentum=0.5, learn=("log_l2",), log_l2=-3.0)  # trains to the minimizer
    fd = finite_differences(task, hyper)
    names = ("forward", "reverse", "unrolled-forward", "implicit")
    results = {name: make_estimator(name)(task, hyper, 0) for name in names}
    for result in results.values():
        assert relative(result.grad, fd) < 1e-4
    assert relative(results["forward"].grad, results["reverse"].grad) < 1e-6
    assert relative(results["unrolled-forward"].grad, results["reverse"].grad) < 1e-6
    assert relative(results["implicit"].grad, results["forward"].grad) < 1e-6


def test_hypergradients_of_example_weights_match_finite_differences():
    x, y = synthetic(48, 4, 5)
    groups = torch.arange(48) % 6
    task = classification_task(nn.Linear(4, 2), (x, y), synthetic(30, 4, 6), batch_size=12,
                               example_groups=groups, dtype=torch.float64)
    hyper = schedule(20, lr=0.5, learn=("example_weights",), example_weights=torch.linspace(-1, 1, 6))
    fd = finite_differences(task, hyper)
    assert relative(forward_mode()(task, hyper, 0).grad, fd) < 1e-4
    assert relative(reverse_mode()(task, hyper, 0).grad, fd) < 1e-4


def test_greedy_over_the_whole_horizon_is_the_non_greedy_hypergradient():
    task, hyper = mlp_task(), optimizer_hyper(7)
    assert relative(greedy(30)(task, hyper, 0).grad, forward_mode()(task, hyper, 0).grad) < 1e-12


def test_greedy_one_step_is_hypergradient_descent_formula():
    """With H = 1, W = 1 and plain SGD, dL_val(theta_{t+1})/dalpha_t = -grad L_val(theta_{t+1}) . g_t."""
    task = mlp_task()
    T = 4
    hyper = schedule(T, lr=torch.full((T,), 0.2), windows={"lr": 1})
    result = greedy(1)(task, hyper, 0)
    theta = task.init(0)
    batches = task.batches(0, T)
    expected = []
    for t in range(T):
        g = torch.func.grad(task.train_loss)(theta, task.batch(batches[t]), {})
        theta = theta - 0.2 * g
        expected.append(-torch.func.grad(task.val_loss)(theta) @ g)
    assert torch.allclose(result.grad, torch.stack(expected), rtol=1e-10)
    assert relative(result.grad, forward_mode()(task, hyper, 0).grad) > 1e-3  # greedy is a different quantity


def test_batched_zeroth_order_runs_equal_the_loop_exactly():
    task, hyper = mlp_task(), optimizer_hyper(10)
    points = hyper.pack() + 0.01 * torch.randn(9, hyper.pack().numel(), dtype=torch.float64,
                                               generator=torch.Generator().manual_seed(0))
    batched = validation_losses(task, hyper, points, 0, batched=True)
    looped = validation_losses(task, hyper, points, 0, batched=False)
    assert torch.equal(batched.losses, looped.losses)
    assert torch.equal(batched.thetas, looped.thetas)
    unbatched = torch.tensor([float(task.val_loss(train(task, hyper, 0, p).theta)) for p in points],
                             dtype=torch.float64)  # the plain path: other kernels, same numbers to rounding
    assert torch.allclose(batched.losses, unbatched, rtol=1e-12, atol=0)


def test_zeroth_order_with_a_box_trains_only_at_points_inside_it(monkeypatch):
    zo = importlib.import_module("hpolab.hypergrad.zeroth_order")  # the package exports a function of that name
    task, hyper = mlp_task(), optimizer_hyper(10)
    seen = []

    def recording(task, hyper, points, seed, batched=True, meter=None):
        seen.append(points)
        return validation_losses(task, hyper, points, seed, batched, meter)

    monkeypatch.setattr(zo, "validation_losses", recording)
    h = hyper.pack()
    low, high = h - 0.01, h + 0.01
    zeroth_order(q=6, mu=1.0, limits=(low, high))(task, hyper, 0)
    assert ((seen[0] >= low) & (seen[0] <= high)).all() and (seen[0] != h).any()
    assert torch.equal(zeroth_order(q=3, mu=1.0, limits=(h, h))(task, hyper, 0).grad, torch.zeros_like(h))


def test_zeroth_order_spread_over_replicas_equals_one_batch():
    """Three replicas (on one CPU here; one per GPU in use) share the q + 1 = 5 runs unevenly."""
    task, hyper = mlp_task(), optimizer_hyper(10)
    alone = zeroth_order(q=4, mu=0.01)(task, hyper, 0)
    spread = zeroth_order(q=4, mu=0.01, replicas=[task, mlp_task(), mlp_task()])(task, hyper, 0)
    # threads may sum in another order: losses agree to rounding, grads to rounding / mu
    assert math.isclose(spread.loss, alone.loss, rel_tol=1e-13)
    assert torch.allclose(spread.grad, alone.grad, rtol=1e-9, atol=1e-12)
    assert spread.cost.gradient_evaluations == alone.cost.gradient_evaluations
    assert spread.cost.function_evaluations == alone.cost.function_evaluations


def test_zeroth_order_estimate_converges_to_smoothed_gradient_as_q_grows():
    """mu = 1e-4 makes the Gaussian-smoothed gradient equal the exact one to O(mu^2); the
    estimate's error falls like 1/sqrt(q): below 10 % at q = 4000 (fixed seed)."""
    task, hyper = mlp_task(), optimizer_hyper(10)
    exact = forward_mode()(task, hyper, 0).grad
    errors = {q: relative(zeroth_order(q=q, mu=1e-4)(task, hyper, 0).grad, exact) for q in (40, 400, 4000)}
    assert errors[4000] < 0.1
    assert errors[4000] < errors[400] < errors[40]
    assert errors[40] / errors[4000] > 4  # ~ sqrt(100) = 10 expected


def test_smoothed_gradient_estimate_is_unbiased_for_the_gaussian_smoothed_function():
    """On f(h) = sum cos(h), grad f_mu = -exp(-mu^2/2) sin(h): the average of many one-direction
    estimates matches it, not the unsmoothed -sin(h)."""
    generator = torch.Generator().manual_seed(0)
    h, mu, n = torch.tensor([0.3, 1.2, -0.8], dtype=torch.float64), 0.9, 200_000
    u = torch.randn(n, 3, generator=generator, dtype=torch.float64)
    estimates = smoothed_gradient(torch.cos(h).sum(), torch.cos(h + mu * u).sum(1), u, mu)
    singles = (torch.cos(h + mu * u).sum(1) - torch.cos(h).sum())[:, None] * u / mu
    error = singles.std(0) / math.sqrt(n)
    assert ((estimates + math.exp(-mu**2 / 2) * torch.sin(h)).abs() / error).max() < 4.5
    assert ((estimates + torch.sin(h)).abs() / error).max() > 10


def test_sphere_directions_are_unbiased_for_a_quadratic():
    """Ball smoothing leaves a quadratic's gradient unchanged; the K-scaled sphere estimate finds it."""
    generator = torch.Generator().manual_seed(1)
    A = torch.tensor([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 0.5]], dtype=torch.float64)
    h, mu, n = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64), 0.5, 400_000
    u = torch.randn(n, 3, generator=generator, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    f = lambda p: 0.5 * ((p @ A) * p).sum(-1)  # noqa: E731
    estimate = smoothed_gradient(f(h), f(h + mu * u), u, mu, scale=3.0)
    assert torch.allclose(estimate, A @ h, rtol=0.02)


def test_estimators_report_their_costs():
    task, hyper = mlp_task(), optimizer_hyper(10)
    forward = forward_mode()(task, hyper, 0).cost
    reverse = reverse_mode()(task, hyper, 0).cost
    zeroth = zeroth_order(q=4)(task, hyper, 0).cost
    assert forward.gradient_evaluations == reverse.gradient_evaluations == 31
    assert forward.hvp_evaluations == sum(min(t // 10, 2) + 1 + 2 for t in range(30))  # started lr columns + 2
    assert reverse.hvp_evaluations == 30
    assert zeroth.gradient_evaluations == 5 * 30 and zeroth.function_evaluations == 5
    assert all(c.wall_time > 0 for c in (forward, reverse, zeroth))


@pytest.mark.parametrize("estimator", [forward_mode(), reverse_mode(), zeroth_order(q=2), greedy(5)],
                         ids=["forward", "reverse", "zeroth-order", "greedy"])
def test_diverging_training_returns_a_diverged_result_with_its_cost(estimator):
    task = mlp_task()
    hyper = schedule(30, lr=1.0, momentum=3.0, learn=("lr",))  # |velocity| grows like 3^t
    result = estimator(task, hyper, 0)
    assert result.diverged and result.grad is None
    assert "diverged at step" in result.message
    assert result.cost.gradient_evaluations > 0 and result.cost.wall_time > 0
    assert math.isnan(result.loss)


def test_sign_descent_halves_the_step_when_the_sign_flips_and_stays_in_the_box():
    hyper = schedule(10, lr=0.0, momentum=0.0, learn=("lr", "momentum"))
    outer = sign_descent(per_entry(hyper, {"lr": 0.4, "momentum": 1.0}), box(hyper, {"momentum": (-1.5, 1.5)}))
    state = outer.init(hyper.pack())
    state = outer.update(state, torch.tensor([-1.0, -1.0], dtype=torch.float64))
    assert state.h.tolist() == [0.4, 1.0]
    state = outer.update(state, torch.tensor([1.0, -3.0], dtype=torch.float64))
    assert state.h.tolist() == [0.2, 1.5]  # lr flipped: step halved; momentum clipped at 1.5
    assert state.step_size.tolist() == [0.2, 1.0]


def test_gradient_descent_steps_against_the_hypergradient():
    outer = gradient_descent(0.5)
    state = outer.update(outer.init(torch.tensor([1.0, 2.0])), torch.tensor([2.0, -2.0]))
    assert state.h.tolist() == [0.0, 3.0]


@pytest.mark.parametrize("build, message", [
    (lambda: schedule(10, windows={"lr": 0}), r"W must be an integer in \[1, T\] = \[1, 10\], got 0"),
    (lambda: schedule(10, windows={"lr": 11}), r"W must be an integer in \[1, T\] = \[1, 10\], got 11"),
    (lambda: schedule(10, lr=torch.ones(3), windows={"lr": 5}), r"lr schedule has 3 values, but T=10 with W=5 needs"),
    (lambda: schedule(10, learn=("dropout",)), r"learn names \['dropout'\]"),
    (lambda: zeroth_order(q=0), "q must be an integer >= 1"),
    (lambda: zeroth_order(mu=0.0), "mu must be a finite number > 0"),
    (lambda: zeroth_order(directions="uniform"), "directions must be one of"),
    (lambda: greedy(0), "H must be an integer >= 1"),
    (lambda: make_estimator("backprop"), "estimator must be one of"),
    (lambda: sign_descent(torch.tensor([0.1, 0.0])), "gamma must be > 0"),
    (lambda: box(schedule(10), {"lr": (1.0, -1.0)}), "bounds must have low < high"),
])
def test_bad_arguments_raise_value_error_naming_the_parameter(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_greedy_horizon_longer_than_training_is_rejected():
    with pytest.raises(ValueError, match=r"H \(the greedy horizon\) must be an integer in \[1, T\] = \[1, 30\]"):
        forward_hypergradient(mlp_task(), optimizer_hyper(10), 0, horizon=31)


def test_implicit_refuses_optimizer_hyperparameters():
    with pytest.raises(ValueError, match=r"implicit differentiation applies to hyperparameters of the training loss"):
        implicit()(mlp_task(), optimizer_hyper(10), 0)


def test_inner_loop_is_torch_sgd_with_momentum_and_weight_decay():
    task = mlp_task()
    T = 12
    lrs = torch.linspace(0.05, 0.2, 4)
    hyper = schedule(T, lr=lrs, momentum=0.8, weight_decay=0.01, windows={"lr": 3})
    theta = task.init(0).clone().requires_grad_()
    optimizer = torch.optim.SGD([theta], lr=0.0, momentum=0.8, weight_decay=0.01)
    batches = task.batches(0, T)
    for t in range(T):
        optimizer.param_groups[0]["lr"] = float(lrs[t // 3])
        optimizer.zero_grad()
        task.train_loss(theta, task.batch(batches[t]), {}).backward()
        optimizer.step()
    assert torch.allclose(train(task, hyper, 0).theta, theta.detach(), rtol=1e-12, atol=1e-14)


def test_loss_terms_interleaved_with_schedules_match_reverse_mode():
    task = logistic_task()
    hyper = schedule(40, lr=torch.tensor([0.5, 0.3]), momentum=0.5, windows={"lr": 20},
                     learn=("lr", "log_l2", "momentum"), log_l2=-2.0)
    forward, reverse = forward_mode()(task, hyper, 0), reverse_mode()(task, hyper, 0)
    assert relative(forward.grad, reverse.grad) < 1e-10
    assert relative(forward.grad, finite_differences(task, hyper)) < 1e-4


# ---------------------------------------------------------------------------------------------
# Adam as the inner optimizer (the HOZOG paper's logistic regression trains with it)


def adam_logistic_task(zero_feature=False):
    from hpolab.hypergrad.task import logistic_regression_task

    x, y = synthetic(60, 4, 3)
    if zero_feature:  # a feature no training example has: its gradient, and Adam's v, stay exactly 0
        x = torch.cat([x, torch.zeros(60, 1, dtype=torch.float64)], dim=1)
    xv, yv = synthetic(40, 5 if zero_feature else 4, 4)
    return logistic_regression_task((x, y), (xv, yv), optimizer=Adam())


def test_adam_inner_loop_is_torch_adam_with_weight_decay_and_an_lr_schedule():
    task = adam_logistic_task()
    T = 12
    lrs = torch.tensor([0.05, 0.02, 0.01])
    hyper = schedule(T, lr=lrs, weight_decay=0.01, windows={"lr": 4}, learn=("log_l2",), log_l2=0.3)
    theta = task.init(0).clone().requires_grad_()
    optimizer = torch.optim.Adam([theta], lr=0.0, weight_decay=0.01)
    terms = {"log_l2": torch.tensor(0.3, dtype=torch.float64)}
    for t in range(T):
        optimizer.param_groups[0]["lr"] = float(lrs[t // 4])
        optimizer.zero_grad()
        task.train_loss(theta, task.batch(slice(None)), terms).backward()
        optimizer.step()
    assert torch.allclose(train(task, hyper, 0).theta, theta.detach(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("zero_feature", [False, True], ids=["dense", "absent-feature"])
def test_forward_and_reverse_through_adam_match_finite_differences(zero_feature):
    from hpolab.hypergrad.unrolled_forward import unrolled_forward

    task = adam_logistic_task(zero_feature)
    hyper = schedule(40, lr=torch.tensor([0.05, 0.03]), windows={"lr": 20}, learn=("log_l2", "lr"), log_l2=0.5)
    fd = finite_differences(task, hyper)
    forward, reverse = unrolled_forward()(task, hyper, 0), reverse_mode()(task, hyper, 0)
    assert torch.isfinite(forward.grad).all() and torch.isfinite(reverse.grad).all()
    assert relative(forward.grad, fd) < 1e-5
    assert relative(reverse.grad, fd) < 1e-5
    assert relative(forward.grad, reverse.grad) < 1e-9
    assert forward.loss == pytest.approx(reverse.loss, rel=1e-12)


def test_forward_mode_through_the_update_equals_the_sgd_recursion():
    from hpolab.hypergrad.unrolled_forward import unrolled_forward

    task, hyper = mlp_task(), optimizer_hyper(7)
    assert relative(unrolled_forward()(task, hyper, 0).grad, forward_mode()(task, hyper, 0).grad) < 1e-10
    task = logistic_task()
    hyper = schedule(30, lr=0.5, momentum=0.5, learn=("log_l2", "lr"), log_l2=-2.0)
    assert relative(unrolled_forward()(task, hyper, 0).grad, forward_mode()(task, hyper, 0).grad) < 1e-10


def test_adam_refuses_a_momentum_schedule():
    with pytest.raises(ValueError, match="momentum must be 0 .* with the Adam inner optimizer"):
        train(adam_logistic_task(), schedule(5, lr=0.1, momentum=0.9), 0)


def test_the_paper_logistic_loss_is_summed_over_examples_with_penalty_exp_lambda():
    from hpolab.hypergrad.task import logistic_regression_task

    (x, y), (xv, yv) = synthetic(30, 4, 1), synthetic(20, 4, 2)
    task = logistic_regression_task((x, y), (xv, yv))
    w = torch.linspace(-1, 1, 4, dtype=torch.float64)
    signs = 2.0 * y - 1.0
    expected = torch.log1p(torch.exp(-signs * (x @ w))).sum() + math.exp(0.7) * (w**2).sum()
    assert float(task.train_loss(w, task.batch(slice(None)), {"log_l2": torch.tensor(0.7, dtype=torch.float64)})) == pytest.approx(
        float(expected), rel=1e-12)
    logits = task.predict(w, xv)
    assert float(task.val_loss(w)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, yv, reduction="sum")), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# HOAG's inexact iteration


def test_inexact_hypergradient_at_tight_tolerances_is_the_implicit_one():
    from hpolab.hypergrad.implicit import inexact_hypergradient

    task = logistic_task()
    hyper = schedule(1, learn=("log_l2",), log_l2=-3.0)
    exact = implicit()(task, hyper, 0)
    solution = inexact_hypergradient(task, hyper, task.init(0), 1e-9, 1e-12)
    assert relative(solution.hypergradient.grad, exact.grad) < 1e-6
    assert solution.train_gradient_norm <= 1e-9


def test_inexact_hypergradient_stops_at_its_tolerance_and_warm_starts():
    from hpolab.hypergrad.implicit import inexact_hypergradient

    task = logistic_task()
    hyper = schedule(1, learn=("log_l2",), log_l2=-3.0)
    loose = inexact_hypergradient(task, hyper, task.init(0), 1e-2, 1e-2)
    tight = inexact_hypergradient(task, hyper, task.init(0), 1e-8, 1e-8)
    assert 1e-8 < loose.train_gradient_norm <= 1e-2
    assert loose.hypergradient.cost.gradient_evaluations < tight.hypergradient.cost.gradient_evaluations
    again = inexact_hypergradient(task, hyper, tight.hypergradient.theta, 1e-8, 1e-8,
                                  cg_start=tight.cg_solution)
    assert again.hypergradient.cost.gradient_evaluations == 2  # the start meets it: one check, one validation gradient
    assert again.hypergradient.cost.hvp_evaluations <= 2  # CG's start residual, the mixed term


@pytest.mark.parametrize("optimizer, clip", [(None, None), (None, 0.05), (Adam(), None)])
def test_plain_training_takes_the_same_steps_as_the_transformable_one_bit_for_bit(optimizer, clip):
    """``train`` without vmap takes gradients by plain autograd (faster per step); it must
    give exactly the weights the torch.func step gives, which every estimator differentiates."""
    from hpolab.hypergrad.unroll import step_function

    x, y = synthetic(64, 5, 11)
    task = classification_task(nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)), (x, y),
                               synthetic(32, 5, 12), batch_size=16, dtype=torch.float32, optimizer=optimizer,
                               grad_clip=clip)
    hyper = schedule(30, lr=0.05, momentum=0.0 if optimizer else 0.9, weight_decay=1e-3, windows={"lr": 10})
    fast = train(task, hyper, 0).theta
    theta, state, h = task.init(0), torch.zeros_like(task.init(0)), hyper.pack().float()
    step, batches = step_function(task, hyper, torch.float32, transformable=True), task.batches(0, 30)
    for t in range(30):
        theta, state, _ = step(theta, state, h, t, task.batch(batches[t]))
    assert torch.equal(fast, theta)
