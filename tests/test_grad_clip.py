"""The inner gradient clamp (``InnerTask.grad_clip``, the FDS authors' ``clamp_grads``): the
training it gives, and every estimator's hypergradient through it, against float64 central
finite differences and a hand-written torch loop."""

import dataclasses

import pytest
import torch
from test_hypergrad import adam_logistic_task, finite_differences, logistic_task, mlp_task, optimizer_hyper, relative

from hpolab.hypergrad import classification_task, forward_mode, greedy, reverse_mode, schedule, train
from hpolab.hypergrad.unrolled_forward import unrolled_forward

# |g| > CLIP on about 11 % of the (step, coordinate) pairs of mlp_task's run at optimizer_hyper(7),
# and no |g| within 4e-4 of CLIP, so that the finite differences (step 1e-6) never cross it
CLIP = 0.085
ADAM_CLIP = 2.0  # the same for adam_logistic_task at ADAM_HYPER (its loss sums over 60 examples)
ADAM_HYPER = dict(horizon=40, lr=torch.tensor([0.05, 0.03]), windows={"lr": 20}, learn=("log_l2", "lr"), log_l2=0.5)


def torch_loop(task, lrs, window, horizon, momentum=0.0, weight_decay=0.0, adam=False, terms=None):
    """The training with torch.optim (SGD or Adam) and torch.clamp on every gradient before the
    step; also every raw gradient, for the distance of |g| to the clamp."""
    theta = task.init(0).clone().requires_grad_()
    if adam:
        optimizer = torch.optim.Adam([theta], lr=0.0, weight_decay=weight_decay)
    else:
        optimizer = torch.optim.SGD([theta], lr=0.0, momentum=momentum, weight_decay=weight_decay)
    batches = task.batches(0, horizon)
    raw = []
    for t in range(horizon):
        optimizer.param_groups[0]["lr"] = float(lrs[t // window])
        optimizer.zero_grad()
        task.train_loss(theta, task.batch(batches[t]), terms or {}).backward()
        raw.append(theta.grad.detach().clone())
        if task.grad_clip is not None:
            theta.grad.clamp_(-task.grad_clip, task.grad_clip)
        optimizer.step()
    return theta.detach(), torch.stack(raw)


def clipped_mlp():
    return dataclasses.replace(mlp_task(), grad_clip=CLIP)


def test_clamp_is_active_but_never_at_its_boundary_in_the_test_setting():
    task, hyper = clipped_mlp(), optimizer_hyper(7)
    values = hyper.values
    _, raw = torch_loop(task, values["lr"], 7, hyper.horizon, float(values["momentum"]), float(values["weight_decay"]))
    assert (raw.abs() > CLIP).double().mean() > 0.05
    assert (raw.abs() - CLIP).abs().min() > 1e-4


def test_clipped_sgd_training_is_torch_sgd_after_torch_clamp():
    task, hyper = clipped_mlp(), optimizer_hyper(7)
    values = hyper.values
    expected, _ = torch_loop(task, values["lr"], 7, hyper.horizon, float(values["momentum"]), float(values["weight_decay"]))
    assert torch.allclose(train(task, hyper, 0).theta, expected, rtol=1e-12, atol=1e-14)
    unclipped = train(mlp_task(), hyper, 0).theta
    assert (unclipped - expected).abs().max() > 1e-3


def test_clipped_adam_training_is_torch_adam_after_torch_clamp():
    task = dataclasses.replace(adam_logistic_task(), grad_clip=ADAM_CLIP)
    hyper = schedule(ADAM_HYPER["horizon"], **{k: v for k, v in ADAM_HYPER.items() if k != "horizon"})
    terms = {"log_l2": torch.tensor(0.5, dtype=torch.float64)}
    expected, raw = torch_loop(task, ADAM_HYPER["lr"], 20, ADAM_HYPER["horizon"], adam=True, terms=terms)
    assert (raw.abs() > ADAM_CLIP).any() and (raw.abs() - ADAM_CLIP).abs().min() > 1e-4
    assert torch.allclose(train(task, hyper, 0).theta, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("window", [1, 7, 30])
def test_forward_and_reverse_through_the_clamp_match_finite_differences(window):
    task, hyper = clipped_mlp(), optimizer_hyper(window)
    fd = finite_differences(task, hyper)
    forward, reverse = forward_mode()(task, hyper, 0), reverse_mode()(task, hyper, 0)
    assert relative(reverse.grad, fd) < 1e-4
    assert relative(forward.grad, fd) < 1e-4
    assert relative(forward.grad, reverse.grad) < 1e-9
    assert relative(unrolled_forward()(task, hyper, 0).grad, reverse.grad) < 1e-9
    assert relative(greedy(30)(task, hyper, 0).grad, forward.grad) < 1e-12
    unclipped = reverse_mode()(mlp_task(), hyper, 0).grad
    assert relative(unclipped, reverse.grad) > 1e-2  # the clamp changes the hypergradient


def test_clamped_loss_term_hypergradients_match_reverse_mode_and_finite_differences():
    task = dataclasses.replace(logistic_task(), grad_clip=0.05)
    hyper = schedule(40, lr=torch.tensor([0.5, 0.3]), momentum=0.5, windows={"lr": 20},
                     learn=("lr", "log_l2", "momentum"), log_l2=-2.0)
    _, raw = torch_loop(task, hyper.values["lr"], 20, 40, 0.5, terms={"log_l2": torch.tensor(-2.0, dtype=torch.float64)})
    assert (raw.abs() > 0.05).any() and (raw.abs() - 0.05).abs().min() > 1e-4
    forward, reverse = forward_mode()(task, hyper, 0), reverse_mode()(task, hyper, 0)
    assert relative(forward.grad, reverse.grad) < 1e-9
    assert relative(forward.grad, finite_differences(task, hyper)) < 1e-4
    unclipped = reverse_mode()(logistic_task(), hyper, 0).grad
    assert (unclipped - reverse.grad).abs().max() > 1e-5  # 1e4 x the forward-reverse agreement


def test_clamped_adam_hypergradients_match_finite_differences():
    task = dataclasses.replace(adam_logistic_task(), grad_clip=ADAM_CLIP)
    hyper = schedule(ADAM_HYPER["horizon"], **{k: v for k, v in ADAM_HYPER.items() if k != "horizon"})
    fd = finite_differences(task, hyper)
    forward, reverse = unrolled_forward()(task, hyper, 0), reverse_mode()(task, hyper, 0)
    assert relative(reverse.grad, fd) < 1e-5
    assert relative(forward.grad, reverse.grad) < 1e-9
    assert relative(reverse_mode()(adam_logistic_task(), hyper, 0).grad, reverse.grad) > 1e-2


def test_no_clamp_is_the_default_and_leaves_the_gradient_untouched():
    task = mlp_task()
    assert task.grad_clip is None
    g = torch.randn(5)
    assert task.clip(g) is g


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan"), True, "1"])
def test_bad_grad_clip_raises_value_error_naming_it(bad):
    x, y = torch.randn(8, 3), torch.arange(8) % 2
    with pytest.raises(ValueError, match="grad_clip must be None or a finite number > 0"):
        classification_task(torch.nn.Linear(3, 2), (x, y), (x, y), grad_clip=bad)


def test_forward_mode_refuses_an_adam_task():
    hyper = schedule(5, lr=0.1, learn=("lr",))
    with pytest.raises(ValueError, match="forward mode here implements SGD with momentum only.*unrolled_forward"):
        forward_mode()(adam_logistic_task(), hyper, 0)
