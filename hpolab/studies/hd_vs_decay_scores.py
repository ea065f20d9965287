"""Studies 06 and 07's scores and summaries: one run's numbers, their mean and 95 % interval
over seeds, the tuning table and the choice of the best configuration (study 06's
selection), the comparison of the chosen ones (:class:`TunedResult`) and study 07's
sensitivity table. Apart from the run (:mod:`hpolab.studies.hd_vs_decay`), which builds these
from its histories, and from the tables the notebooks show.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import pandas as pd

from hpolab.history import History
from hpolab.studies.common import StudyResult
from hpolab.studies.hd_vs_decay_setting import NAMES, Setting
from hpolab.tables import mean_interval


def run_scores(h: History) -> dict:
    """One run's numbers: the minimal training and test loss reached (section 4's measure),
    the loss at the end, the final test accuracy and rate; NaN for a run that diverged."""
    if h.status == "diverged":
        return dict.fromkeys(["best train", "best test", "train", "test", "test acc", "final lr"], math.nan)
    frame, last = h.frame, h.frame.iloc[-1]
    return {"best train": float(frame["objective"].min()), "best test": float(frame["test_loss"].min()),
            "train": float(last["objective"]), "test": float(last["test_loss"]),
            "test acc": float(last["test_accuracy"]), "final lr": float(last["lr"])}


def aggregate(runs: Sequence[History]) -> dict:
    """Mean and 95 % half-width over seeds of each of :func:`run_scores`; a configuration with a
    diverged run gets NaN (it is not a candidate)."""
    scores = pd.DataFrame([run_scores(h) for h in runs])
    out = {}
    for column in scores.columns:
        mean, half = mean_interval(scores[column]) if scores[column].notna().all() else (math.nan, math.nan)
        out[column], out[f"{column} ±95%"] = mean, half
    out["runs"], out["diverged"] = len(runs), sum(h.status == "diverged" for h in runs)
    return out


def best_rows(frame: pd.DataFrame, keys: list[str], column: str) -> list:
    """The index of the lowest ``column`` in each group of ``keys`` (groups where every value
    is NaN, all runs diverged, have none)."""
    finite = frame[frame[column].notna()]
    return list(finite.groupby(keys, sort=False)[column].idxmin()) if len(finite) else []


def tuning_table(settings: Sequence[Setting], runs: dict[Setting, list[History]]) -> pd.DataFrame:
    """One row per grid configuration: its score (``best train``: the minimal training loss,
    mean over seeds) and the other numbers, and ``chosen`` on the lowest score of each task,
    optimizer and schedule."""
    rows = []
    for s in settings:
        stats_ = aggregate(runs[s])
        rows.append({"task": s.task, "method": s.label, "optimizer": s.optimizer, "schedule": s.schedule,
                     "alpha_0": s.lr, "beta": s.hypergrad_lr if s.schedule == "hd" else math.nan,
                     "best train": stats_["best train"], "best test": stats_["best test"], "test": stats_["test"],
                     "runs": stats_["runs"], "diverged": stats_["diverged"]})
    table = pd.DataFrame(rows)
    table["chosen"] = False
    if len(table):
        table.loc[best_rows(table, ["task", "optimizer", "schedule"], "best train"), "chosen"] = True
    return table


def chosen_settings(tuning: pd.DataFrame) -> list[Setting]:
    rows = tuning[tuning["chosen"]]
    return [Setting(r.task, r.optimizer, r.schedule, r.alpha_0, 0.0 if r.schedule != "hd" else r.beta)
            for r in rows.itertuples()]


def compare(settings: Sequence[tuple[str, Setting]], runs: dict[Setting, list[History]]) -> pd.DataFrame:
    """Study 06's table: per (role, setting) the numbers of :func:`aggregate` over the seeds."""
    rows = []
    for role, s in settings:
        rows.append({"task": s.task, "method": s.label, "role": role, "optimizer": s.optimizer, "schedule": s.schedule,
                     "alpha_0": s.lr, "beta": s.hypergrad_lr if s.schedule == "hd" else math.nan,
                     **aggregate(runs[s])})
    return pd.DataFrame(rows)


@dataclass
class TunedResult(StudyResult):
    """Study 06's result: the histories of every run, the comparison of the chosen
    configurations (``summary``) and every grid configuration's score (``tuning``)."""

    tuning: pd.DataFrame = field(default_factory=pd.DataFrame)
    tables: ClassVar[dict[str, str]] = {"tuning": "tuning"}


# ---------------------------------------------------------------------------------------------
# Study 07: sensitivity


def curve_name(schedule: str, beta: float) -> str:
    return {"constant": "constant", "decay": "lr-decay"}.get(schedule, f"HD beta={beta:g}")


def sensitivity(settings: Sequence[Setting], runs: dict[Setting, list[History]]) -> pd.DataFrame:
    """Per task, optimizer, curve (constant, lr-decay, HD per beta) and alpha_0: the minimal
    training and test loss reached, mean and 95 % half-width over seeds (NaN where a run
    diverged), and alpha_0 relative to the curve's best alpha_0 (train and test each)."""
    rows = []
    for s in settings:
        stats_ = aggregate(runs[s])
        rows.append({"task": s.task, "optimizer": NAMES[s.optimizer], "curve": curve_name(s.schedule, s.hypergrad_lr),
                     "schedule": s.schedule, "beta": s.hypergrad_lr if s.schedule == "hd" else math.nan,
                     "lr0": s.lr, "train": stats_["best train"], "train ±95%": stats_["best train ±95%"],
                     "test": stats_["best test"], "test ±95%": stats_["best test ±95%"],
                     "runs": stats_["runs"], "diverged": stats_["diverged"]})
    frame = pd.DataFrame(rows)
    keys = ["task", "optimizer", "curve"]
    for loss in ("train", "test"):
        best = frame.loc[best_rows(frame, keys, loss)].set_index(keys)["lr0"]
        frame[f"{loss} lr / best lr"] = [row.lr0 / best.get((row.task, row.optimizer, row.curve), math.nan)
                                         for row in frame.itertuples()]
    return frame
