"""Study 12's claims (Self-Tuning Networks, as the notes summarize them): checks over a
:class:`~hpolab.studies.stn.STNResult`."""

from __future__ import annotations


import numpy as np
import pandas as pd

from hpolab import claims
from hpolab.tables import short
from hpolab.studies.stn_network import REPLAY, is_fixed, per_seed
from hpolab.studies.stn_ridge import ridge_validation_curve



# --- the claims ---------------------------------------------------------------------------------

LOCAL_TOLERANCE = 0.1  # "tracks": the fitted response within 10 % of w* over c +- sigma
OPTIMUM_TOLERANCE = 0.01  # "finds the optimum": exact validation loss within 1 % of its minimum
COMPARABLE = 0.05  # "comparable": mean final validation loss within 5 % of the best fixed setting's


def _second_half(result) -> pd.DataFrame | None:
    ridge = getattr(result, "ridge", None)
    if ridge is None or "local_error" not in ridge.history.frame:
        return None
    frame = ridge.history.frame
    return frame.iloc[len(frame) // 2:]


def check_response_tracks(result) -> claims.Verdict:
    """Ridge: over the second half of the run, the median error of the fitted response around the
    current log lambda is within :data:`LOCAL_TOLERANCE` and below the constant response's."""
    late = _second_half(result)
    if late is None:
        return claims.untestable("needs the ridge run")
    fitted, constant = float(late["local_error"].median()), float(late["constant_error"].median())
    sigma = result.ridge.history.config["sigma"]
    return claims.verdict(fitted <= LOCAL_TOLERANCE and fitted < constant,
                          f"ridge, second half of the run, median relative error of the response over c +- {short(sigma)}:"
                          f" fitted line {short(fitted)}, constant w0 {short(constant)}; W1 against dw*/dlog lambda "
                          f"{short(late['jacobian_error'].median())} (tolerance {LOCAL_TOLERANCE:.0%})")


def check_finds_optimum(result) -> claims.Verdict:
    """Ridge: the exact validation loss at STN's final log lambda is within
    :data:`OPTIMUM_TOLERANCE` of its minimum."""
    ridge = getattr(result, "ridge", None)
    if ridge is None:
        return claims.untestable("needs the ridge run")
    frame = ridge.history.frame
    final = float(frame["log_lambda"].iloc[-1])
    reached, best = ridge_validation_curve(ridge.data, [final, ridge.optimum])
    start = float(frame["log_lambda"].iloc[0])
    return claims.verdict(reached <= (1 + OPTIMUM_TOLERANCE) * best,
                          f"ridge: log lambda {short(start)} -> {short(final)} (exact optimum {short(ridge.optimum)}); "
                          f"exact validation loss there {short(reached)} vs {short(best)} at the optimum "
                          f"(tolerance {OPTIMUM_TOLERANCE:.0%})")


def _mlp(result) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series] | None:
    """(summary rows of the MLP, the grid's rows, STN's row) or None if a part is missing."""
    mlp = result.summary[result.summary["task"] == "mnist-mlp"]
    grid = mlp[mlp["method"].map(is_fixed)]
    if grid.empty or not (mlp["method"] == "STN").any():
        return None
    return mlp, grid, mlp[mlp["method"] == "STN"].iloc[0]


def check_comparable(result) -> claims.Verdict:
    """MLP: STN's mean final validation loss is at most (1 + :data:`COMPARABLE`) x the best
    fixed setting's."""
    parts = _mlp(result)
    if parts is None:
        return claims.untestable("needs STN and the fixed grid on the MLP")
    _, grid, stn = parts
    best = grid.loc[grid["val loss"].idxmin()]
    rank = int((grid["val loss"] < stn["val loss"]).sum()) + 1
    return claims.verdict(stn["val loss"] <= (1 + COMPARABLE) * best["val loss"],
                          f"MNIST MLP, final validation loss (mean over {int(stn['runs'])} seeds): STN "
                          f"{short(stn['val loss'])} ± {short(stn['val ±95%'])}, best of {len(grid)} fixed "
                          f"({best['method']}) {short(best['val loss'])} ± {short(best['val ±95%'])}; STN ranks {rank} "
                          f"of {len(grid) + 1} (comparable: within {COMPARABLE:.0%})")


