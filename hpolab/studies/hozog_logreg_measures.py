"""Study 03's measures on finished runs: the paper's |grad f(lambda)|^2 (Eq. 3) added to every
history, HOAG's objective put on the others' scale, and the per data set and method summary.
They run after the methods (their trainings are charged to none) and are apart from the run
(:mod:`hpolab.studies.hozog_logreg`) because they only read and annotate its histories.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from hpolab.history import History
from hpolab.hypergrad.zeroth_order import draw_directions, validation_losses
from hpolab.recorder import running_best
from hpolab.smoothing import smoothed_gradient
from hpolab.studies.hozog import with_suboptimality
from hpolab.studies.hozog_logreg_setting import GRADIENT_NORM_POINTS, HOAG_POINTS, LAMBDA_RANGE




def add_paper_measures(histories: Sequence[History], task, hyper, q: int, mu: float,
                       points: int = GRADIENT_NORM_POINTS, hoag_points: int = HOAG_POINTS, seed: int = 0) -> None:
    """The paper's |grad f(lambda)|^2 as the column ``grad_norm2`` of every history, and HOAG's
    objective on the others' scale (in place).

    "The hyper-gradients for all methods except for FOR and REV are computed by Eq. (3)"
    (section 3): FOR and REV record their exact hypergradient, HOZOG its own Eq. 3 estimate;
    for HOAG and the black-box methods Eq. 3 (this q and mu, training seed ``seed``) is computed
    here, at ``points`` of their rows (``hoag_points`` for HOAG) evenly spread over the run, at
    the trial's lambda or the lambda HOAG's iteration solved at, in one batched training not
    charged to any method. Between those rows the column holds the last value;
    ``grad_norm2_estimated`` marks the computed rows.

    HOAG's own values are validation losses at its L-BFGS solutions, stopped early at loose
    tolerances: another function of lambda than the T Adam steps every other method is judged
    by (on a9a it lies below anything Adam reaches). So that suboptimality compares one f, HOAG's
    ``objective`` becomes f(lambda) under the others' solver at those rows (the first training of
    each Eq. 3 estimate), held between them; its own values move to ``lbfgs_objective``.
    """
    generator = torch.Generator().manual_seed(seed)
    column = hyper.learn[0]
    for history in histories:
        frame = history.frame
        method = history.config.get("method", "")
        if method in ("hozog", "forward", "reverse"):
            frame["grad_norm2"] = frame.get("hypergradient_norm2", math.nan)
            continue
        hoag_run = method == "implicit"
        lam = frame[column]  # each row's lambda: the one its training (or HOAG's solve) ran at
        rows = [i for i in range(1, len(frame)) if not math.isnan(float(lam.iloc[i]))]
        count = min(hoag_points if hoag_run else points, len(rows))
        chosen = sorted({rows[int(k)] for k in np.linspace(0, len(rows) - 1, count)}) if rows else []
        values, objective = np.full(len(frame), math.nan), np.full(len(frame), math.nan)
        if chosen:
            lambdas = torch.tensor([float(lam.iloc[i]) for i in chosen], dtype=torch.float64)
            losses, norms = _eq3(task, hyper, lambdas, q, mu, generator, seed)
            values[chosen], objective[chosen] = norms, losses
        frame["grad_norm2"] = pd.Series(values, index=frame.index).ffill()
        frame["grad_norm2_estimated"] = ~np.isnan(values)
        if hoag_run:
            frame["lbfgs_objective"] = frame["objective"]
            objective[0] = float(frame["objective"].iloc[0])
            frame["objective"] = pd.Series(objective, index=frame.index).ffill()
            frame["best_objective"] = running_best(frame["objective"])


def _eq3(task, hyper, lambdas: torch.Tensor, q: int, mu: float, generator: torch.Generator,
         seed: int) -> tuple[np.ndarray, np.ndarray]:
    """At each lambda: f(lambda) and |Eq. 3|^2 from q directions, all (q + 1) * n trainings in one batch."""
    directions = [draw_directions(generator, q, 1, "gaussian")[0] for _ in lambdas]
    points = torch.cat([torch.cat([lam.reshape(1, 1), lam + mu * u]) for lam, u in zip(lambdas, directions)])
    losses = validation_losses(task, hyper, points.clamp(*LAMBDA_RANGE), seed).losses.reshape(len(lambdas), q + 1)
    norms = [float((smoothed_gradient(block[0], block[1:], u, mu) ** 2).sum()) for block, u in zip(losses, directions)]
    return losses[:, 0].numpy(), np.array(norms)


def summarize_logreg(histories: Sequence[History]) -> pd.DataFrame:
    """Per data set and method: best validation loss, its lambda and test loss / error, the
    suboptimality at the end (against the best any method found), steps, seconds per step and
    the trials whose training diverged. Training steps are left out: HOAG's L-BFGS evaluation
    count depends on the last bits of floating point (it varies between CPUs)."""
    with_suboptimality(histories)
    rows = []
    for h in histories:
        frame = h.frame.iloc[1:] if len(h.frame) > 1 else h.frame
        best = frame.loc[frame["objective"].idxmin()] if frame["objective"].notna().any() else frame.iloc[-1]
        rows.append({
            "dataset": h.problem, "method": h.label, "best val loss": float(best["objective"]),
            "lambda": float(best["log_l2"]), "test loss": float(best.get("test_loss", math.nan)),
            "test error": float(best.get("test_error", math.nan)),
            "suboptimality": float(h.frame["suboptimality"].iloc[-1]), "steps": len(h.frame) - 1,
            "diverged": int((h.frame["kind"] == "diverged trial").sum()),
        })
    return pd.DataFrame(rows)
