"""What every hypergradient estimator returns."""

from __future__ import annotations

import inspect
from typing import Callable, NamedTuple

import torch

from hpolab.hypergrad.hyperparameters import Hyperparameters
from hpolab.hypergrad.task import InnerTask
from hpolab.protocol import Cost


class Hypergradient(NamedTuple):
    """The validation loss at the end of training, its hypergradient and what it cost.

    Attributes:
      loss: L_val(theta_T); NaN when training diverged.
      grad: d L_val / d h for the packed learned hyperparameters h (float64, CPU), or
        None when training diverged.
      cost: gradient, function and Hessian-vector-product evaluations, wall time, peak memory.
      diverged: training blew up (loss NaN, inf or exploding); ``message`` says where.
      theta: the final weights (None for estimators that train several runs).
    """

    loss: float
    grad: torch.Tensor | None
    cost: Cost
    diverged: bool = False
    message: str = ""
    theta: torch.Tensor | None = None

    def grads(self, hyper: Hyperparameters) -> dict[str, torch.Tensor]:
        """The hypergradient split by hyperparameter name."""
        return hyper.unpack(self.grad)


Estimator = Callable[[InnerTask, Hyperparameters, int], Hypergradient]
"""``estimate(task, hyper, seed) -> Hypergradient``; ``seed`` fixes the training's initialization
and data order. An estimator that draws random numbers of its own (the zeroth-order one's
directions) also takes the keyword ``generator``, a ``torch.Generator`` it draws them from:
see :func:`takes_generator`."""


def takes_generator(estimator: Estimator) -> bool:
    """Whether ``estimator`` accepts the keyword ``generator`` (its random draws, apart from the
    training seed, then come from its caller's generator: a tuning run passes its own)."""
    try:
        return "generator" in inspect.signature(estimator).parameters
    except (TypeError, ValueError):  # a builtin or C callable: no keyword
        return False


def diverged_result(message: str, meter, theta=None) -> Hypergradient:
    return Hypergradient(float("nan"), None, meter.cost(), True, message, theta)


def validation_gradient(task: InnerTask, theta: torch.Tensor, meter) -> tuple[torch.Tensor, float]:
    """(grad_theta L_val, L_val) at theta, counted as one gradient evaluation."""
    meter.gradient_evaluations += 1
    grad, loss = torch.func.grad_and_value(task.val_loss)(theta)
    return grad, float(loss)
