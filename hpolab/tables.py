"""Result tables: rounded for display, saved as CSV."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def significant(value, digits: int = 3):
    """``value`` rounded to ``digits`` significant digits (non-floats pass through)."""
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return round(value, digits - 1 - math.floor(math.log10(abs(value))))
    return value


def short(value) -> str:
    """``value`` in 3 significant digits, in its shortest form (how claims quote numbers)."""
    return f"{significant(float(value)):g}"


def mean_interval(values) -> tuple[float, float]:
    """Mean and half-width of the 95 % t-interval (0 for one value)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()), 0.0
    from scipy import stats

    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean()), float(half)


def show(frame: pd.DataFrame, digits: int = 3) -> None:
    """Print the table as plain text, floats to ``digits`` significant digits in their
    shortest form (what nbval compares)."""
    formatters = {name: (lambda v: f"{significant(v, digits):g}") for name in frame.columns if frame[name].dtype.kind == "f"}
    print(frame.to_string(index=False, formatters=formatters))
