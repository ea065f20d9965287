"""The rules that read the paper's words as numbers for the claims of studies 06 and 07
(:mod:`hpolab.studies.hd_vs_decay_claims` says them in words): "significantly" below
(:func:`below`), "most" (more than half), a curve's valley and the rise either side of its
best alpha_0 (:class:`Shape`, :func:`shape`), "wider" (:func:`wider`), and how a loss or a rise
is written in a verdict. Kept apart from the checks because both claim groups (study 06's
and study 07's) use them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd

CHANCE_LOSS = math.log(10)
NEAR_BEST = 0.1
WIDER = 2.0  # a valley is "wider" than another when it spans at least twice the decades


def _g(value: float) -> str:
    """A loss in 3 significant digits; NaN or inf is a diverged configuration."""
    return "diverged" if value is None or not np.isfinite(value) else f"{value:.3g}"


def _r(value: float) -> str:
    """A rise per decade: NaN where the best alpha_0 is at the grid's edge, inf where the
    neighbour diverged."""
    return "edge" if math.isnan(value) else "inf (diverged)" if math.isinf(value) else f"{value:.3g}"


def _finite(value) -> float:
    """NaN (a diverged configuration) as +inf: worse than any loss."""
    return math.inf if value is None or math.isnan(value) else float(value)


def below(a: float, a_half: float, b: float, b_half: float) -> bool:
    """a significantly below b: a's 95 % interval lies wholly under b's (NaN: diverged, worst)."""
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a + (0.0 if math.isnan(a_half) else a_half) < b - (0.0 if math.isnan(b_half) else b_half)


def wider(a: float, b: float) -> bool:
    """Valley width a is wider than b: at least :data:`WIDER` times it (and not both zero)."""
    return a > 0 and a >= WIDER * b


def _most(count: int, total: int) -> bool:
    return total > 0 and count > total / 2


class Shape(NamedTuple):
    """A sensitivity curve read as numbers: the best alpha_0 and loss, the valley's width in
    decades, and the rise per decade to the grid points either side of the best (NaN where
    the best is at the grid's edge; inf where that neighbour diverged)."""

    best_lr: float
    best: float
    width: float
    rise_left: float
    rise_right: float

    @property
    def asymmetry(self) -> float:
        """rise_right / (rise_left + rise_right): 0.5 symmetric, above it steeper to the right."""
        left, right = self.rise_left, self.rise_right
        if math.isnan(left) or math.isnan(right):
            return math.nan
        if math.isinf(left) and math.isinf(right):
            return 0.5
        if math.isinf(right):
            return 1.0
        if math.isinf(left):
            return 0.0
        return 0.5 if left + right == 0 else right / (left + right)


def shape(lrs, losses) -> Shape:
    """The :class:`Shape` of a curve of ``losses`` (NaN: diverged) at ``lrs``.

    The valley's ends are where the curve, drawn as straight lines between grid points on a
    log alpha_0 axis (as the paper's figures draw it), crosses the near-best level: a valley
    narrower than the grid's spacing still has a width, and widths compare across grids. A
    diverged neighbour ends the valley at the last finite point.
    """
    order = np.argsort(np.asarray(lrs, dtype=float))
    logs = np.log10(np.asarray(lrs, dtype=float)[order])
    values = np.array([_finite(v) for v in np.asarray(losses, dtype=float)[order]])
    if not np.isfinite(values).any():
        return Shape(math.nan, math.inf, 0.0, math.nan, math.nan)
    i = int(np.argmin(values))
    best = float(values[i])
    limit = best + NEAR_BEST * abs(CHANCE_LOSS - best)

    def end(step):
        j = i
        while 0 <= j + step < len(values) and values[j + step] <= limit:
            j += step
        outside = j + step
        if not 0 <= outside < len(values) or not np.isfinite(values[outside]):
            return logs[j]
        fraction = (limit - values[j]) / (values[outside] - values[j])
        return logs[j] + fraction * (logs[outside] - logs[j])

    def rise(j):
        if not 0 <= j < len(values):
            return math.nan
        return (values[j] - best) / abs(logs[j] - logs[i])

    return Shape(float(10 ** logs[i]), best, float(end(1) - end(-1)), rise(i - 1), rise(i + 1))


def curve_shape(frame: pd.DataFrame, task: str, optimizer: str, curve: str, loss: str = "train") -> Shape | None:
    line = frame[(frame["task"] == task) & (frame["optimizer"] == optimizer) & (frame["curve"] == curve)]
    return shape(line["lr0"], line[loss]) if len(line) else None


def shapes_table(frame: pd.DataFrame, loss: str = "train") -> pd.DataFrame:
    """Every curve's :class:`Shape`, one row per task, optimizer and curve (what the claims read)."""
    rows = []
    for (task, optimizer, curve), line in frame.groupby(["task", "optimizer", "curve"], sort=False):
        s = shape(line["lr0"], line[loss])
        rows.append({"task": task, "optimizer": optimizer, "curve": curve, "best alpha_0": s.best_lr,
                     "best loss": s.best, "valley (decades)": s.width, "rise left /decade": s.rise_left,
                     "rise right /decade": s.rise_right, "asymmetry": s.asymmetry})
    return pd.DataFrame(rows)
