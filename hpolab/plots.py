"""Plotly figures built from histories and nothing else.

As in Optuna's visualization module, each figure is two steps: a pure function that
extracts the numbers from histories (tested on its own), and one that draws them.
"""

from __future__ import annotations

from typing import Callable, Sequence

import warnings

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from scipy import stats

from hpolab.history import History

PALETTE = qualitative.Plotly + qualitative.D3


def curves(histories: Sequence[History], x: str = "iteration", y: str = "objective", points: int = 200,
           band: str = "range") -> pd.DataFrame:
    """Per problem and label, y against x over seeds: a mean and a band.

    Each run is read as a step function of ``x`` (the value after the last step taken at
    or before each grid point) on a common grid from 0 to the largest ``x`` reached, so
    runs whose steps cost different numbers of evaluations line up. Runs that ended early
    count only where they have values.

    Args:
      band: ``"range"``: geometric mean, band from the best to the worst run (for values
        spanning decades); ``"ci95"``: arithmetic mean and its 95 % t-interval.

    Returns:
      A frame with columns problem, label, x, mean, low, high, runs.
    """
    rows = []
    groups: dict[tuple[str, str], list[History]] = {}
    for history in histories:
        groups.setdefault((history.problem, history.label), []).append(history)
    for (problem, label), runs in groups.items():
        end = max(float(h.frame[x].iloc[-1]) for h in runs)
        grid = np.unique(np.linspace(0, end, points).round(6))
        stacked = np.full((len(runs), grid.size), np.nan)
        for i, history in enumerate(runs):
            xs = history.frame[x].to_numpy(dtype=float)
            ys = history.frame[y].to_numpy(dtype=float)
            at = np.searchsorted(xs, grid, side="right") - 1
            inside = (at >= 0) & (grid <= xs[-1])
            stacked[i, inside] = ys[at[inside]]
        counts = np.sum(~np.isnan(stacked), axis=0)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # grid points no run has reached yet
            if band == "ci95":
                mean = np.nanmean(stacked, axis=0)
                half = stats.t.ppf(0.975, np.maximum(counts - 1, 1)) * np.nanstd(stacked, axis=0, ddof=1) / np.sqrt(counts)
                half = np.where(counts > 1, half, 0.0)
                low, high = mean - half, mean + half
            else:
                positive = np.where(stacked > 0, stacked, np.nan)
                mean = np.exp(np.nanmean(np.log(positive), axis=0))
                low, high = np.nanmin(stacked, axis=0), np.nanmax(stacked, axis=0)
        for values in zip(grid, mean, low, high, counts):
            rows.append((problem, label, *values))
    return pd.DataFrame(rows, columns=["problem", "label", "x", "mean", "low", "high", "runs"])


def objective_figure(
    histories: Sequence[History],
    x: str = "iteration",
    y: str = "objective",
    title: str | None = None,
    log: bool = True,
    band: str = "range",
    x_title: str | None = None,
) -> go.Figure:
    """y against x, one line per label over seeds (see :func:`curves` for ``band``), with
    the band drawn when there are several seeds."""
    data = curves(histories, x=x, y=y, band=band)
    figure = go.Figure()
    for i, (label, line) in enumerate(data.groupby("label", sort=False)):
        color = PALETTE[i % len(PALETTE)]
        if line["runs"].max() > 1:
            band_x = np.concatenate([line["x"], line["x"][::-1]])
            band_y = np.concatenate([line["high"], line["low"][::-1]])
            figure.add_trace(
                go.Scatter(x=band_x, y=band_y, fill="toself", fillcolor=color, opacity=0.15,
                           line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=label)
            )
        figure.add_trace(go.Scatter(x=line["x"], y=line["mean"], name=label, line={"color": color},
                                    legendgroup=label, mode="lines"))
    figure.update_layout(
        title=title,
        xaxis_title=x_title or ("iteration (gradient + function evaluations)" if x == "iteration" else x),
        yaxis_title=y.replace("_", " "),
        yaxis_type="log" if log else "linear",
        template="plotly_white",
        legend={"font": {"size": 11}},
    )
    return figure


