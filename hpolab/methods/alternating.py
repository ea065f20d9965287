"""The classical alternating baselines: train x fully, then let a tuner pick the next y.

Each training cycle starts x from a fresh random point and takes gradient steps
``x <- x - grad_x f / beta`` (JD's gradient step, Algorithm 1 line 4, so that training is
the same in every method) until the objective changes by less than ``tolerance`` relative
to its previous value (section 4.1: "relative convergence of 0.01", read as a library's
relative function tolerance, e.g. ``f_relative_tolerance`` in TensorFlow Probability's
optimizers); the value reached is the tuner's observation of g(y), and
the tuner's next y starts the next cycle. Every gradient step is one iteration, so the
objective traces the sawtooth of the paper's Figure 1.

A tuner that compares two trainings (the zeroth-order one: g(y + mu u) - g(y)) sets
``paired``; the second training of a pair then restarts from the same random x as the
first (common random numbers), so the difference measures y, not two random starts
stopped at a 1 % tolerance: with mu = 1e-3 the difference of two trainings from
independent starts is noise of the order of 1 % of g divided by mu.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from hpolab.methods.tuners import BayesianTuner, GaussianSmoothingTuner
from hpolab.protocol import Method
from hpolab.validation import check_open_unit, check_positive


class AlternatingState(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor
    previous: float | None  # the last training value in this cycle
    start: torch.Tensor  # the random x this cycle started from
    tuner: object  # has ask(generator) -> y and tell(value)
    trials: int  # completed training cycles
    kind: str


def alternating(name: str, label: str, make_tuner: Callable, tolerance: float = 0.01, config=None) -> Method:
    """An alternating method around a tuner factory ``(y0, problem, generator) -> tuner``."""
    tolerance = check_open_unit("tolerance", tolerance)

    def init(x0, y0, oracle, generator):
        tuner = make_tuner(y0, oracle.problem, generator)
        return AlternatingState(x0, tuner.ask(generator), None, x0, tuner, 0, "start")

    def update(state, oracle, generator):
        value, grad = oracle.value_and_grad_x(state.x, state.y)
        value = float(value)
        if state.previous is not None and abs(value - state.previous) <= tolerance * abs(state.previous):
            state.tuner.tell(value)
            x0 = oracle.problem.initial_point(generator)[0]
            if getattr(state.tuner, "paired", False):
                x0 = state.start
            y = state.tuner.ask(generator)
            return AlternatingState(x0, y, None, x0, state.tuner, state.trials + 1, "tune")
        x = state.x - grad / oracle.problem.beta
        return state._replace(x=x, previous=value, kind="gradient")

    return Method(name, init, update, {"tolerance": tolerance, **(config or {})}, label)


def alternating_bayesian(tolerance: float = 0.01) -> Method:
    """Alternating training and GP Bayesian optimization of y (Optuna's GPSampler)."""

    def make_tuner(y0, problem, generator):
        return BayesianTuner(y0, problem.y_bounds, generator)

    return alternating("alt-bo", "Alternating BO", make_tuner, tolerance)


def alternating_zeroth_order(tolerance: float = 0.01, mu: float = 1e-3, common_start: bool = True) -> Method:
    """Alternating training and Nesterov-Spokoiny Gaussian-smoothing steps on y.

    ``common_start``: the probe's training restarts from the base training's random x (see
    the module docstring); False draws a fresh x for every training, as the paper's
    "randomly initialized between two hyperparameter settings" reads literally.
    """
    mu = check_positive("mu", mu)

    def make_tuner(y0, problem, generator):
        return GaussianSmoothingTuner(y0, mu, problem.beta, common_start)

    config = {"mu": mu} if common_start else {"mu": mu, "common_start": False}
    label = "Alternating ZO" if common_start else "Alternating ZO (fresh starts)"
    return alternating("alt-zo", label, make_tuner, tolerance, config)
