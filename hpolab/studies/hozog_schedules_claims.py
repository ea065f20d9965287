"""Study 04's claims: the HOZOG paper's sentences on learning-rate schedules (section 3.2,
Figure 2) as checks on a study result (:data:`CLAIMS`, read by :mod:`hpolab.claims` through
:mod:`hpolab.studies.hozog_schedules`). Apart from the run because they only read its
histories; at ``smoke`` scale the timed ones answer a fixed line (nbval compares the outputs).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hpolab import claims
from hpolab.history import History
from hpolab.studies.hozog import LABELS, untimed
from hpolab.studies.hozog_schedules_setting import BASELINES


def _by_network(result) -> dict[str, dict[str, History]]:
    networks: dict[str, dict[str, History]] = {}
    for h in result.histories:
        networks.setdefault(h.problem, {})[h.config.get("method", h.label)] = h
    return networks


def _test_error(history: History) -> float:
    frame = history.frame
    return float(frame.loc[frame["objective"].idxmin(), "test_error"])


def _beats(result, baseline: str) -> claims.Verdict:
    found, parts = [], []
    for network, runs in _by_network(result).items():
        if "hozog" in runs and baseline in runs:
            found.append(runs["hozog"].best_objective < runs[baseline].best_objective)
            parts.append(f"{network}: best val loss HOZOG {runs['hozog'].best_objective:.3g}, "
                         f"{LABELS[baseline]} {runs[baseline].best_objective:.3g}")
    if not found:
        return claims.untestable(f"HOZOG and {LABELS[baseline]} were not both run")
    return claims.verdict(all(found), "; ".join(parts) + " (same wall time)")


def check_beats_random_search(result) -> claims.Verdict:
    return _beats(result, "random-search")


def check_beats_gp_bo(result) -> claims.Verdict:
    return _beats(result, "bayesian")


def check_beats_bohb(result) -> claims.Verdict:
    return _beats(result, "bohb")


def check_lowest_test_error(result) -> claims.Verdict:
    found, parts = [], []
    for network, runs in _by_network(result).items():
        rivals = {name: _test_error(runs[name]) for name in BASELINES if name in runs}
        if "hozog" in runs and rivals:
            found.append(_test_error(runs["hozog"]) < min(rivals.values()))
            parts.append(f"{network}: test error HOZOG {_test_error(runs['hozog']):.3g}, " + ", ".join(
                f"{LABELS[name]} {value:.3g}" for name, value in rivals.items()))
    if not found:
        return claims.untestable("HOZOG and a baseline were not both run")
    return claims.verdict(all(found), "; ".join(parts) + " (at each method's best validation loss)")


def _reached(history: History, target: float) -> float:
    """Wall time at which the history's running best first fell to ``target`` (NaN if never)."""
    frame = history.frame
    hit = frame.loc[frame["best_objective"] <= target, "wall_time"]
    return float(hit.iloc[0]) if len(hit) else math.nan


def check_less_time_to_best(result) -> claims.Verdict:
    """HOZOG reaches the best value any baseline ends with sooner than that baseline found it."""
    found, parts = [], []
    for network, runs in _by_network(result).items():
        rivals = [name for name in BASELINES if name in runs]
        if "hozog" in runs and rivals:
            leader = min(rivals, key=lambda name: runs[name].best_objective)
            target = runs[leader].best_objective
            hozog, theirs = _reached(runs["hozog"], target), _reached(runs[leader], target)
            found.append(hozog < theirs)
            parts.append(f"{network}: to reach {LABELS[leader]}'s best {target:.3g}, HOZOG "
                         + (f"{hozog:.3g} s" if hozog == hozog else "never") + f", {LABELS[leader]} {theirs:.3g} s")
    if not found:
        return claims.untestable("HOZOG and a baseline were not both run")
    return untimed(result, claims.verdict(all(found), "; ".join(parts)))


def _spread(history: History) -> float:
    """Standard deviation of log10 |grad f|^2 along the run (NaN with fewer than two values)."""
    values = history.frame.get("hypergradient_norm2", pd.Series(dtype=float)).iloc[1:]
    values = values[np.isfinite(values) & (values > 0)]
    return float(np.log10(values).std(ddof=1)) if len(values) >= 2 else math.nan


