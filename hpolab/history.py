"""One run, one history: a tidy table of what happened at every step."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

COUNTERS = ["gradient_evaluations", "function_evaluations", "hvp_evaluations"]
COLUMNS = ["step", "iteration", *COUNTERS, "wall_time", "objective", "best_objective", "kind"]


@dataclass
class History:
    """The record of one run.

    Attributes:
      frame: one row per step (row 0 is the start): ``step``, ``iteration`` (gradient and
        function evaluations so far, the paper's iteration count), the counters (gradient,
        function and Hessian-vector-product evaluations),
        ``wall_time`` (seconds), ``objective`` f(x, y) at the current iterate,
        ``best_objective`` (its running minimum), ``kind`` (what the step did), and one
        column per hyperparameter.
      method, label: the method's name and the label plots use.
      problem: the problem's name.
      seed: the run's seed.
      config: the method's settings.
      hyperparameters: names of the hyperparameter columns.
      status: ``"finished"``, ``"diverged"`` or ``"stopped"``; the frame keeps every
        step taken before a run ended early.
      message: why the run ended early, if it did.
    """

    frame: pd.DataFrame
    method: str
    label: str
    problem: str
    seed: int
    config: dict = field(default_factory=dict)
    hyperparameters: list[str] = field(default_factory=list)
    status: str = "finished"
    message: str = ""

    @property
    def final_objective(self) -> float:
        return float(self.frame["objective"].iloc[-1])

    @property
    def best_objective(self) -> float:
        return float(self.frame["best_objective"].iloc[-1])

    @property
    def iterations(self) -> int:
        return int(self.frame["iteration"].iloc[-1])

    def tidy(self) -> pd.DataFrame:
        """The frame with the run's identity as columns, ready to concatenate."""
        identity = {
            "method": self.method,
            "label": self.label,
            "problem": self.problem,
            "seed": self.seed,
            "status": self.status,
        }
        for key, value in self.config.items():
            identity.setdefault(key, value if isinstance(value, (int, float, str, bool, type(None))) else str(value))
        return self.frame.assign(**identity)

    def __repr__(self) -> str:
        return (
            f"History({self.label!r} on {self.problem!r}, seed={self.seed}, {len(self.frame) - 1} steps, "
            f"{self.iterations} iterations, final objective {self.final_objective:.4g}, {self.status})"
        )


def ordered(rows: list[dict]) -> pd.DataFrame:
    """The rows of a run as a frame, the :data:`COLUMNS` first and the run's own columns after."""
    frame = pd.DataFrame(rows)
    return frame[[*COLUMNS, *[c for c in frame.columns if c not in COLUMNS]]]


def combine(histories: list[History]) -> pd.DataFrame:
    """All histories in one tidy frame (one row per run and step)."""
    return pd.concat([h.tidy() for h in histories], ignore_index=True)
