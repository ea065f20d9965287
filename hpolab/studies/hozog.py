"""What the HOZOG studies (03-05) share: the methods by name, the data split, device replicas and
the executor for HOZOG's q + 1 trainings, and the suboptimality / time-to-reach measures.

HOZOG treats a whole training run as a black box f(h) = L_val(theta_T(h)) and steps h
along ``g = 1 / (mu q) sum_i (f(h + mu u_i) - f(h)) u_i`` (its q + 1 trainings batched).
As in Algorithm 1 and section 3.2 of the paper, every meta-iteration draws fresh directions
(from the run's generator) and a fresh training seed (initialization and data order, shared
by its q + 1 trainings: common random numbers); FOR and REV re-initialize the same way, and
every black-box trial trains from a fresh seed. Every method is charged in the same units,
training steps and wall time, and every history row records the test error of the weights
the method just produced.
The studies: :mod:`hpolab.studies.hozog_logreg` (03), :mod:`hpolab.studies.hozog_schedules`
(04), :mod:`hpolab.studies.hozog_cleaning` (05).
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Sequence

import numpy as np
import torch

from hpolab import claims
from hpolab.history import History
from hpolab.hypergrad import gradient_descent, make_estimator
from hpolab.hypergrad.unrolled_forward import unrolled_forward
from hpolab.methods.blackbox import make_blackbox
from hpolab.methods.hoag import hoag
from hpolab.methods.hypergradient_tuning import hypergradient_tuning
from hpolab.validation import check_choice

METHODS = ("hozog", "forward", "reverse", "implicit", "random-search", "bayesian", "bohb")
GRADIENT_METHODS = {"hozog": "zeroth-order", "forward": "forward", "reverse": "reverse", "implicit": "implicit"}
LABELS = {"hozog": "HOZOG", "forward": "FOR", "reverse": "REV", "implicit": "HOAG", "random-search": "RS",
          "bayesian": "GP-BO", "bohb": "BOHB-like"}
DEFAULT_GAMMA = 50.0


def device_replicas(build: Callable[[torch.device], object], device: torch.device) -> list | None:
    """``build(d)`` for every GPU when ``device`` is a GPU and several exist, ``device`` first
    (the estimate and the final weights live there): HOZOG then spreads its q + 1 trainings
    over them. None otherwise (one device does it all)."""
    if device.type != "cuda" or torch.cuda.device_count() < 2:
        return None
    first = torch.cuda.current_device() if device.index is None else device.index
    order = [first] + [index for index in range(torch.cuda.device_count()) if index != first]
    return [build(torch.device("cuda", index)) for index in order]


def hozog_executor(address: str = ""):
    """A context giving the executor HOZOG's q + 1 trainings run on: the Dask scheduler at
    ``address`` (``tcp://host:8786``), a two-process cluster on this machine for ``"local"``,
    or None (train here) for ``""``. See :mod:`hpolab.distributed`."""
    if not address:
        return contextlib.nullcontext(None)
    from hpolab.distributed import cluster

    return cluster(None if address == "local" else address)


def tuning_method(name: str, task, hyper, limits, q: int = 1, mu: float = 0.01, gamma: float = DEFAULT_GAMMA,
                  directions: str = "gaussian", batched: bool = True, replicas: list | None = None,
                  executor=None):
    """The studies' methods by name.

    HOZOG, FOR and REV take plain projected steps of size gamma, each from a fresh training
    seed drawn from the run's generator (HOZOG's q + 1 trainings share it; its directions come
    from the same generator and change every step). HOZOG trains its q + 1 runs inside
    ``limits`` too, together with ``vmap`` if ``batched``, spread over ``replicas`` (the task on
    each device) if given, or as jobs on ``executor`` (a Dask cluster's, see
    :func:`hozog_executor`). FOR is forward mode through the task's own inner optimizer (the
    hand-derived SGD recursion of :mod:`hpolab.hypergrad.forward` for SGD tasks, the ``jvp`` of
    the update of :mod:`hpolab.hypergrad.unrolled_forward` for Adam). ``implicit`` is HOAG with
    its tolerance schedule, warm starts and its own step size (:func:`hpolab.methods.hoag.hoag`;
    gamma is not used). The black-box methods train every trial from a fresh seed.
    """
    check_choice("method", name, METHODS)
    if name == "implicit":
        return hoag(task, hyper, limits, label=LABELS[name])
    if name in GRADIENT_METHODS:
        if name == "hozog":
            estimator = make_estimator("zeroth-order", q=q, mu=mu, directions=directions, batched=batched,
                                       limits=limits, replicas=replicas, executor=executor)
        elif name == "forward" and getattr(task, "optimizer", None) is not None:
            estimator = unrolled_forward()
        else:
            estimator = make_estimator(GRADIENT_METHODS[name])
        return hypergradient_tuning(task, hyper, estimator=estimator, outer=gradient_descent(gamma, limits),
                                    seed=None, label=LABELS[name])
    return make_blackbox(name, task, hyper, limits, seed=None, label=LABELS[name])


def with_suboptimality(histories: Sequence[History]) -> list[History]:
    """Add ``suboptimality`` = f(lambda) - the lowest validation loss any method found on
    that dataset (the paper's definition), to every history's frame (in place)."""
    best: dict[str, float] = {}
    for h in histories:
        finite = h.frame["objective"][np.isfinite(h.frame["objective"])]
        if len(finite):
            best[h.problem] = min(best.get(h.problem, math.inf), float(finite.min()))
    for h in histories:
        h.frame["suboptimality"] = h.frame["best_objective"] - best.get(h.problem, math.nan)
    return list(histories)



def seconds_per_step(history: History) -> float:
    """Wall time per outer step (per trial for the black-box methods)."""
    return history.frame["wall_time"].iloc[-1] / max(len(history.frame) - 1, 1)


def time_to_reach(history: History, tolerance: float) -> float:
    """Wall time at which the history's suboptimality first fell to ``tolerance`` (NaN if never)."""
    reached = history.frame.loc[history.frame["suboptimality"] <= tolerance, "wall_time"]
    return float(reached.iloc[0]) if len(reached) else math.nan


def gamma_slider(value: float, low: float, high: float):
    """The panels' control of HOZOG's step gamma, on a log scale from 10^low to 10^high."""
    import ipywidgets as w

    return w.FloatLogSlider(value=value, base=10, min=low, max=high, step=0.25, description="gamma")


def seconds_box(value: float):
    """The panels' control of a run's wall-time budget, in seconds (1 s to 10 h)."""
    import ipywidgets as w

    return w.BoundedFloatText(value=value, min=1.0, max=36_000.0, description="seconds")


SMOKE_TIMES = "wall times vary from run to run; not shown at smoke scale"


def untimed(result, verdict: claims.Verdict) -> claims.Verdict:
    """``verdict``, except at smoke scale, where wall times differ between runs (and nbval
    compares the ledger): a fixed line instead. Shared by the three HOZOG studies' claims."""
    if getattr(result, "parameters", {}).get("scale") == "smoke":
        return claims.untestable(SMOKE_TIMES)
    return verdict
