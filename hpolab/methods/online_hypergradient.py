"""Hypergradient descent on the core protocol: the learning rate is the hyperparameter y.

A thin adapter: each step is one step of :mod:`hpolab.optim`'s SGD-HD, SGDN-HD or Adam-HD (the
library's one implementation of Baydin et al.'s rule) on a flat weight vector, whose gradient
the oracle computes and counts. The problem's objective ignores y (see
:func:`learning_rate_problem`), so the history's y column is the learned learning-rate
trajectory.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from hpolab.optim import AdamHD, SGDHD
from hpolab.problems.base import Problem
from hpolab.protocol import Method
from hpolab.validation import check_choice

RULES = ("sgd", "sgdn", "adam")


class OnlineHypergradientState(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor  # the learning rate, shape (1,)
    weights: torch.nn.Parameter  # what the optimizer steps (x is a detached copy of it)
    optimizer: torch.optim.Optimizer
    steps: int
    kind: str


def online_hypergradient(rule: str = "sgd", hypergrad_lr: float = 1e-4, momentum: float = 0.9,
                         betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                         weight_decay: float = 0.0) -> Method:
    """SGD-HD, SGDN-HD (``rule="sgdn"``, Nesterov with ``momentum``) or Adam-HD as a Method,
    the rate kept at or above 0 (the optimizers' ``nonnegative``). The initial learning rate is
    the problem's starting y."""
    check_choice("rule", rule, RULES)
    if not hypergrad_lr >= 0:
        raise ValueError(f"hypergrad_lr (beta) must be >= 0, got {hypergrad_lr!r}")

    def optimizer_for(weights: torch.nn.Parameter, lr: float) -> torch.optim.Optimizer:
        if rule == "adam":
            return AdamHD([weights], lr=lr, hypergrad_lr=hypergrad_lr, betas=betas, eps=eps, weight_decay=weight_decay)
        return SGDHD([weights], lr=lr, hypergrad_lr=hypergrad_lr, momentum=momentum if rule == "sgdn" else 0.0,
                     nesterov=rule == "sgdn", weight_decay=weight_decay)

    def init(x0, y0, oracle, generator):
        if not float(y0[0]) >= 0:
            raise ValueError(f"lr must be >= 0, got {float(y0[0])!r}")
        weights = torch.nn.Parameter(x0.detach().clone())
        return OnlineHypergradientState(x0, y0.reshape(1).clone(), weights, optimizer_for(weights, float(y0[0])), 0,
                                        "start")

    def update(state, oracle, generator):
        _, g = oracle.value_and_grad_x(state.x, state.y)
        state.weights.grad = g.detach().clone()
        state.optimizer.step()
        lr = state.optimizer.param_groups[0]["lr"]
        return state._replace(x=state.weights.detach().clone(), y=torch.tensor([lr], dtype=state.y.dtype, device=state.y.device),
                              steps=state.steps + 1, kind="gradient")

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
