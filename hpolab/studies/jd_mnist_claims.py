"""Study 02's claims ledger: the JD paper's section 4.2 claims (96 % accuracy, matching the
ReLU network, beating the linear one, alpha near 0 by iteration 500, eta shrinking near
convergence), checked on a :class:`~hpolab.studies.common.StudyResult` of
:func:`hpolab.studies.jd_mnist.run_study`.

Kept apart from the study loop (:mod:`hpolab.studies.jd_mnist`, which re-exports :data:`CLAIMS`
for :mod:`hpolab.claims` and the notebook) because the checks only read histories; their
thresholds are settings in :mod:`hpolab.studies.jd_mnist_setup`.
"""

from __future__ import annotations

import math

from hpolab import claims
from hpolab.history import History
from hpolab.studies.jd_mnist_setup import ACCURACY, ALPHA_NEAR_ZERO, CLAIM_P, ETA_DROP, MATCH, NOTEBOOK
from hpolab.studies.jd_mnist_summaries import at_iteration, first_iteration, window_mean
from hpolab.tables import short


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else math.nan


def _jd_runs(result, p: float = CLAIM_P) -> list[History]:
    return [h for h in result.histories if h.method == "jd" and h.config.get("p") == p]


def _reference_runs(result, reference: str) -> list[History]:
    return [h for h in result.histories if h.config.get("reference") == reference]


def _final(runs, column: str = "train_accuracy") -> float:
    return _mean(float(h.frame[column].iloc[-1]) for h in runs)


def check_accuracy(result) -> claims.Verdict:
    """JD (p = 0.5) ends with a mean training accuracy of at least ``ACCURACY``."""
    runs = _jd_runs(result)
    if not runs:
        return claims.untestable(f"JD not run at p = {CLAIM_P:g}")
    accuracy = _final(runs)
    steps = _mean(float(h.frame["gradient_evaluations"].iloc[-1]) for h in runs)
    return claims.verdict(accuracy >= ACCURACY, f"JD p={CLAIM_P:g}: training accuracy {short(accuracy)} after "
                          f"{runs[0].iterations} iterations ({steps:.0f} gradient steps; mean of {len(runs)} runs); "
                          f"holds at >= {ACCURACY:g}")


def check_matches_relu(result) -> claims.Verdict:
    """JD's final accuracy is within ``MATCH`` of the fixed ReLU network's, same budget."""
    runs, relu = _jd_runs(result), _reference_runs(result, "relu")
    if not runs or not relu:
        return claims.untestable("JD at p = 0.5 and the fixed ReLU network are not both in this run")
    ours, theirs = _final(runs), _final(relu)
    return claims.verdict(ours >= theirs - MATCH, f"training accuracy after {runs[0].iterations} iterations: JD "
                          f"{short(ours)}, ReLU (fixed) {short(theirs)}; holds within {MATCH:g}")


def check_beats_linear(result) -> claims.Verdict:
    """JD's final accuracy is above the fixed linear network's, same budget."""
    runs, linear = _jd_runs(result), _reference_runs(result, "linear")
    if not runs or not linear:
        return claims.untestable("JD at p = 0.5 and the fixed linear network are not both in this run")
    ours, theirs = _final(runs), _final(linear)
    return claims.verdict(ours > theirs, f"training accuracy after {runs[0].iterations} iterations: JD "
                          f"{short(ours)}, linear (fixed) {short(theirs)}")


def check_alpha_near_zero(result, by: int = 500) -> claims.Verdict:
    """alpha is at most ``ALPHA_NEAR_ZERO`` at iteration ``by`` (mean over seeds)."""
    runs = _jd_runs(result)
    if not runs:
        return claims.untestable(f"JD not run at p = {CLAIM_P:g}")
    if runs[0].iterations < by:
        return claims.untestable(f"the run has {runs[0].iterations} iterations, fewer than {by}")
    at = _mean(at_iteration(h, "alpha", by) for h in runs)
    first = [first_iteration(h, "alpha", ALPHA_NEAR_ZERO) for h in runs]
    reached = [f for f in first if not math.isnan(f)]
    return claims.verdict(at <= ALPHA_NEAR_ZERO, f"JD p={CLAIM_P:g}: alpha at iteration {by} {short(at)} (from 1; "
                          f"holds at <= {ALPHA_NEAR_ZERO:g}); first <= {ALPHA_NEAR_ZERO:g} in {len(reached)} of "
                          f"{len(runs)} runs" + (f" (at {min(reached):.0f})" if reached else "")
                          + f"; final {short(_final(runs, 'alpha'))}")


def check_eta_shrinks(result) -> claims.Verdict:
    """eta's mean over the last third of the run is at most ``ETA_DROP`` times its mean over
    the middle third (means over seeds)."""
    runs = _jd_runs(result)
    if not runs:
        return claims.untestable(f"JD not run at p = {CLAIM_P:g}")
    thirds = [_mean(window_mean(h, "eta", k / 3, (k + 1) / 3) for h in runs) for k in range(3)]
    return claims.verdict(thirds[2] <= ETA_DROP * thirds[1],
                          f"JD p={CLAIM_P:g}: eta starts {short(float(runs[0].frame['eta'].iloc[0]))}, mean over the "
                          f"first / middle / last third {' / '.join(short(t) for t in thirds)}; holds if last <= "
                          f"{ETA_DROP:g} x middle")


CLAIMS = [
    claims.Claim(
        id="jd-mnist-96-percent", notebook=NOTEBOOK,
        says="JD ends up with a competitive accuracy of 96% after only one training run.",
        source="JD paper, section 4.2, Figure 3",
        check=check_accuracy),
    claims.Claim(
        id="jd-matches-relu", notebook=NOTEBOOK,
        says="JD's accuracy matches that of a ReLU network.",
        source="JD paper, section 4.2, Figure 3",
        check=check_matches_relu),
    claims.Claim(
        id="alpha-near-zero-by-500", notebook=NOTEBOOK,
        says="After simply 500 iterations of combined training and tuning, the network learns to set the ReLU "
             "slope to be close to 0.",
        source="JD paper, section 4.2, Figure 3",
        check=check_alpha_near_zero),
    claims.Claim(
        id="jd-beats-linear", notebook=NOTEBOOK,
        says="Starting from a linear activation (slope 1), JD outperforms the linear model.",
        source="JD paper, section 4.2, Figure 3",
        check=check_beats_linear),
    claims.Claim(
        id="eta-shrinks-near-convergence", notebook=NOTEBOOK,
        says="JD learns to reduce the learning rate upon convergence.",
        source="JD paper, section 4.2 (full plots in its supplement)",
        check=check_eta_shrinks),
]
