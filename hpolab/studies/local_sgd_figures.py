"""Study 13's figures: the training objective against local steps or communication rounds
(:func:`loss_figure`, over the per-seed step functions of :func:`curve_table`) and the
communication period of the growing schedules (:func:`period_figure`).

Kept apart from the study loop (:mod:`hpolab.studies.local_sgd`, which re-exports them for the
notebook) because they only read histories; the widget panel uses :data:`AXIS_TITLES` too.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hpolab.history import History
from hpolab.plots import PALETTE
from hpolab.studies.local_sgd_claims import measured


def curve_table(histories: Sequence[History], x: str = "step", y: str = "objective", points: int = 150,
                log_x: bool = False) -> pd.DataFrame:
    """Per label, y against x over seeds: each run read as a step function of x (its value
    at the last measurement at or before each grid point) on a common grid, linear from 0
    or (``log_x``) log-spaced from 1 to the largest x; geometric mean over the runs that
    have a value there, and the range. Columns: label, x, mean, low, high, runs."""
    rows = []
    groups: dict[str, list[History]] = {}
    for h in histories:
        groups.setdefault(h.label, []).append(h)
    for label, runs in groups.items():
        end = max(float(h.frame[x].iloc[-1]) for h in runs)
        grid = np.unique(np.geomspace(1, max(end, 1), points).round(3) if log_x else np.linspace(0, end, points))
        values = np.full((len(runs), grid.size), np.nan)
        for i, h in enumerate(runs):
            xs, ys = h.frame[x].to_numpy(float), h.frame[y].to_numpy(float)
            at = np.searchsorted(xs, grid, side="right") - 1
            inside = (at >= 0) & (grid <= xs[-1])
            values[i, inside] = ys[at[inside]]
        positive = np.where(values > 0, values, np.nan)
        with np.errstate(all="ignore"):
            counts = np.sum(~np.isnan(values), axis=0)
            mean = np.exp(np.nanmean(np.log(positive), axis=0)) if positive.size else positive
            low = np.nanmin(np.where(counts > 0, values, 0.0), axis=0)
            high = np.nanmax(np.where(counts > 0, values, 0.0), axis=0)
        keep = counts > 0
        rows += [(label, *v) for v in zip(grid[keep], mean[keep], low[keep], high[keep], counts[keep])]
    return pd.DataFrame(rows, columns=["label", "x", "mean", "low", "high", "runs"])


AXIS_TITLES = {"step": "local steps per worker (parallel steps)", "round": "communication rounds",
               "gradient_evaluations": "minibatch gradients, all workers"}


def loss_figure(histories: Sequence[History], x: str = "step", y: str | None = None, title: str | None = None,
                target: float | None = None) -> go.Figure:
    """y (default: f - f* for logistic regression, the loss for the MLP) against local steps
    or communication rounds (log axis), one line per period or schedule (geometric mean
    over seeds, band from the best to the worst run), the target as a dashed line."""
    y = y or measured(histories[0].problem)
    data = curve_table(histories, x, y, log_x=x == "round")
    figure = go.Figure()
    for i, (label, line) in enumerate(data.groupby("label", sort=False)):
        color = PALETTE[i % len(PALETTE)]
        if line["runs"].max() > 1:
            figure.add_trace(go.Scatter(x=np.concatenate([line["x"], line["x"][::-1]]),
                                        y=np.concatenate([line["high"], line["low"][::-1]]), fill="toself",
                                        fillcolor=color, opacity=0.15, line={"width": 0}, hoverinfo="skip",
                                        showlegend=False, legendgroup=label))
        figure.add_trace(go.Scatter(x=line["x"], y=line["mean"], name=label, mode="lines", line={"color": color},
                                    legendgroup=label))
    if target is not None and math.isfinite(target):
        figure.add_hline(y=target, line_dash="dash", line_color="gray")
        if target > 0:  # annotations on a log axis are placed in log10 units
            figure.add_annotation(x=0, xref="paper", y=math.log10(target), yref="y", text="target", showarrow=False,
                                  xanchor="left", yanchor="top")
    figure.update_layout(title=title, xaxis_title=AXIS_TITLES.get(x, x),
                         yaxis_title={"suboptimality": "f - f* (training objective)",
                                      "objective": "training loss"}.get(y, y.replace("_", " ")),
                         xaxis_type="log" if x == "round" else "linear", yaxis_type="log",
                         template="plotly_white", legend={"font": {"size": 11}})
    return figure


def period_figure(histories: Sequence[History], title: str | None = None) -> go.Figure:
    """The communication period H against local steps, for the schedules whose period
    changes (first seed of each; the last round, cut short at the end of the run, is left out)."""
    figure = go.Figure()
    seen = set()
    for h in histories:
        frame = h.frame.iloc[1:-1]
        if h.label in seen or frame["H"].nunique() <= 1:
            continue
        seen.add(h.label)
        figure.add_trace(go.Scatter(x=frame["step"], y=frame["H"], name=h.label, mode="lines", line_shape="hv",
                                    line={"color": PALETTE[(len(seen) + 3) % len(PALETTE)]}))
    figure.update_layout(title=title, xaxis_title=AXIS_TITLES["step"], yaxis_title="H (local steps per round)",
                         yaxis_type="log", template="plotly_white")
    return figure
