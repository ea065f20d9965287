"""Study 14's tables: the growth rates of error, time and memory per family, sweep and
estimator (:func:`slopes`, the study's summary), the error table and the "use X when"
recommendations, each read from a finished :class:`~hpolab.studies.estimator_atlas.AtlasResult`.
"""

from __future__ import annotations

import math

import pandas as pd

from hpolab.studies.estimator_atlas_claims import EXACT, FAMILIES, growth_rate, slope
from hpolab.studies.estimator_atlas_setting import FLOORS, METRICS, AtlasResult


def slopes(result: AtlasResult) -> pd.DataFrame:
    """Per family, sweep and estimator: the growth rate of error, time and memory."""
    rows = []
    frame = result.measurements
    if frame.empty:
        return pd.DataFrame(columns=["family", "axis", "estimator", "points", *METRICS])
    for (family, axis, label), part in frame.groupby(["family", "axis", "estimator"], sort=False):
        row = {"family": family, "axis": axis, "estimator": label, "points": len(part)}
        for metric in METRICS:
            row[metric] = growth_rate(part[axis], part[metric], FLOORS[metric])
        rows.append(row)
    return pd.DataFrame(rows)


def error_table(result: AtlasResult) -> pd.DataFrame:
    """Per family and estimator: the median and largest relative error over every point, as
    text to one significant digit (below 1e-6: ``< 1e-6``, what float64 rounding leaves), and
    the points measured."""
    def text(value):
        return "< 1e-6" if value < EXACT else f"{value:.0e}"

    frame = result.measurements
    table = frame.groupby(["family", "estimator"], sort=False)["error"].agg(["median", "max", "size"]).reset_index()
    order = {label: i for i, label in enumerate(result.parameters.get("variants", []))}
    table = table.sort_values("estimator", key=lambda s: s.map(order), kind="stable")
    table = table.sort_values("family", key=lambda s: s.map({f: i for i, f in enumerate(FAMILIES)}), kind="stable")
    return pd.DataFrame({"family": table["family"], "estimator": table["estimator"],
                         "median error": table["median"].map(text), "largest error": table["max"].map(text),
                         "points": table["size"]})


def recommendations(result: AtlasResult) -> pd.DataFrame:
    """"Use X when ...", one row per estimator, each sentence chosen by the measured error and
    growth rates (time in T and K, memory in T on the MLP, else the first family measured)."""
    frame = result.measurements
    rows = []
    for label, part in frame.groupby("estimator", sort=False):
        family = "mlp" if (part["family"] == "mlp").any() else part["family"].iloc[0]
        mine = part[part["family"] == family]
        reverse = frame[(frame["family"] == family) & (frame["estimator"] == "reverse")]
        merged = mine.merge(reverse, on=["axis", "T", "K", "D"], suffixes=("", "_reverse"))
        ratio = float((merged["seconds"] / merged["seconds_reverse"]).median()) if len(merged) else math.nan
        error = float(mine["error"].median())
        time_T, time_K = slope(result, family, "T", label, "seconds"), slope(result, family, "K", label, "seconds")
        memory_T = slope(result, family, "T", label, "memory")
        exact = error < EXACT
        if label.startswith("implicit"):
            largest = mine[mine["T"] == mine["T"].max()]["error"].min()
            use = (f"training-loss hyperparameters with the inner problem solved to a minimizer (error {largest:.1g} "
                   f"against {int(mine['T'].max())} unrolled steps)")
        elif label.startswith("zeroth-order"):
            use = f"training is a black box (no derivatives through it) and K is small: error {error:.1g} here"
        elif label.startswith("finite"):
            use = f"checking another estimator at small K: 2K + 1 trainings (time x{ratio:.2g} of reverse)"
        elif not exact:
            use = f"a cheap biased direction suffices (online tuning): error {error:.1g} against the exact one"
        elif memory_T < 0.5:
            fast = merged[(merged["axis"] == "K") & (merged["seconds"] <= 1.5 * merged["seconds_reverse"])]
            k_max = f"K = {int(fast['K'].max())}" if len(fast) else "no K measured"
            tail = "few hyperparameters: time" if time_K >= 0.3 else "any K measured: time nearly flat,"
            use = (f"long horizons: memory flat in T (~ T^{memory_T:.1f}); {tail} ~ K^{time_K:.1f}, within 1.5x of "
                   f"reverse up to {k_max}")
        elif time_K < 0.3:
            use = f"many hyperparameters and a horizon whose run fits in memory: time flat in K, memory ~ T^{memory_T:.1f}"
        else:
            use = "exact, but its memory grows with T and its time with K here: prefer forward or reverse"
        rows.append({"estimator": label, "median error": error, "time / reverse": ratio, "time ~ T^": time_T,
                     "time ~ K^": time_K, "memory ~ T^": memory_T, "use when": use})
    return pd.DataFrame(rows)
