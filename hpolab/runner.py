"""The loop shared by every method: step, count, record, stop on budget or divergence."""

from __future__ import annotations

import math
import time
from typing import Callable

from hpolab.progress import progress_bar

from hpolab import divergence
from hpolab.history import History, ordered
from hpolab.oracle import Oracle
from hpolab.problems.base import Problem
from hpolab.protocol import Method
from hpolab.seeding import make_generator
from hpolab.validation import check_count


def run(
    method: Method,
    problem: Problem,
    iterations: int,
    seed: int = 0,
    *,
    progress: bool = False,
    callback: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    divergence_factor: float = divergence.FACTOR,
    max_seconds: float | None = None,
) -> History:
    """Run ``method`` on ``problem`` until ``iterations`` evaluations are spent.

    Args:
      method: what to run.
      problem: what to minimize.
      iterations: budget of gradient plus function evaluations (the paper's iterations).
      seed: seeds the start point and every random choice of the method; on the CPU two
        runs with the same seed give identical histories.
      progress: show a progress bar (a widget in notebooks, text lines in batch runs).
      callback: called with each new row (a dict), e.g. to update a live figure.
      should_stop: polled after each step; returning True ends the run as ``"stopped"``.
      divergence_factor: a run whose objective exceeds this multiple of its starting
        magnitude (at least 1) has diverged.
      max_seconds: also stop once this much wall time has passed (a time budget, as the
        HPO papers compare methods by); the run still ends as ``"finished"``.

    Returns:
      The run's :class:`~hpolab.history.History`. A run whose objective becomes NaN,
      infinite or larger than ``divergence_factor`` times its start ends there with
      status ``"diverged"`` and keeps the steps before.
    """
    check_count("iterations", iterations)
    generator = make_generator(seed)
    oracle = Oracle(problem)
    x0, y0 = problem.initial_point(generator)
    state = method.init(x0, y0, oracle, generator)
    start = time.perf_counter()
    rows = []

    def record(step: int, kind: str) -> dict:
        value = float(problem.objective(state.x, state.y))
        best = min(value, rows[-1]["best_objective"]) if rows else value
        row = {
            "step": step,
            "iteration": oracle.evaluations,
            "gradient_evaluations": oracle.gradient_evaluations,
            "function_evaluations": oracle.function_evaluations,
            "hvp_evaluations": oracle.hvp_evaluations,
            "wall_time": time.perf_counter() - start,
            "objective": value,
            "best_objective": best if math.isfinite(value) else rows[-1]["best_objective"] if rows else value,
            "kind": kind,
            **dict(zip(problem.hyperparameter_names, state.y.tolist())),
            **(problem.metrics(state.x, state.y) if problem.metrics is not None else {}),
            **getattr(state, "extras", {}),
        }
        rows.append(row)
        if callback is not None:
            callback(row)
        return row

    reference = record(0, "start")["objective"]
    status, message = "finished", ""
    with progress_bar(total=iterations, desc=method.label, disable=not progress, leave=False) as bar:
        while oracle.evaluations < iterations:
            state = method.update(state, oracle, generator)
            row = record(len(rows), getattr(state, "kind", "step"))
            bar.update(min(row["iteration"], iterations) - bar.n)
            if divergence.diverged(row["objective"], reference, divergence_factor):
                status = "diverged"
                message = f"diverged at step {row['step']}: the objective reached {row['objective']:.4g}"
                message += f" ({state.message})" if getattr(state, "message", "") else ""
                break
            if should_stop is not None and should_stop():
                status, message = "stopped", f"stopped by request at step {row['step']}"
                break
            if max_seconds is not None and row["wall_time"] >= max_seconds:
                break

    return History(
        frame=ordered(rows),
        method=method.name,
        label=method.label,
        problem=problem.name,
        seed=seed,
        config=dict(method.config),
        hyperparameters=list(problem.hyperparameter_names),
        status=status,
        message=message,
    )
