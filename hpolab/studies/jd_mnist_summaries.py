"""Study 02's summary table and the readings of one run's history it and the claims use: the
first iteration a column reaches a threshold, a column's value at an iteration, its mean over a
window of the run.

Kept apart from the study loop (:mod:`hpolab.studies.jd_mnist`) because they only read
histories; :mod:`hpolab.studies.jd_mnist_claims` reads runs through them.
"""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

from hpolab.history import History
from hpolab.problems.mlp import HYPERPARAMETERS


def first_iteration(history: History, column: str, threshold: float) -> float:
    """The first iteration at which ``column`` is at most ``threshold`` (NaN if never)."""
    frame = history.frame
    hits = frame.loc[frame[column] <= threshold, "iteration"]
    return float(hits.iloc[0]) if len(hits) else math.nan


def at_iteration(history: History, column: str, iteration: int) -> float:
    """``column`` after the last step taken at or before ``iteration``."""
    frame = history.frame
    return float(frame.loc[frame["iteration"] <= iteration, column].iloc[-1])


def summarize(histories: Sequence[History]) -> pd.DataFrame:
    """Per method and p: the mean over seeds of the gradient steps taken, the final training
    accuracy and loss (on the monitor sample), the final hyperparameters and the lowest alpha
    of the run."""
    rows = []
    for h in histories:
        last = h.frame.iloc[-1]
        rows.append({
            "method": "JD" if h.method == "jd" else h.label,
            "p": h.config.get("p"),
            "gradient steps": float(last["gradient_evaluations"]),
            "train acc": float(last["train_accuracy"]),
            "train loss": float(last["train_loss"]),
            **{name: float(last[name]) for name in HYPERPARAMETERS},
            "lowest alpha": float(h.frame["alpha"].min()),
            "diverged": h.status == "diverged",
        })
    frame = pd.DataFrame(rows)
    grouped = frame.groupby(["method", "p"], dropna=False, sort=False)
    summary = grouped.agg(**{column: (column, "mean") for column in frame.columns if column not in ("method", "p", "diverged")},
                          runs=("train acc", "size"), diverged=("diverged", "sum"))
    return summary.reset_index()


def window_mean(history: History, column: str, start: float, end: float) -> float:
    """Mean of ``column`` over the steps whose iteration lies in [start, end) of the run's
    iterations (fractions; the last window includes the end)."""
    frame = history.frame
    total = float(frame["iteration"].iloc[-1])
    inside = (frame["iteration"] >= start * total) & ((frame["iteration"] < end * total) | (end >= 1))
    return float(frame.loc[inside, column].mean())
