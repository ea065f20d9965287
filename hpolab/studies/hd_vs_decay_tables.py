"""Studies 06 and 07's tables for the notebooks, and the runs their figures draw: the tuning
grid of one task, study 06's comparison of the tuned configurations, the runs of the compared
configurations (labelled for the figures) and study 07's best configuration per curve. They
only read a finished result (:mod:`hpolab.studies.hd_vs_decay` runs the studies).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pandas as pd

from hpolab.history import History
from hpolab.studies.hd_vs_decay_scores import TunedResult, best_rows


def grid_table(tuning: pd.DataFrame, task: str, column: str = "best train") -> pd.DataFrame:
    """The tuning grid of one task as a table: a row per method (and beta), a column per
    alpha_0, cells ``column`` (NaN: a run diverged); the chosen cell marked with ``*`` in
    the ``chosen`` column."""
    table = tuning[tuning["task"] == task].copy()
    table["row"] = [m if s != "hd" else f"{m} beta={b:g}" for m, s, b in zip(table["method"], table["schedule"], table["beta"])]
    pivot = table.pivot_table(index="row", columns="alpha_0", values=column, sort=False, dropna=False)
    pivot = pivot[sorted(pivot.columns)]
    pivot.columns = [f"{c:g}" for c in pivot.columns]
    winners = table[table["chosen"]].set_index("row")
    pivot.insert(0, "chosen alpha_0", [f"{winners.loc[r, 'alpha_0']:g}" if r in winners.index else "" for r in pivot.index])
    return pivot.reset_index().rename(columns={"row": "method"})


COMPARED = ["task", "method", "role", "alpha_0", "beta", "train", "train ±95%", "test", "test ±95%", "test acc",
            "runs", "diverged"]


def comparison_table(result: TunedResult) -> pd.DataFrame:
    """Study 06's comparison, the columns a reader needs: per task and method the chosen
    (``tuned``) configuration and Baydin et al.'s (``suggested``), final training and test
    loss (mean, 95 % half-width over seeds), final test accuracy, runs and diverged runs."""
    order = {name: i for i, name in enumerate(["tuned", "suggested"])}
    table = result.summary.sort_values(["task", "role"], key=lambda c: c.map(order) if c.name == "role" else
                                       c.map({t: i for i, t in enumerate(dict.fromkeys(result.summary["task"]))}),
                                       kind="stable")
    return table[COMPARED].reset_index(drop=True)


def figure_runs(result: TunedResult, task: str, schedules: Sequence[str] = ("hd", "decay"),
                roles: Sequence[str] = ("tuned",)) -> list[History]:
    """The runs of the compared configurations of ``task`` (the first ``seeds`` seeds), each
    labelled by method, role and setting (``SGD-HD tuned (alpha_0 0.1, beta 0.0001)``)."""
    wanted: dict[tuple, list[str]] = {}
    for r in result.summary.itertuples():
        if r.task == task and r.role in roles and r.schedule in schedules:
            key = (r.optimizer, r.schedule, float(r.alpha_0), 0.0 if r.schedule != "hd" else float(r.beta))
            wanted.setdefault(key, []).append(r.role)
    runs = []
    for role in roles:
        for h in result.histories:
            c = h.config
            key = (c["optimizer"], c["schedule"], float(c["lr0"]), float(c["hypergrad_lr"]))
            if h.problem == task and role in wanted.get(key, []) and h.seed < result.parameters["seeds"]:
                beta = f", beta {c['hypergrad_lr']:g}" if c["schedule"] == "hd" else ""
                runs.append(dataclasses.replace(h, label=f"{h.label} {role} (alpha_0 {c['lr0']:g}{beta})"))
    return runs


def best_configurations(frame: pd.DataFrame, loss: str = "train") -> pd.DataFrame:
    """Per task, optimizer and curve of a sensitivity table: the best alpha_0, its loss, and
    how many grid points the curve has and how many diverged."""
    keys = ["task", "optimizer", "curve"]
    best = frame.loc[best_rows(frame, keys, loss)]
    counts = frame.groupby(keys, sort=False).agg(points=("lr0", "size"), diverged=("diverged", lambda d: int((d > 0).sum())))
    return best[[*keys, "lr0", loss, f"{loss} ±95%"]].rename(columns={"lr0": "best alpha_0"}).join(counts, on=keys)
