"""FDS's outer loop: learn hyperparameters by exact hypergradients of full trainings.

FDS (Micaelli & Storkey, "Gradient-based hyperparameter optimization over long horizons")
re-initializes the weights and reshuffles the data at every outer step, trains once with the
current hyperparameters h_k through a hypergradient estimator (forward mode, or reverse mode
where it is faster), and moves each learned value by an outer update (the paper's sign step,
:func:`hpolab.hypergrad.sign_descent`). :func:`learn` is that loop, recorded by the one
recorder (:mod:`hpolab.recorder`), resumable from a :class:`~hpolab.cache.StudyCache` (each
finished outer step is a cached piece), with what the paper leaves open written out: a training
that diverges or ends dead sends the next run halfway back to the last hyperparameters that
trained (:func:`diverged_update`), and the loop may stop once every step has shrunk below a
fraction of its value (:func:`converged`). The FDS studies (notebooks 08 to 11) use it through
:mod:`hpolab.studies.fds`.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Callable

import torch

from hpolab.history import COUNTERS, History
from hpolab.hypergrad import Hyperparameters, InnerTask, per_entry, sign_descent, train
from hpolab.hypergrad.outer import OuterUpdate
from hpolab.hypergrad.result import Estimator
from hpolab.methods.hypergradient_tuning import hypergradient_tuning, tuning_step
from hpolab.problems.tuning import classification_metrics, hyperparameter_names
from hpolab.progress import progress_bar
from hpolab.protocol import Cost, Method
from hpolab.recorder import Recorder
from hpolab.validation import check_choice, check_count

if TYPE_CHECKING:  # hpolab.cache reads the package's version: importing it here would be circular
    from hpolab.cache import StudyCache

RUN_SEED_STRIDE = 100_003  # outer step k of a run with seed s trains with seed s * stride + k
START_PROGRESS = 0.9  # "trains": the validation loss falls below 0.9 of the untrained network's
FAILED = ("diverged", "stalled")  # the kinds of outer-step rows whose run gives no usable hypergradient


def fds_tuning(task: InnerTask, hyper: Hyperparameters, limits: tuple[torch.Tensor, torch.Tensor] | None = None, *,
               gamma=0.1, estimator: str | Estimator = "forward", seed: int | None = None,
               label: str = "FDS") -> Method:
    """FDS as a tuner on the core protocol (``TUNERS["fds"]``): each step re-initializes the
    weights, trains once through ``estimator`` (forward mode, the paper's) and moves every
    learned value by its step against the sign of its hypergradient, halving the step of an
    entry whose sign flips (:func:`~hpolab.hypergrad.sign_descent`), within ``limits``.

    ``gamma`` is the first step: one value, a flat tensor, or a dict by hyperparameter name.
    This is :func:`~hpolab.methods.hypergradient_tuning` with FDS's outer update; :func:`learn`
    drives the same step (:func:`~hpolab.methods.hypergradient_tuning.tuning_step`) for the
    studies and adds what the paper leaves open (recovery from a failed training, a stop at
    convergence, a cache per outer step, a final plain training).
    """
    steps = per_entry(hyper, gamma, "gamma")
    method = hypergradient_tuning(task, hyper, limits, estimator=estimator, outer=sign_descent(steps, limits),
                                  seed=seed, label=label)
    return method._replace(name="fds", config={"outer": "sign descent", "gamma": steps.tolist(),
                                               "estimator": estimator if isinstance(estimator, str) else "given"})


def run_seed(seed: int, step: int) -> int:
    """The inner run's seed (initialization and data order) at outer step ``step``: every outer
    step draws new ones, as FDS does, and a resumed run draws the same ones again."""
    return seed * RUN_SEED_STRIDE + step


def converged(state, initial_steps: torch.Tensor, frac: float) -> bool:
    """The authors' stopping rule (``converged_frac`` = 0.05 in their code): every
    hyperparameter's current step is below ``frac`` of its value. For a value near 0 the step
    is compared with its first step instead (``max(|h|, gamma_0)``), so that a value settling
    at 0 counts as converged once its step has been halved below ``frac`` of gamma_0."""
    return bool((relative_steps(state, initial_steps) < frac).all())


def relative_steps(state, initial_steps: torch.Tensor) -> torch.Tensor:
    """Each entry's current step over ``max(|h|, gamma_0)`` (see :func:`converged`)."""
    return state.step_size / torch.maximum(state.h.abs(), initial_steps)


def learn(task: InnerTask, hyper: Hyperparameters, estimator: Estimator, outer: OuterUpdate, steps: int | None, *,
          test: tuple[torch.Tensor, torch.Tensor] | None = None, cache: StudyCache | None = None,
          label: str = "FDS", seed: int = 0, max_seconds: float | None = None,
          converged_frac: float | None = None, on_diverge: str = "halve",
          callback: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
          progress: bool = True) -> History:
    """Learn ``hyper.learn`` over ``steps`` outer steps, each a full training from scratch
    (``steps=None``: as many as the time budget ``max_seconds`` allows).

    Row k of the history holds the hyperparameters h_k of run k, that run's validation loss
    (``objective``) and test error, and the cumulative cost; run k < steps also computes the
    hypergradient at h_k, and ``outer`` moves h_k to h_{k+1} (``relative_step``: the largest
    next step over its value, see :func:`converged`). The last row is a plain training at the
    final hyperparameters. With a ``cache``, every finished outer step is on disk and a re-run
    resumes after the last one; ``wall_time`` then counts compute time only.

    A training that diverges gives no hypergradient, and one that ends dead (its validation
    loss not below :data:`START_PROGRESS` of its untrained network's, after an earlier run had
    trained) gives a useless one: near zero, its sign noise, so sign steps cannot leave the dead
    region (study 09 at cpu scale: FDS stalled at ln 10 from outer step 2 on and ended at chance
    accuracy). The paper does not say what its loop does then (the authors' code clamps every
    inner gradient, as the studies' tasks do here with ``grad_clip``, which makes divergence
    rarer but does not rule it out; a NaN hypergradient has sign 0 there, so it stays put).
    With ``on_diverge="halve"`` (the default) the next run goes halfway back to the last
    hyperparameters whose run did not fail, with the step of every value that moved halved,
    as a sign flip would do (:func:`diverged_update`); the row is kept with ``kind="diverged"``
    or ``kind="stalled"`` and the loop goes on. A run at the starting hyperparameters (alpha =
    0 leaves the network untrained) is not a failure: the rule needs a run that trained
    before. A failure before any run has trained, or a divergence with ``on_diverge="stop"``,
    ends the run with status ``"diverged"``.
    ``max_seconds`` ends the run early as ``"finished"``, ``should_stop`` as ``"stopped"``;
    with ``converged_frac`` it also ends (``"finished"``, with its final training) at the
    first outer step after which :func:`converged` holds.
    """
    if steps is None and max_seconds is None:
        raise ValueError("steps may be None only with a time budget (max_seconds)")
    if steps is not None:
        check_count("steps", steps, minimum=1)
    check_choice("on_diverge", on_diverge, ("halve", "stop"))
    if converged_frac is not None and not 0 < converged_frac < 1:
        raise ValueError(f"converged_frac must be in (0, 1), got {converged_frac!r}")
    names = hyperparameter_names(hyper)
    metrics = classification_metrics(task, test) if test is not None else None
    state = outer.init(hyper.pack())
    initial_steps = state.step_size.clone()
    recorder = Recorder(callback=callback, should_stop=should_stop, max_seconds=max_seconds)
    total = steps + 1 if max_seconds is None and steps is not None else None  # a time budget: open-ended
    last, halved, anchor, k = False, [], None, 0  # anchor: the hyperparameters of the last run that did not fail
    trained_once = False  # whether some run has brought the validation loss below START_PROGRESS of its start
    with progress_bar(total=total, desc=label, disable=not progress, leave=False) as bar:
        while True:
            last = last or (steps is not None and k >= steps)
            piece = f"{label}-seed{seed}-{'final' if last else 'step'}{k}"  # one cache may hold several seeds
            cached = cache.load(piece) if cache is not None else None
            if cached is None:
                run, next_state = _outer_step(task, hyper, estimator, outer, state, k, last, seed, metrics,
                                              names, initial_steps, trained_once)
                recover = (run["kind"] in FAILED and on_diverge == "halve" and anchor is not None
                           and bool((state.h != anchor).any()))
                if run["kind"] == "stalled" and not recover:  # nowhere to go back to: keep its hypergradient
                    run["kind"] = "final" if last else "hypergradient"
                    run["message"] = ""
                if recover:  # halfway back to the last point that trained; a final training: back to it
                    next_state = state._replace(h=anchor) if last else diverged_update(state, anchor)
                if cache is not None and (run["kind"] not in FAILED or recover):
                    cache.save(piece, (run, next_state))
            else:
                run, next_state = cached
            row = _record(recorder, k, run)
            bar.update()
            failed = row["kind"] in FAILED
            if failed and next_state is state:
                recorder.fail(f"at outer step {k}", run["message"])
                break
            if failed:
                halved.append(f"{k} ({row['kind']})")
                recorder.message = (f"training failed at outer step(s) {', '.join(halved)}: each time the run "
                                    "went halfway back to the last hyperparameters that trained, with halved steps"
                                    + (" (the final training: back to them)" if last else ""))
            else:
                anchor = state.h
                trained_once = trained_once or run["trained"]
            state = next_state
            k += 1
            if last:
                if failed:
                    continue
                break
            if recorder.stop_requested(f"after outer step {k - 1}") or recorder.out_of_time():
                break
            if converged_frac is not None and converged(state, initial_steps, converged_frac):
                last = True
                recorder.message = "; ".join(filter(None, [
                    recorder.message, f"converged after outer step {k - 1}: every step below {converged_frac:g} of its value"]))
    return recorder.history("fds" if label == "FDS" else label.lower(), label, task.name, seed,
                            {"outer": outer.name, "steps": steps, "gamma": initial_steps.tolist()}, list(names))


def _record(recorder: Recorder, k: int, run: dict) -> dict:
    """Row k: run k's measurements with the costs summed over the runs so far (``wall_time``
    counts compute time, so that a run resumed from a cache reads as one)."""
    before = recorder.rows[-1] if recorder.rows else {name: 0 for name in (*COUNTERS, "wall_time", "runs")}
    return recorder.record(k, objective=run["loss"], kind=run["kind"],
                           **{name: before[name] + run[name] for name in COUNTERS},
                           wall_time=before["wall_time"] + run["seconds"], runs=before["runs"] + 1, **run["columns"])


def diverged_update(state, anchor: torch.Tensor):
    """The outer state after a diverged training at ``state.h``: halfway back to ``anchor``
    (the hyperparameters of the last run that trained), with the step of every entry that
    moved halved, as a sign flip would (:func:`hpolab.hypergrad.sign_descent`). Repeated
    divergences close in on ``anchor`` geometrically. The last hypergradient signs are kept,
    so that later flips are judged against real hypergradients."""
    moved = state.h != anchor
    return state._replace(h=anchor + (state.h - anchor) / 2,
                          step_size=torch.where(moved, state.step_size / 2, state.step_size))


def trains(loss: float, untrained: float) -> bool:
    """The start check's criterion: a validation loss ``loss`` (NaN: diverged) below
    :data:`START_PROGRESS` of the untrained network's ``untrained``."""
    return loss == loss and loss < START_PROGRESS * untrained


def stalled(task: InnerTask, loss: float, seed: int) -> tuple[bool, float]:
    """Whether a finished training did not train: its validation loss ``loss`` is not below
    :data:`START_PROGRESS` of the untrained network's at the same ``seed`` (the start check's
    criterion). Returns that and the untrained loss."""
    untrained = float(task.val_loss(task.init(seed)))
    return not trains(loss, untrained), untrained


def _outer_step(task, hyper, estimator, outer, state, k, last, seed, metrics, names, initial_steps,
                trained_once=False):
    """Run k: train at h_k (with its hypergradient unless it is the last) and step the outer update;
    returns what run k measured (its own costs, loss, kind, columns) and the next outer state.
    After a run that trained (``trained_once``), a run that did not (:func:`stalled`) is marked
    ``kind="stalled"`` (:func:`learn` decides whether its hypergradient step is kept)."""
    start = time.perf_counter()
    inner_seed = run_seed(seed, k)
    if last:
        trained = train(task, hyper.with_flat(state.h), inner_seed)
        theta, diverged, why = trained.theta, trained.diverged, trained.message
        cost = Cost(gradient_evaluations=trained.steps)
        loss = float(task.val_loss(theta)) if not diverged else math.nan
        next_state, norm2 = state, math.nan
    else:
        result, next_state = tuning_step(estimator, task, hyper, outer, state, inner_seed)
        theta, diverged, why, loss, cost = result.theta, result.diverged, result.message, result.loss, result.cost
        norm2 = math.nan if diverged else float((result.grad ** 2).sum())
    dead, untrained = (False, math.nan) if diverged else stalled(task, loss, inner_seed)
    if dead and trained_once:
        why = (f"the network did not train: validation loss {loss:.4g}, not below {START_PROGRESS:g} x "
               f"{untrained:.4g} (the untrained network's)")
    kind = "diverged" if diverged else "stalled" if dead and trained_once else ("final" if last else "hypergradient")
    columns = {
        **dict(zip(names, state.h.tolist())),
        "hypergradient_norm2": norm2, "seed": inner_seed,
        "relative_step": math.nan if (last or diverged) else float(relative_steps(next_state, initial_steps).max()),
    }
    if metrics is not None:
        columns.update(metrics(theta if not diverged else torch.full_like(theta, math.nan), state.h))
        columns["test_accuracy"] = 1.0 - columns["test_error"]
    run = {"loss": loss, "kind": kind, "columns": columns, "seconds": time.perf_counter() - start,
           **{name: getattr(cost, name) for name in COUNTERS},
           "trained": not diverged and not dead, "message": why if diverged or kind == "stalled" else ""}
    return run, next_state
