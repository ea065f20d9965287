"""HOZOG's directions are fresh at every meta-iteration (Algorithm 1), and so it finds the
minimizer of a quadratic in 20 hyperparameters with one direction per step (q = 1).

With the directions frozen (the same u_1 at every step), hypergradient descent can only move
lambda along u_1: on the quadratic it stalls at the best point of that line, far from the minimizer.
"""

import importlib

import pytest
import torch

from hpolab import run
from hpolab.hypergrad import InnerTask, box, gradient_descent, schedule, train, zeroth_order
from hpolab.hypergrad.task import shuffled_batches
from hpolab.methods.hypergradient_tuning import hypergradient_tuning
from hpolab.problems.tuning import tuning_problem
from hpolab.studies.hozog import tuning_method

P = 20


def quadratic_task(center: torch.Tensor, curvature: torch.Tensor) -> InnerTask:
    """One SGD step of size 1 on |theta - shift|^2 / 2 lands on theta_1 = shift, whatever theta_0:
    the trained validation loss f(shift) = (shift - c)^T diag(a) (shift - c) / 2 is a quadratic in
    the hyperparameters ``shift``, minimized at c."""

    def train_loss(theta, batch, terms):
        return 0.5 * ((theta - terms["shift"]) ** 2).sum()

    def val_loss(theta):
        return 0.5 * ((theta - center) ** 2 * curvature).sum()

    def init(seed):
        return torch.randn(len(center), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

    data = (torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.long))
    return InnerTask("quadratic", init, train_loss, val_loss, shuffled_batches(1, None, "cpu"), data,
                     predict=lambda theta, x: x)


def quadratic_setting():
    generator = torch.Generator().manual_seed(3)
    center = 2 * torch.randn(P, generator=generator, dtype=torch.float64)
    curvature = torch.linspace(0.5, 1.0, P, dtype=torch.float64)
    hyper = schedule(1, lr=1.0, learn=("shift",), shift=torch.zeros(P))
    return quadratic_task(center, curvature), hyper, center


def test_the_quadratic_task_trains_to_its_hyperparameters():
    task, hyper, _ = quadratic_setting()
    shift = torch.linspace(-1, 1, P, dtype=torch.float64)
    assert torch.allclose(train(task, hyper.replace(shift=shift), 5).theta, shift)


def test_hozog_with_one_direction_per_step_reaches_the_minimizer_of_a_quadratic_in_20_hyperparameters():
    """gamma = 0.04 ~ 1 / (L (p + 2)); 800 steps take |lambda - c| from 6.1 to below 0.05 (the
    noise floor the finite difference's mu leaves is ~0.007 at mu = 1e-3, ~0.07 at 1e-2)."""
    task, hyper, center = quadratic_setting()
    limits = box(hyper, {"shift": (-10.0, 10.0)})
    method = tuning_method("hozog", task, hyper, limits, q=1, mu=1e-3, gamma=0.04)
    history = run(method, tuning_problem(task, hyper), iterations=4 * 800, seed=0)
    final = torch.tensor(history.frame[[f"shift[{i}]" for i in range(P)]].iloc[-1].to_numpy())
    assert float(center.norm()) > 6.0
    assert float((final - center).norm()) < 0.05


def test_frozen_directions_cannot_reach_it():
    """The power check: the same u at every step (the old behaviour, emulated) stalls on a line."""
    task, hyper, center = quadratic_setting()
    estimate = zeroth_order(q=1, mu=1e-3)

    def frozen(task, hyper, seed):
        return estimate(task, hyper, seed, generator=torch.Generator().manual_seed(7919))

    method = hypergradient_tuning(task, hyper, estimator=frozen,
                                   outer=gradient_descent(0.04), seed=0)
    history = run(method, tuning_problem(task, hyper), iterations=4 * 800, seed=0)
    final = torch.tensor(history.frame[[f"shift[{i}]" for i in range(P)]].iloc[-1].to_numpy())
    assert float((final - center).norm()) > 5.0


def _recorded_directions(monkeypatch, calls):
    zo = importlib.import_module("hpolab.hypergrad.zeroth_order")
    seen = []
    original = zo.validation_losses

    def recording(task, hyper, points, seed, batched=True, meter=None):
        seen.append(((points[1:] - points[:1]) / 0.01, seed))
        return original(task, hyper, points, seed, batched, meter)

    monkeypatch.setattr(zo, "validation_losses", recording)
    calls()
    return seen


def test_two_consecutive_hozog_steps_use_different_directions_and_training_seeds(monkeypatch):
    task, hyper, _ = quadratic_setting()
    method = tuning_method("hozog", task, hyper, box(hyper, {"shift": (-10.0, 10.0)}), q=2, mu=0.01, gamma=0.04)
    seen = _recorded_directions(monkeypatch, lambda: run(method, tuning_problem(task, hyper), 4 * 3 * 2, seed=0))
    (u1, seed1), (u2, seed2) = seen[:2]
    assert u1.shape == u2.shape == (2, P)
    assert not torch.allclose(u1, u2)
    assert seed1 != seed2  # a fresh initialization every meta-iteration (section 3.2)


def test_the_estimator_draws_new_directions_at_every_call_even_with_the_same_seed(monkeypatch):
    task, hyper, _ = quadratic_setting()
    estimate = zeroth_order(q=1, mu=0.01)
    seen = _recorded_directions(monkeypatch, lambda: [estimate(task, hyper, 0) for _ in range(2)])
    assert not torch.allclose(seen[0][0], seen[1][0])
    assert seen[0][1] == seen[1][1] == 0


def test_directions_follow_the_run_seed_and_repeat_bit_for_bit():
    task, hyper, _ = quadratic_setting()
    limits = box(hyper, {"shift": (-10.0, 10.0)})

    def path(seed):
        method = tuning_method("hozog", task, hyper, limits, q=1, mu=0.01, gamma=0.04)
        frame = run(method, tuning_problem(task, hyper), 4 * 5, seed=seed).frame
        return frame[[f"shift[{i}]" for i in range(P)]].to_numpy()

    first = path(0)
    assert (first == path(0)).all()
    assert not (first[1:] == path(1)[1:]).all()


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_bad_direction_seed_raises_value_error(bad):
    with pytest.raises(ValueError, match="direction_seed must be an integer >= 0"):
        zeroth_order(direction_seed=bad)
