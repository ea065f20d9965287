"""The one recorder: how every run of the library becomes a :class:`~hpolab.history.History`.

Each loop of the library (the runner, plain training, local SGD, the STN runs, FDS's outer
loop and its HD training) measures what it measures and hands it to a :class:`Recorder`,
which owns everything that is the same for all of them: the row format (the
:data:`~hpolab.history.COLUMNS` first, then the run's own columns), the running best
objective, the one divergence rule (:mod:`hpolab.divergence`), the ``callback`` that sees each
new row, stop requests, the time budget, the run's status and message, and the final
``History``. To change how runs are recorded or judged, change this file.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import pandas as pd

from hpolab import divergence
from hpolab.history import History, ordered


def running_best(objective: pd.Series) -> pd.Series:
    """The recorder's ``best_objective`` for a whole column at once, for a history whose
    objective was replaced after the run: the least finite value so far (NaN before any)."""
    return objective.where(np.isfinite(objective)).cummin().ffill()


class Recorder:
    """The rows of one run, and how the run ended.

    Args:
      callback: called with each new row (a dict), e.g. to update a live figure.
      should_stop: polled by :meth:`stop_requested`; True ends the run as ``"stopped"``.
      divergence_factor: the divergence rule's factor (:data:`hpolab.divergence.FACTOR`).
      max_seconds: the time budget :meth:`out_of_time` checks (None: no budget).

    Attributes:
      rows: the rows so far; ``status`` (``"finished"``, ``"diverged"`` or ``"stopped"``)
        and ``message`` (why the run ended early, or a note on how it went).
    """

    def __init__(self, *, callback: Callable[[dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, divergence_factor: float = divergence.FACTOR,
                 max_seconds: float | None = None):
        self.callback, self.should_stop = callback, should_stop
        self.divergence_factor, self.max_seconds = divergence_factor, max_seconds
        self.rows: list[dict] = []
        self.status, self.message = "finished", ""
        self.start = time.perf_counter()
        self._references: dict[str, float] = {}

    def elapsed(self) -> float:
        """Seconds since the recorder was made (the run's start)."""
        return time.perf_counter() - self.start

    def record(self, step: int, *, objective: float, kind: str, gradient_evaluations: int,
               function_evaluations: int = 0, hvp_evaluations: int = 0, iteration: int | None = None,
               wall_time: float | None = None, **columns) -> dict:
        """Add one row and show it to the callback.

        ``iteration`` (the papers' count) defaults to gradient plus function evaluations,
        ``wall_time`` to the seconds since the start (a run resumed from a cache passes its
        compute time). ``best_objective`` is the least finite objective so far (NaN before
        any). Further keyword arguments become the row's own columns.
        """
        finite = objective if math.isfinite(objective) else math.nan
        best = float(np.fmin(self.rows[-1]["best_objective"], finite)) if self.rows else finite  # fmin skips NaN
        row = {
            "step": step,
            "iteration": gradient_evaluations + function_evaluations if iteration is None else iteration,
            "gradient_evaluations": gradient_evaluations,
            "function_evaluations": function_evaluations,
            "hvp_evaluations": hvp_evaluations,
            "wall_time": self.elapsed() if wall_time is None else wall_time,
            "objective": objective,
            "best_objective": best,
            "kind": kind,
            **columns,
        }
        self.rows.append(row)
        if self.callback is not None:
            self.callback(row)
        return row

    def diverged(self, value: float, at: str, what: str = "the objective", note: str = "") -> bool:
        """Apply the divergence rule to ``value`` of ``what`` (measured ``at``, e.g. ``"at step
        12"``); when it has diverged, end the run as ``"diverged"`` (the message names ``at``,
        ``what`` and ``note``) and return True. The first value of ``what`` given here is its
        reference, and diverges only when it is not finite."""
        reference = self._references.get(what, math.nan)  # NaN: only the finiteness test
        if what not in self._references:
            self._references[what] = value
        if not divergence.diverged(value, reference, self.divergence_factor):
            return False
        self.fail(at, f"{what} reached {value:.4g}" + (f" ({note})" if note else ""))
        return True

    def fail(self, at: str, why: str) -> None:
        """End the run as ``"diverged"`` ``at`` a point, for the reason ``why``."""
        self.status, self.message = "diverged", f"diverged {at}: {why}"

    def stop_requested(self, at: str) -> bool:
        """Poll ``should_stop``; when it asks, end the run as ``"stopped"`` ``at`` a point."""
        if self.should_stop is None or not self.should_stop():
            return False
        self.status, self.message = "stopped", f"stopped by request {at}"
        return True

    def out_of_time(self) -> bool:
        """Whether the last row's wall time has reached ``max_seconds`` (the run still ends
        as ``"finished"``: a time budget is a budget, not a failure)."""
        return self.max_seconds is not None and bool(self.rows) and self.rows[-1]["wall_time"] >= self.max_seconds

    @property
    def ended(self) -> bool:
        """Whether the run ended early (diverged or stopped)."""
        return self.status != "finished"

    def history(self, method: str, label: str, problem: str, seed: int, config: dict | None = None,
                hyperparameters: list[str] | None = None, kind: type[History] = History, **extra) -> History:
        """The run as a ``kind`` of :class:`~hpolab.history.History` (``extra``: its own fields)."""
        return kind(ordered(self.rows), method, label, problem, seed, dict(config or {}),
                    list(hyperparameters or []), self.status, self.message, **extra)
