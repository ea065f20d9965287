"""Outer updates of the hyperparameters, in optax's ``(init, update)`` form.

* :func:`gradient_descent`: ``h <- h - lr * g``.
* :func:`sign_descent`: FDS's update, a fixed step gamma per hyperparameter in the
  direction of ``-sign(g)``, halved each time that hyperparameter's hypergradient flips
  sign (as in Rprop); with a box it also keeps h inside its search range.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from hpolab.hypergrad.hyperparameters import Hyperparameters
from hpolab.validation import check_positive


class OuterState(NamedTuple):
    h: torch.Tensor  # the flat learned hyperparameters
    step_size: torch.Tensor  # per entry
    last_sign: torch.Tensor  # sign of the previous hypergradient (0 before the first)


class OuterUpdate(NamedTuple):
    name: str
    init: Callable[[torch.Tensor], OuterState]
    update: Callable[[OuterState, torch.Tensor], OuterState]


def per_entry(hyper: Hyperparameters, value, name: str = "value") -> torch.Tensor:
    """A float, a flat tensor, or a dict by hyperparameter name, as one value per entry of h."""
    if isinstance(value, dict):
        missing = [n for n in hyper.learn if n not in value]
        if missing:
            raise ValueError(f"{name} has no value for {missing}")
        return torch.cat([torch.full((hyper.values[n].numel(),), float(value[n]), dtype=torch.float64)
                          for n in hyper.learn])
    tensor = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    return tensor.expand(sum(hyper.sizes)).clone() if tensor.numel() == 1 else tensor


def box(hyper: Hyperparameters, bounds: dict | None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``{name: (low, high)}`` as per-entry low and high tensors (unbounded names: +-inf)."""
    if not bounds:
        return None
    low = per_entry(hyper, {n: bounds.get(n, (-float("inf"), float("inf")))[0] for n in hyper.learn}, "bounds")
    high = per_entry(hyper, {n: bounds.get(n, (-float("inf"), float("inf")))[1] for n in hyper.learn}, "bounds")
    if (low >= high).any():
        raise ValueError(f"bounds must have low < high for every hyperparameter, got {bounds}")
    return low, high


def _clip(h, limits):
    return h if limits is None else torch.clamp(h, limits[0], limits[1])


def gradient_descent(lr: float, limits: tuple[torch.Tensor, torch.Tensor] | None = None) -> OuterUpdate:
    """Plain hypergradient steps ``h <- h - lr g`` (projected onto the box if given)."""
    check_positive("lr", lr)

    def init(h):
        return OuterState(_clip(h.double(), limits), torch.full_like(h, lr, dtype=torch.float64), torch.zeros_like(h))

    def update(state, grad):
        return state._replace(h=_clip(state.h - lr * grad, limits), last_sign=torch.sign(grad))

    return OuterUpdate("gradient descent", init, update)


def sign_descent(gamma, limits: tuple[torch.Tensor, torch.Tensor] | None = None) -> OuterUpdate:
    """FDS's sign-based step: ``h <- h - gamma * sign(g)``, gamma halved where g flips sign.

    Args:
      gamma: initial step per entry of h (a float or a flat tensor, e.g. from
        :func:`per_entry`), > 0.
      limits: optional (low, high) per entry (see :func:`box`).
    """
    gamma = torch.as_tensor(gamma, dtype=torch.float64)
    if not (gamma > 0).all():
        raise ValueError(f"gamma must be > 0 for every hyperparameter, got {gamma.tolist()}")

    def init(h):
        return OuterState(_clip(h.double(), limits), gamma.expand_as(h).clone(), torch.zeros_like(h, dtype=torch.float64))

    def update(state, grad):
        sign = torch.sign(grad)
        step_size = torch.where(sign * state.last_sign < 0, state.step_size / 2, state.step_size)
        return OuterState(_clip(state.h - step_size * sign, limits), step_size, sign)

    return OuterUpdate("sign descent", init, update)
