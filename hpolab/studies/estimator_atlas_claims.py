"""The claims of study 14 (the estimator atlas): textbook expectations read as growth rates.

Each check reads the study's :class:`~hpolab.studies.estimator_atlas.AtlasResult`: its
``measurements`` (one row per family, sweep, point and estimator) and ``summary`` (the growth
rates, :func:`hpolab.studies.estimator_atlas.slopes`). Time and memory checks read the MLP: logistic regression's steps take
too little time and memory to measure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from hpolab import claims

NOTEBOOK = "14_estimator_atlas"
FAMILIES = ("mlp", "logreg")
EXACT = 1e-6  # relative error below which an estimate counts as exact (float64)


def growth_rate(x: Sequence[float], y: Sequence[float], floor: float = 0.0) -> float:
    """Slope of log y against log x (least squares), y floored at ``floor``; NaN with fewer than two x."""
    x, y = np.asarray(x, dtype=float), np.maximum(np.asarray(y, dtype=float), floor)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if len(set(x[keep])) < 2:
        return math.nan
    return float(np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)[0])


def slope(result, family: str, axis: str, label: str, metric: str) -> float:
    table = result.summary
    match = table[(table["family"] == family) & (table["axis"] == axis) & (table["estimator"] == label)]
    return float(match[metric].iloc[0]) if len(match) else math.nan



def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{round(value, 2) + 0.0:.2f}"  # + 0.0: no "-0.00"


def check_reverse_memory_grows(result) -> claims.Verdict:
    """Reverse mode's peak memory grows with T at a log-log slope >= 0.5 (MLP)."""
    rate = slope(result, "mlp", "T", "reverse", "memory")
    if math.isnan(rate):
        return claims.untestable("reverse mode not measured over T on the MLP")
    return claims.verdict(rate >= 0.5, f"memory ~ T^{_fmt(rate)} (reverse, MLP)")


def check_forward_memory_flat(result) -> claims.Verdict:
    """Forward mode's memory slope in T is below 0.3 and below reverse mode's (MLP)."""
    forward, reverse = (slope(result, "mlp", "T", e, "memory") for e in ("forward", "reverse"))
    if math.isnan(forward) or math.isnan(reverse):
        return claims.untestable("forward and reverse mode not both measured over T on the MLP")
    return claims.verdict(forward < 0.3 and forward < reverse,
                          f"memory ~ T^{_fmt(forward)} (forward) vs T^{_fmt(reverse)} (reverse), MLP")


def check_forward_time_grows_with_k(result) -> claims.Verdict:
    """On the MLP (logreg's steps take too little time to time), forward mode's time grows
    with K (log-log slope at least 0.2) and faster than reverse mode's (by at least 0.2)."""
    forward, reverse = (slope(result, "mlp", "K", e, "seconds") for e in ("forward", "reverse"))
    if math.isnan(forward) or math.isnan(reverse):
        return claims.untestable("forward and reverse not both swept over K on the MLP")
    return claims.verdict(forward >= 0.2 and forward > reverse + 0.2, f"time ~ K^{_fmt(forward)} (forward) vs K^{_fmt(reverse)} "
                                                   "(reverse), MLP")


def check_reverse_time_flat_in_k(result) -> claims.Verdict:
    """On the MLP, reverse mode's time slope in K is below 0.3."""
    rate = slope(result, "mlp", "K", "reverse", "seconds")
    if math.isnan(rate):
        return claims.untestable("reverse not swept over K on the MLP")
    return claims.verdict(rate < 0.3, f"time ~ K^{_fmt(rate)} (reverse, MLP)")


def check_zeroth_order_error_falls(result) -> claims.Verdict:
    """On every family, the zeroth-order error (median over points) falls with q at a log-log
    slope between -1 and -0.25 (1/sqrt(q): -0.5)."""
    frame = result.measurements
    parts, ok = [], True
    for family in FAMILIES:
        part = frame[(frame["family"] == family) & frame["estimator"].str.startswith("zeroth-order q=")]
        by_q = part.groupby(part["estimator"].str.removeprefix("zeroth-order q=").astype(int))["error"].median()
        if len(by_q) >= 2:
            rate = growth_rate(by_q.index, by_q.to_numpy())
            ok &= -1.0 <= rate <= -0.25
            parts.append(f"{family}: error ~ q^{_fmt(rate)} (" + ", ".join(f"q={q}: {e:.2g}" for q, e in by_q.items())
                         + ")")
    return claims.verdict(ok, "; ".join(parts)) if parts else claims.untestable("fewer than two q measured")