def final_values(histories: Sequence[History], by: str = "p", y: str = "best_objective",
                 line: Callable[[History], str] | None = None) -> pd.DataFrame:
    """Per problem, line and value of ``by``: the mean over seeds of y at the end of each run
    (runs without ``by`` in their config, such as the alternating baselines, get NaN). A run's
    ``line`` is its method, or what ``line(history)`` names it (a variant of a method)."""
    rows = [
        (h.problem, h.method, h.method if line is None else line(h), h.label, h.config.get(by, np.nan), h.seed,
         float(h.frame[y].iloc[-1]))
        for h in histories
    ]
    frame = pd.DataFrame(rows, columns=["problem", "method", "line", "label", by, "seed", y])
    grouped = frame.groupby(["problem", "line", by], dropna=False, sort=False)
    summary = grouped.agg(method=("method", "first"), label=("label", "first"), mean=(y, "mean"), low=(y, "min"),
                          high=(y, "max"), runs=(y, "size"))
    return summary.reset_index()


def sweep_figure(histories: Sequence[History], by: str = "p", y: str = "best_objective", title: str | None = None,
                 line: Callable[[History], str] | None = None, x_title: str | None = None) -> go.Figure:
    """Final y against ``by``, one line per method (or per ``line(history)``, see
    :func:`final_values`) with bars from the best to the worst seed; lines without ``by`` are
    drawn as dashed horizontal references at their mean."""
    data = final_values(histories, by=by, y=y, line=line)
    figure = go.Figure()
    for i, (name, part) in enumerate(data.groupby("line", sort=False)):
        color = PALETTE[i % len(PALETTE)]
        label = name.upper() if line is None else name
        if part[by].isna().all():
            figure.add_hline(y=float(part["mean"].mean()), line_dash="dash", line_color=color,
                             annotation_text=str(part["label"].iloc[0]) if line is None else name,
                             annotation_position="top left")
            continue
        part = part.sort_values(by)
        figure.add_trace(go.Scatter(
            x=part[by], y=part["mean"], name=label, mode="lines+markers", line={"color": color},
            error_y={"type": "data", "symmetric": False, "array": part["high"] - part["mean"],
                     "arrayminus": part["mean"] - part["low"]},
        ))
    figure.update_layout(title=title, xaxis_title=x_title or by, yaxis_title=f"{y.replace('_', ' ')} at the end",
                         yaxis_type="log", template="plotly_white")
    return figure


def sensitivity_figure(frame: pd.DataFrame, title: str | None = None, normalized: bool = True, loss: str = "train",
                       by: str = "curve") -> go.Figure:
    """Best ``loss`` (``"train"`` or ``"test"``) reached against the initial rate, relative to
    each line's best rate when ``normalized`` (the paper's x axis), one line per value of
    ``by`` with the 95 % interval over seeds as error bars. ``frame`` is a sensitivity table
    (:func:`hpolab.studies.hd_vs_decay.sensitivity`) or a part of it; diverged points are gaps."""
    x = f"{loss} lr / best lr" if normalized else "lr0"
    figure = go.Figure()
    for i, (name, line) in enumerate(frame.groupby(by, sort=False)):
        line = line.sort_values("lr0")
        figure.add_trace(go.Scatter(x=line[x], y=line[loss], name=str(name), mode="lines+markers",
                                    line={"color": PALETTE[i % len(PALETTE)]},
                                    error_y={"type": "data", "array": line[f"{loss} ±95%"], "visible": True}))
    figure.update_layout(title=title, xaxis_title="alpha_0 / best alpha_0" if normalized else "alpha_0",
                         yaxis_title=f"minimal {'training' if loss == 'train' else 'test'} loss reached",
                         xaxis_type="log", template="plotly_white")
    return figure
