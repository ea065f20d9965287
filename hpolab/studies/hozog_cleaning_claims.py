"""Study 05's claims: the HOZOG paper's sentences on data hyper-cleaning (section 3.3,
Figure 3) as checks on a study result (:data:`CLAIMS`, read by :mod:`hpolab.claims` through
:mod:`hpolab.studies.hozog_cleaning`). Apart from the run because they only read its
histories; at ``smoke`` scale the timed ones answer a fixed line (nbval compares the outputs).
"""

from __future__ import annotations

from hpolab import claims
from hpolab.history import History
from hpolab.studies.hozog import LABELS, seconds_per_step, untimed

EARLY_FRACTION = 0.1  # "the early stage" of the REV comparison: the first 10 % of the wall time


def _by_size(result) -> dict[str, dict[str, History]]:
    sizes: dict[str, dict[str, History]] = {}
    for h in result.histories:
        sizes.setdefault(h.problem, {})[h.label] = h
    return sizes


def _best_at(history: History, seconds: float) -> float:
    """The running best validation loss at wall time ``seconds`` (the start's value before any step)."""
    frame = history.frame
    seen = frame[frame["wall_time"] <= seconds]
    return float((seen if len(seen) else frame.iloc[:1])["best_objective"].iloc[-1])


def _compare(result, rival: str, better) -> claims.Verdict:
    """``better(hozog, rival) -> bool`` at every size run with both methods."""
    found, parts = [], []
    for size, runs in _by_size(result).items():
        if "HOZOG" in runs and rival in runs:
            hozog, other = runs["HOZOG"], runs[rival]
            found.append(bool(better(hozog, other)))
            parts.append(f"{size}: best val loss HOZOG {hozog.best_objective:.3g}, {rival} {other.best_objective:.3g}")
    if not found:
        return claims.untestable(f"HOZOG and {rival} were not both run")
    return claims.verdict(all(found), "; ".join(parts) + " (same wall time)")


def check_beats_random_search(result) -> claims.Verdict:
    return _compare(result, "RS", lambda hozog, other: hozog.best_objective < other.best_objective)


def check_beats_bohb(result) -> claims.Verdict:
    return _compare(result, LABELS["bohb"], lambda hozog, other: hozog.best_objective < other.best_objective)


def check_reverse_better_in_the_long_run(result) -> claims.Verdict:
    return _compare(result, "REV", lambda hozog, other: other.best_objective < hozog.best_objective)


def check_hozog_faster_early(result) -> claims.Verdict:
    found, parts = [], []
    for size, runs in _by_size(result).items():
        if "HOZOG" in runs and "REV" in runs:
            hozog, rev = runs["HOZOG"], runs["REV"]
            early = EARLY_FRACTION * min(float(hozog.frame["wall_time"].iloc[-1]), float(rev.frame["wall_time"].iloc[-1]))
            a, b = _best_at(hozog, early), _best_at(rev, early)
            start = float(hozog.frame["objective"].iloc[0])
            if a == b == start:
                parts.append(f"{size}: neither method finished a step in the first {early:.3g} s")
                continue
            found.append(a < b)
            parts.append(f"{size}: best val loss at {early:.3g} s HOZOG {a:.3g}, REV {b:.3g}")
    if not found:
        return untimed(result, claims.untestable("; ".join(parts) or "HOZOG and REV were not both run"))
    return untimed(result, claims.verdict(all(found), "; ".join(parts)))


def check_reverse_costlier_per_hypergradient(result) -> claims.Verdict:
    runs = _by_size(result)
    both = [size for size, r in runs.items() if "HOZOG" in r and "REV" in r and len(r["HOZOG"].frame) > 1
            and len(r["REV"].frame) > 1]
    if not both:
        return claims.untestable("HOZOG and REV did not both take a step")
    size = max(both, key=lambda s: int(s.split()[0]))
    rev, hozog = seconds_per_step(runs[size]["REV"]), seconds_per_step(runs[size]["HOZOG"])
    return untimed(result, claims.verdict(rev > hozog, f"{size}: {rev:.3g} s per hypergradient for REV, "
                                                        f"{hozog:.3g} s for HOZOG (ratio {rev / hozog:.3g}; "
                                                        f"paper 40 / 24 = 1.67)"))


SOURCE = "HOZOG, section 3.3, Figure 3"
NOTEBOOK = "05_hozog_hypercleaning"
CLAIMS = [
    claims.Claim("cleaning-hozog-beats-random-search", NOTEBOOK,
                 "HOZOG can beat RS easily (lower validation loss for the same wall time).", SOURCE,
                 check_beats_random_search),
    claims.Claim("cleaning-hozog-beats-bohb", NOTEBOOK,
                 "HOZOG can beat BOHB easily (lower validation loss for the same wall time).", SOURCE,
                 check_beats_bohb),
    claims.Claim("cleaning-rev-better-in-the-long-run", NOTEBOOK,
                 "HOZOG does not perform completely as good as REV in the long run (REV ends lower).", SOURCE,
                 check_reverse_better_in_the_long_run),
    claims.Claim("cleaning-hozog-faster-than-rev-early", NOTEBOOK,
                 "Our method converges faster than REV in the early stage of training (here: lower "
                 "best validation loss after the first 10 % of the wall time).", SOURCE,
                 check_hozog_faster_early),
    claims.Claim("cleaning-rev-costlier-per-hypergradient", NOTEBOOK,
                 "REV takes about 40 seconds to compute one hypergradient with 1250 hyperparameters, "
                 "HOZOG about 24 seconds (here: at the largest size run).", SOURCE,
                 check_reverse_costlier_per_hypergradient),
]
