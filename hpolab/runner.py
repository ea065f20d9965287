"""The loop shared by every method: step, count, record, stop on budget or divergence."""

from __future__ import annotations

import math
from typing import Callable

from hpolab.progress import progress_bar

from hpolab import divergence
from hpolab.history import History
from hpolab.oracle import Oracle
from hpolab.problems.base import Problem
from hpolab.protocol import Method
from hpolab.recorder import Recorder
from hpolab.seeding import make_generator
from hpolab.validation import check_count


def run(
    method: Method,
    problem: Problem,
    iterations: int | None,
    seed: int = 0,
    *,
    progress: bool = False,
    callback: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    divergence_factor: float = divergence.FACTOR,
    max_seconds: float | None = None,
) -> History:
    """Run ``method`` on ``problem`` until ``iterations`` evaluations are spent (or the time
    budget ``max_seconds``, or ``should_stop``, ends it).

    Args:
      method: what to run.
      problem: what to minimize.
      iterations: budget of gradient plus function evaluations (the paper's iterations);
        None for a run bounded only by ``max_seconds`` or ``should_stop``.
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
    if iterations is None and max_seconds is None and should_stop is None:
        raise ValueError("iterations may be None only with a time budget (max_seconds) or should_stop")
    if iterations is not None:
        check_count("iterations", iterations)
    budget = math.inf if iterations is None else iterations
    generator = make_generator(seed)
    oracle = Oracle(problem)
    x0, y0 = problem.initial_point(generator)
    state = method.init(x0, y0, oracle, generator)
    recorder = Recorder(callback=callback, should_stop=should_stop, divergence_factor=divergence_factor,
                        max_seconds=max_seconds)

    def record(kind: str) -> dict:
        return recorder.record(
            len(recorder.rows),
            objective=float(problem.objective(state.x, state.y)),
            kind=kind,
            iteration=oracle.evaluations,
            gradient_evaluations=oracle.gradient_evaluations,
            function_evaluations=oracle.function_evaluations,
            hvp_evaluations=oracle.hvp_evaluations,
            **dict(zip(problem.hyperparameter_names, state.y.tolist())),
            **(problem.metrics(state.x, state.y) if problem.metrics is not None else {}),
            **getattr(state, "extras", {}),
        )

    recorder.diverged(record("start")["objective"], "at step 0")
    with progress_bar(total=iterations, desc=method.label, disable=not progress, leave=False) as bar:
        while not recorder.ended and oracle.evaluations < budget:
            state = method.update(state, oracle, generator)
            row = record(getattr(state, "kind", "step"))
            bar.update(min(row["iteration"], budget) - bar.n)
            at = f"at step {row['step']}"
            if (recorder.diverged(row["objective"], at, note=getattr(state, "message", ""))
                    or recorder.stop_requested(at) or recorder.out_of_time()):
                break
    return recorder.history(method.name, method.label, problem.name, seed, method.config,
                            list(problem.hyperparameter_names))
