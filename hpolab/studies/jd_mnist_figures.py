"""Study 02's figures: training accuracy against iterations (mean and band over seeds) and the
three hyperparameters eta, alpha and b that JD tunes (Figure 3 of the JD paper).

Kept apart from the study loop (:mod:`hpolab.studies.jd_mnist`, which re-exports them for the
notebook) because they only read histories.
"""

from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hpolab.history import History
from hpolab.plots import PALETTE, curves
from hpolab.problems.mlp import HYPERPARAMETERS


def accuracy_figure(histories: Sequence[History], x: str = "iteration", title: str | None = None,
                    x_max: float | None = None) -> go.Figure:
    """Training accuracy against ``x``, one line per label: the mean over seeds, the band from
    the worst to the best seed; the y axis spans the final accuracies (zoom out for the start)."""
    mean = curves(histories, x=x, y="train_accuracy", band="ci95")
    spread = curves(histories, x=x, y="train_accuracy", band="range")
    figure = go.Figure()
    for i, (label, line) in enumerate(mean.groupby("label", sort=False)):
        color = PALETTE[i % len(PALETTE)]
        if line["runs"].max() > 1:
            band = spread[spread["label"] == label]
            figure.add_trace(go.Scatter(x=list(band["x"]) + list(band["x"][::-1]),
                                        y=list(band["high"]) + list(band["low"][::-1]), fill="toself",
                                        fillcolor=color, opacity=0.15, line={"width": 0}, hoverinfo="skip",
                                        showlegend=False, legendgroup=label))
        figure.add_trace(go.Scatter(x=line["x"], y=line["mean"], name=label, mode="lines", line={"color": color},
                                    legendgroup=label))
    finals = [float(h.frame["train_accuracy"].iloc[-1]) for h in histories]
    figure.update_layout(title=title, template="plotly_white", yaxis_title="training accuracy",
                         xaxis_title="iteration (gradient + function evaluations)" if x == "iteration" else x,
                         yaxis_range=[max(0.0, min(finals) - 0.08), min(1.0, max(finals) + 0.02)])
    if x_max is not None:
        figure.update_xaxes(range=[0, x_max])
    return figure


def hyperparameter_figure(histories: Sequence[History], x: str = "iteration", title: str | None = None) -> go.Figure:
    """eta, alpha and b against ``x``, one panel each, one line per label (mean over seeds)."""
    figure = make_subplots(rows=1, cols=3, subplot_titles=("eta (learning rate)", "alpha (ReLU slope)",
                                                           "b (ELU coefficient)"))
    labels: dict[str, str] = {}
    for column, name in enumerate(HYPERPARAMETERS, start=1):
        data = curves(histories, x=x, y=name, band="ci95")
        for label, line in data.groupby("label", sort=False):
            color = labels.setdefault(label, PALETTE[len(labels) % len(PALETTE)])
            figure.add_trace(go.Scatter(x=line["x"], y=line["mean"], name=label, legendgroup=label, mode="lines",
                                        line={"color": color}, showlegend=column == 1), row=1, col=column)
    figure.update_xaxes(title_text="iteration (gradient + function evaluations)" if x == "iteration" else x)
    figure.update_layout(title=title, template="plotly_white", height=380)
    return figure
