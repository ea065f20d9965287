"""Gradient-based tuning: a hypergradient estimator and an outer update, on the core protocol.

Each step trains once (or q + 1 times, for the zeroth-order estimator) with the current
hyperparameters through the estimator, charges its cost to the oracle, and lets the outer
update (plain or FDS's sign-based step) move them. A row is one training: the state's ``x``
is the run's final weights and ``y`` the hyperparameters it trained with, so that the history's
objective (that run's validation loss) and its hyperparameter columns describe one point, as
a black-box tuner's trial rows do and as :func:`hpolab.problems.tuning.tuning_problem` defines
f(x, y); the values the update moved to, which the next step trains with, are ``outer.h``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from hpolab.hypergrad import gradient_descent, make_estimator
from hpolab.hypergrad.hyperparameters import Hyperparameters
from hpolab.hypergrad.outer import OuterState, OuterUpdate
from hpolab.hypergrad.result import Estimator, Hypergradient, takes_generator
from hpolab.hypergrad.task import InnerTask
from hpolab.protocol import Method


class TuningState(NamedTuple):
    x: torch.Tensor  # weights at the end of the last training run
    y: torch.Tensor  # the learned hyperparameters x was trained with, packed
    outer: OuterState  # outer.h: the hyperparameters the next step trains with
    last: Hypergradient | None
    kind: str
    message: str = ""
    extras: dict = {}  # recorded in the history: the hypergradient's squared norm


def tuning_step(estimator: Estimator, task: InnerTask, hyper: Hyperparameters, outer: OuterUpdate, state: OuterState,
                seed: int, generator: torch.Generator | None = None) -> tuple[Hypergradient, OuterState]:
    """One outer step of gradient-based tuning: train once at ``state.h`` through ``estimator``
    with the inner run's ``seed`` and let ``outer`` move the hyperparameters (the state is kept
    when the training diverged: there is no hypergradient). ``generator``, when given, goes to
    the estimator: give it to one that draws (the zeroth-order one, see ``takes_generator``). :func:`hypergradient_tuning`'s update and FDS's studies
    (:func:`hpolab.methods.fds.learn`) both step through here."""
    current = hyper.with_flat(state.h)
    if generator is None:
        result = estimator(task, current, seed)
    else:
        result = estimator(task, current, seed, generator=generator)
    return result, state if result.diverged else outer.update(state, result.grad)


def hypergradient_tuning(task: InnerTask, hyper: Hyperparameters,
                         limits: tuple[torch.Tensor, torch.Tensor] | None = None, *,
                         estimator: str | Estimator = "forward", outer: OuterUpdate | None = None, lr: float = 0.05,
                         seed: int | None = None, label: str = "hypergradient tuning",
                         **estimator_settings) -> Method:
    """Tune ``hyper.learn`` for ``task``: each step trains through ``estimator`` and lets
    ``outer`` move the hyperparameters (``TUNERS["hypergradient"]``).

    Not to be confused with Baydin et al.'s hypergradient descent (HD), an optimizer that
    adapts its learning rate online within one training (:mod:`hpolab.optim`).

    Args:
      limits: per-entry ``(low, high)`` box (:func:`hpolab.hypergrad.box`) for the default outer update.
      estimator: an estimator, or its name in :data:`hpolab.hypergrad.ESTIMATORS` (built with
        ``estimator_settings``).
      outer: the outer update (e.g. FDS's :func:`hpolab.hypergrad.sign_descent`); default: plain
        steps of ``lr`` against the hypergradient, projected onto ``limits``.
      seed: the inner runs' seed (initialization and data order); None draws a new one per
        step from the run's generator, as FDS re-initializes every outer step (and HOZOG's
        section 3.2: the inner initialization is randomized at every meta-iteration).

    An estimator that takes a ``generator`` (the zeroth-order one, for its directions) is
    given the run's: its draws advance every step, and a seeded run repeats bit for bit.
    """
    if isinstance(estimator, str):
        estimator = make_estimator(estimator, **estimator_settings)
    elif estimator_settings:
        raise ValueError(f"estimator settings {sorted(estimator_settings)} need an estimator given by name")
    outer = gradient_descent(lr, limits) if outer is None else outer
    draws = takes_generator(estimator)

    def init(x0, y0, oracle, generator):
        state = outer.init(y0)
        return TuningState(x0, state.h, state, None, "start")

    def update(state, oracle, generator):
        run_seed = seed if seed is not None else int(torch.randint(2**31 - 1, (), generator=generator))
        result, stepped = tuning_step(estimator, task, hyper, outer, state.outer, run_seed,
                                      generator if draws else None)
        oracle.charge(result.cost)
        if result.diverged:
            return state._replace(x=torch.full_like(state.x, float("nan")), y=state.outer.h, last=result,
                                  kind="diverged", message=result.message)
        theta = result.theta if result.theta is not None else torch.full_like(state.x, float("nan"))
        extras = {"hypergradient_norm2": float((result.grad**2).sum())}
        return TuningState(theta, state.outer.h, stepped, result, "hypergradient", extras=extras)

    return Method("hypergradient-tuning", init, update, {"outer": outer.name}, label)
