"""Hypergradient descent on the core protocol: the learning rate is the hyperparameter y.

The same rules as :mod:`hpolab.optim` (SGD-HD, SGDN-HD, Adam-HD), written on flat tensors:
each step asks the oracle for grad_x f, moves the learning rate y by
``beta * g_t . u_{t-1}`` (never below 0), then steps x by ``-y u_t``. The problem's objective
ignores y (see :func:`learning_rate_problem`), so the history's y column is the learned
learning-rate trajectory.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

from hpolab.problems.base import Problem
from hpolab.protocol import Method
from hpolab.validation import check_choice

RULES = ("sgd", "sgdn", "adam")


class OnlineHypergradientState(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor  # the learning rate, shape (1,)
    direction: torch.Tensor | None  # u_{t-1}
    momentum: torch.Tensor | None  # SGDN's buffer, or Adam's first moment
    second: torch.Tensor | None  # Adam's second moment
    steps: int
    kind: str


def online_hypergradient(rule: str = "sgd", hypergrad_lr: float = 1e-4, momentum: float = 0.9,
                         betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                         weight_decay: float = 0.0) -> Method:
    """SGD-HD, SGDN-HD (``rule="sgdn"``, Nesterov with ``momentum``) or Adam-HD as a Method.

    The initial learning rate is the problem's starting y.
    """
    check_choice("rule", rule, RULES)
    if not hypergrad_lr >= 0:
        raise ValueError(f"hypergrad_lr (beta) must be >= 0, got {hypergrad_lr!r}")

    def init(x0, y0, oracle, generator):
        if not float(y0[0]) >= 0:
            raise ValueError(f"lr must be >= 0, got {float(y0[0])!r}")
        return OnlineHypergradientState(x0, y0.reshape(1).clone(), None, None, None, 0, "start")

    def update(state, oracle, generator):
        _, g = oracle.value_and_grad_x(state.x, state.y)
        if weight_decay:
            g = g + weight_decay * state.x
        lr = state.y
        if state.direction is not None and hypergrad_lr > 0:
            lr = torch.clamp(lr + hypergrad_lr * (g @ state.direction), min=0.0)
        steps = state.steps + 1
        first, second = state.momentum, state.second
        if rule == "sgd":
            direction = g
        elif rule == "sgdn":
            first = g.clone() if first is None else momentum * first + g
            direction = g + momentum * first
        else:
            beta1, beta2 = betas
            first = (1 - beta1) * g if first is None else beta1 * first + (1 - beta1) * g
            second = (1 - beta2) * g * g if second is None else beta2 * second + (1 - beta2) * g * g
            denom = (second.sqrt() / math.sqrt(1 - beta2**steps)) + eps
            direction = first / denom / (1 - beta1**steps)
        return OnlineHypergradientState(state.x - lr * direction, lr, direction, first, second, steps, "gradient")

    label = {"sgd": "SGD-HD", "sgdn": "SGDN-HD", "adam": "Adam-HD"}[rule]
    return Method(f"{rule}-hd", init, update, {"rule": rule, "hypergrad_lr": hypergrad_lr}, f"{label} beta={hypergrad_lr:g}")


def learning_rate_problem(name: str, loss: Callable[[torch.Tensor], torch.Tensor],
                          initial_point: Callable[[torch.Generator], torch.Tensor], lr: float) -> Problem:
    """A training loss over flat weights x, with the learning rate as its one hyperparameter."""
    def start(generator):
        x0 = initial_point(generator)
        return x0, torch.tensor([lr], dtype=x0.dtype, device=x0.device)

    nan = float("nan")
    probe = initial_point(torch.Generator().manual_seed(0))
    return Problem(name, lambda x, y: loss(x), probe.numel(), 1, start, nan, nan, nan, (0.0, float("inf")),
                   hyperparameter_names=("lr",))