def check_replay(result) -> claims.Verdict:
    """MLP: the plain network trained from scratch with STN's schedule ends with a lower mean
    validation loss than the best fixed setting."""
    parts = _mlp(result)
    mlp = result.summary[result.summary["task"] == "mnist-mlp"]
    if parts is None or not (mlp["method"] == REPLAY).any():
        return claims.untestable("needs STN's schedule replayed and the fixed grid on the MLP")
    _, grid, _ = parts
    replay = mlp[mlp["method"] == REPLAY].iloc[0]
    best = grid.loc[grid["val loss"].idxmin()]
    seeds = per_seed(result)
    wins = int((seeds["replayed"] < seeds["best fixed"]).sum())
    return claims.verdict(replay["val loss"] < best["val loss"],
                          f"MNIST MLP from scratch, final validation loss: STN's schedule {short(replay['val loss'])} ± "
                          f"{short(replay['val ±95%'])}, best fixed ({best['method']}) {short(best['val loss'])} ± "
                          f"{short(best['val ±95%'])}; lower than the seed's best fixed in {wins} of {len(seeds)} seeds")


def check_schedule_moves(result) -> claims.Verdict:
    """MLP: in every STN run some hyperparameter moved, in its unconstrained form, farther than
    the perturbation scale sigma from where it started (a schedule, not a constant)."""
    runs = [h for h in result.histories if h.problem == "mnist-mlp" and h.method == "stn"]
    if not runs or any(not len(getattr(h, "schedule", ())) for h in runs):
        return claims.untestable("needs STN runs on the MLP with their schedules")
    spans = []
    for h in runs:
        lam = np.column_stack([np.log(h.schedule["weight_decay"]),
                               np.log(h.schedule["dropout"] / (1 - h.schedule["dropout"]))])
        spans.append(np.abs(lam - lam[0]).max(axis=0))
    sigma = float(runs[0].config["sigma"])
    moved = [bool((span > sigma).any()) for span in spans]
    return claims.verdict(all(moved), "largest move from the start (log weight decay, logit dropout) per seed: "
                          + "; ".join(f"seed {h.seed}: ({short(a)}, {short(b)})" for h, (a, b) in zip(runs, spans))
                          + f" (sigma = {short(sigma)})")


def check_cost(result) -> claims.Verdict:
    """MLP: one STN run costs fewer plain-network passes than the grid of fixed settings it is
    compared with (passes rather than seconds: the same on every machine)."""
    parts = _mlp(result)
    if parts is None:
        return claims.untestable("needs STN and the fixed grid on the MLP")
    _, grid, stn = parts
    grid_passes = float(grid["passes"].sum())
    return claims.verdict(stn["passes"] < grid_passes,
                          f"per seed, in passes of the plain network over a batch: STN {short(stn['passes'])} "
                          f"({int(stn['train steps'])} training + {int(stn['val steps'])} tuning steps of the "
                          f"two-product response), the grid of {len(grid)} runs {short(grid_passes)}: STN costs "
                          f"{short(stn['passes'] / (grid_passes / len(grid)))} fixed runs")


NOTEBOOK = "12_stn_best_response"
SOURCE = "Self-Tuning Networks (MacKay et al., ICLR 2019), as summarized in the notes"
CLAIMS = [
    claims.Claim(
        "linear-response-tracks-ridge", NOTEBOOK,
        "The best response of a linear regression is a simple function of the weight decay; a function linear "
        "in the hyperparameter, fitted during training, approximates it near the current hyperparameter",
        SOURCE + "; PAPERS.md: show it where the best response is known (ridge regression)",
        check_response_tracks),
    claims.Claim(
        "hypergradient-through-response-finds-ridge-optimum", NOTEBOOK,
        "Gradient descent in hyperparameter space through the fitted best response finds a good hyperparameter "
        "(here the exact optimum of ridge's validation loss)",
        SOURCE, check_finds_optimum),
    claims.Claim(
        "stn-yields-a-schedule", NOTEBOOK,
        "Gradient descent in hyperparameter space through the fitted response gives a non-constant "
        "hyperparameter schedule",
        SOURCE, check_schedule_moves),
    claims.Claim(
        "stn-matches-best-fixed", NOTEBOOK,
        "STN's tuned weight decay and dropout reach a validation loss comparable to the best of a grid of fixed "
        "settings, in one training run",
        SOURCE + " (MNIST MLP stand-in)", check_comparable),
    claims.Claim(
        "stn-costs-less-than-the-grid", NOTEBOOK,
        "The best response is cheap: instead of running the optimization for each hyperparameter setting, one "
        "training run tunes them",
        SOURCE, check_cost),
    claims.Claim(
        "stn-schedule-beats-best-fixed-from-scratch", NOTEBOOK,
        "The schedules transferred between optimization tasks, outperforming manually tuned constant schedules "
        "(a network trained from scratch with STN's schedule beats the best fixed setting)",
        SOURCE + "; the authors' README: train from scratch following the STN schedule (Table 1)",
        check_replay),
]