def check_smaller_gradient_variance(result) -> claims.Verdict:
    found, parts = [], []
    for network, runs in _by_network(result).items():
        rivals = {name: _spread(runs[name]) for name in BASELINES if name in runs}
        if "hozog" in runs and rivals:
            mine = _spread(runs["hozog"])
            found.append(all(mine < value for value in rivals.values()))
            parts.append(f"{network}: std of log10 |grad f|^2 HOZOG {mine:.3g}, " + ", ".join(
                f"{LABELS[name]} {value:.3g}" for name, value in rivals.items()))
    if not found:
        return claims.untestable("HOZOG and a baseline were not both run")
    return claims.verdict(all(found), "; ".join(parts))


def _time_fraction(history: History, tolerance: float) -> float:
    """Fraction of its wall time a run needed to come within ``tolerance`` of the best value
    any method found on its network (1 when never)."""
    frame = history.frame
    hit = frame.loc[frame["suboptimality"] <= tolerance, "wall_time"]
    total = float(frame["wall_time"].iloc[-1])
    return float(hit.iloc[0]) / total if len(hit) and total > 0 else 1.0


def check_deep_networks_slow_the_baselines(result, tolerance: float = 0.05) -> claims.Verdict:
    """On VGG-16 and ResNet-152 the baselines need a larger share of their time to come within
    ``tolerance`` of the best loss found than on the CNN, while HOZOG needs no larger a share."""
    runs = _by_network(result)
    if not {"cnn", "vgg16", "resnet152"} <= set(runs) or any("hozog" not in runs[n] for n in runs):
        return claims.untestable("needs the CNN, VGG-16 and ResNet-152 each run with HOZOG and baselines "
                                 f"(run: {', '.join(runs) or 'none'})")
    share = {network: {name: _time_fraction(h, tolerance) for name, h in methods.items()}
             for network, methods in runs.items()}

    def baselines(network):
        return float(np.mean([value for name, value in share[network].items() if name != "hozog"]))

    deep = ("vgg16", "resnet152")
    holds = all(baselines(n) > baselines("cnn") and share[n]["hozog"] <= share["cnn"]["hozog"] for n in deep)
    measured = "; ".join(f"{n}: share of the time to within {tolerance:g}: HOZOG {share[n]['hozog']:.3g}, "
                         f"baselines (mean) {baselines(n):.3g}" for n in ("cnn", *deep))
    return untimed(result, claims.verdict(holds, measured))


SOURCE = "HOZOG, section 3.2, Figure 2"
NOTEBOOK = "04_hozog_dnn_lr"
CLAIMS = [
    claims.Claim("schedules-hozog-beats-random-search", NOTEBOOK,
                 "The learning rates computed by HOZOG achieve the fastest descending speed compared to "
                 "baselines: here, a lower best validation loss than random search (RS) for the same wall time.",
                 SOURCE, check_beats_random_search),
    claims.Claim("schedules-hozog-beats-gp-bo", NOTEBOOK,
                 "... a lower best validation loss than GP-BO for the same wall time.", SOURCE, check_beats_gp_bo),
    claims.Claim("schedules-hozog-beats-bohb", NOTEBOOK,
                 "... a lower best validation loss than BOHB for the same wall time.", SOURCE, check_beats_bohb),
    claims.Claim("schedules-hozog-lowest-test-error", NOTEBOOK,
                 "The learning rates computed by HOZOG achieve the lowest test error compared to baselines on "
                 "all tasks.", SOURCE, check_lowest_test_error),
    claims.Claim("schedules-hozog-less-time-to-best", NOTEBOOK,
                 "The proposed method requires much less time to attain the best hyperparameters (here: HOZOG "
                 "reaches the best baseline's final value before that baseline does).", SOURCE,
                 check_less_time_to_best),
    claims.Claim("schedules-hozog-smaller-gradient-variance", NOTEBOOK,
                 "HOZOG tends to have smaller variances in gradients (|grad f|^2 from Eq. 3 along each run; "
                 "RS, BO and BOHB are unstable).", SOURCE, check_smaller_gradient_variance, scales=("paper",)),
    claims.Claim("schedules-deep-networks-slow-the-baselines", NOTEBOOK,
                 "For VGG-16 and ResNet-152 it takes baselines longer to find acceptable results, while HOZOG "
                 "still converges fast.", SOURCE, check_deep_networks_slow_the_baselines, scales=("paper",)),
]
