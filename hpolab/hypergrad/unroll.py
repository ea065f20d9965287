"""The inner training loop, written once and transformed by each estimator.

One step is a pure function ``sgd_step(theta, velocity, h, t) -> (theta', velocity', loss)``
of the weights, the velocity and the flat learned hyperparameters h. Estimators wrap it:
forward mode in ``vmap(jvp(...))`` over tangents, the zeroth-order estimator in ``vmap``
over q + 1 stacked runs, reverse mode under autograd. The Python loop over steps stays
outside every transform, so a diverging run is seen (and stopped) at the step it diverges.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch.func import grad_and_value

from hpolab.hypergrad.hyperparameters import SCHEDULES, Hyperparameters
from hpolab.hypergrad.task import InnerTask

DIVERGENCE_FACTOR = 1e6  # a training loss this many times its first value (or NaN) has diverged


def step_function(task: InnerTask, hyper: Hyperparameters, dtype: torch.dtype) -> Callable:
    """``sgd_step(theta, velocity, h, t, batch)`` for these hyperparameters.

    h holds the learned values (packed as by ``hyper.pack``); the others are constants.
    """
    constants = {name: value.to(dtype) for name, value in hyper.values.items() if name not in hyper.learn}
    constants = {name: value.to(task.data[0].device) for name, value in constants.items()}
    gradient = grad_and_value(task.train_loss)

    def sgd_step(theta, velocity, h, t, batch):
        values = {**constants, **hyper.unpack(h)}
        terms = {name: value for name, value in values.items() if name not in SCHEDULES}
        lr, momentum, decay = (values[name][hyper.window_index(name, t)] for name in SCHEDULES)
        grad, loss = gradient(theta, batch, terms)
        velocity = momentum * velocity + grad + decay * theta
        return theta - lr * velocity, velocity, loss

    return sgd_step


class Watch:
    """Tells, step by step, whether training has diverged (loss NaN, inf or exploding)."""

    def __init__(self):
        self.first = None
        self.message = ""

    def diverged(self, loss: torch.Tensor, step: int) -> bool:
        loss = loss.detach()
        worst = float(loss.max()) if loss.dim() else float(loss)
        if self.first is None and worst == worst:
            self.first = max(abs(worst), 1.0)
        if not (worst == worst and abs(worst) <= DIVERGENCE_FACTOR * (self.first or 1.0)):
            self.message = f"training diverged at step {step}: the training loss reached {worst:.4g}"
            return True
        return False


class Trained(NamedTuple):
    theta: torch.Tensor
    steps: int
    diverged: bool
    message: str


def train(task: InnerTask, hyper: Hyperparameters, seed: int, h: torch.Tensor | None = None,
          meter=None, on_step: Callable[[int, torch.Tensor], bool] | None = None) -> Trained:
    """Train with hyperparameters ``hyper`` (or its learned part replaced by h), no hypergradient.

    With h of shape (n, K), runs n trainings at once with ``vmap`` from the same start and
    data order (the seed), returning weights of shape (n, D).

    Args:
      on_step: optional ``(t, theta) -> stop``, called after each step t (0-based) that did
        not diverge, with the weights after it (shape (D,), or (n, D) for batched runs, where
        stopping stops all n); returning True ends training there, with ``steps = t + 1``,
        ``diverged=False`` and a message saying it was stopped. It must not modify theta.
        Early stopping such as Hyperband's pruning (see ``hpolab.methods.blackbox``) lives
        here; None (the default) adds no work to the loop.
    """
    theta = task.init(seed)
    dtype = theta.dtype
    h = (hyper.pack() if h is None else h).to(device=theta.device, dtype=dtype)
    step = step_function(task, hyper, dtype)
    if h.dim() == 2:
        theta = theta.expand(h.shape[0], -1).clone()
        step = torch.func.vmap(step, in_dims=(0, 0, 0, None, None))
    velocity = torch.zeros_like(theta)
    batches = task.batches(seed, hyper.horizon)
    watch = Watch()
    for t in range(hyper.horizon):
        theta, velocity, loss = step(theta, velocity, h, t, task.batch(batches[t]))
        if meter is not None:
            meter.gradient_evaluations += theta.shape[0] if theta.dim() == 2 else 1
        if watch.diverged(loss, t):
            return Trained(theta, t + 1, True, watch.message)
        if on_step is not None and on_step(t, theta):
            return Trained(theta, t + 1, False, f"stopped by on_step after {t + 1} of {hyper.horizon} steps")
    return Trained(theta, hyper.horizon, False, "")