def check_greedy_biased(result) -> claims.Verdict:
    """On every family, greedy H=1's median relative error is at least 0.1 (a bias, far above the
    exact estimators' rounding), and H=10's is smaller."""
    frame = result.measurements
    parts, ok = [], True
    for family in FAMILIES:
        part = frame[frame["family"] == family]
        one = part[part["estimator"] == "greedy H=1"]["error"].median()
        ten = part[part["estimator"] == "greedy H=10"]["error"].median()
        if not math.isnan(one):
            ok &= one >= 0.1 and (math.isnan(ten) or ten < one)
            parts.append(f"{family}: H=1 {one:.2g}" + (f", H=10 {ten:.2g}" if not math.isnan(ten) else ""))
    return claims.verdict(ok, "median relative error: " + "; ".join(parts)) if parts else claims.untestable(
        "greedy H=1 not measured")


def check_exact_agree(result) -> claims.Verdict:
    """Forward and unrolled-forward agree with reverse below 1e-6 relative at every point, and
    central finite differences below 1e-4."""
    frame = result.measurements
    limits = {"forward": EXACT, "unrolled-forward": EXACT, "finite-differences": 1e-4}
    worst = {e: frame[frame["estimator"] == e]["error"].max() for e in limits}
    worst = {e: w for e, w in worst.items() if not math.isnan(w)}
    if not worst:
        return claims.untestable("no exact estimator measured")
    return claims.verdict(all(w < limits[e] for e, w in worst.items()),
                          "largest relative error: " + ", ".join(f"{e} {w:.1e}" for e, w in worst.items()))


def check_implicit_approaches(result) -> claims.Verdict:
    """On logistic regression, implicit's error against T unrolled steps is smaller at the
    largest T than at the smallest (the run nears the minimizer)."""
    frame = result.measurements
    part = frame[(frame["estimator"] == "implicit") & (frame["axis"] == "T")].sort_values("T")
    if len(part) < 2:
        return claims.untestable("implicit not measured at two horizons (it runs on logreg only)")
    first, last = part.iloc[0], part.iloc[-1]
    return claims.verdict(last["error"] < first["error"],
                          f"error {first['error']:.2g} at T={int(first['T'])}, {last['error']:.2g} at T={int(last['T'])}")


CLAIMS = [
    claims.Claim(id="reverse-memory-grows-with-T", notebook=NOTEBOOK,
                 says="Reverse mode stores the whole training trajectory: its memory grows linearly with T.",
                 source="Franceschi et al. 2017 (RFHO), section 3", check=check_reverse_memory_grows),
    claims.Claim(id="forward-memory-flat-in-T", notebook=NOTEBOOK,
                 says="Forward mode carries K tangents of size D: its memory does not depend on T.",
                 source="Franceschi et al. 2017 (RFHO), section 3; Micaelli & Storkey 2021 (FDS), section 4",
                 check=check_forward_memory_flat),
    claims.Claim(id="forward-time-grows-with-K", notebook=NOTEBOOK,
                 says="Forward mode's time grows with the number of hyperparameters K; reverse mode's does not.",
                 source="Franceschi et al. 2017 (RFHO), section 3", check=check_forward_time_grows_with_k),
    claims.Claim(id="reverse-time-flat-in-K", notebook=NOTEBOOK,
                 says="Reverse mode computes the whole hypergradient in one backward pass, whatever K.",
                 source="Franceschi et al. 2017 (RFHO), section 3", check=check_reverse_time_flat_in_k),
    claims.Claim(id="zeroth-order-error-falls-with-q", notebook=NOTEBOOK,
                 says="Averaging over q random directions reduces the zeroth-order estimate's error, roughly as 1/sqrt(q).",
                 source="Gu et al. (HOZOG) Eq. 3", check=check_zeroth_order_error_falls),
    claims.Claim(id="greedy-is-biased", notebook=NOTEBOOK,
                 says="Greedy (short-horizon) hypergradients are biased relative to the exact hypergradient; a longer "
                      "horizon H reduces the bias.",
                 source="Micaelli & Storkey 2021 (FDS), section 4", check=check_greedy_biased),
    claims.Claim(id="exact-estimators-agree", notebook=NOTEBOOK,
                 says="Forward and reverse mode compute the same hypergradient (finite differences agree to their "
                      "truncation error).",
                 source="Franceschi et al. 2017 (RFHO), section 3", check=check_exact_agree),
    claims.Claim(id="implicit-needs-a-minimizer", notebook=NOTEBOOK,
                 says="Implicit differentiation gives the hypergradient at a minimizer of the training loss: it "
                      "matches the unrolled one as training converges.",
                 source="Pedregosa 2016 (HOAG), section 3", check=check_implicit_approaches),
]
