"""Study 01's figure: the mean best objective against p, one line per JD / AJD variant, the
alternating baselines as horizontal lines (Figures 1 and 2 of the JD paper read over p).

Kept apart from the study loop (:mod:`hpolab.studies.jd_sphere`, which re-exports
:func:`p_sweep_figure` for the notebook) because it only reads histories.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import plotly.graph_objects as go

from hpolab.history import History
from hpolab.methods import USES_P
from hpolab.plots import PALETTE
from hpolab.studies.jd_sphere_settings import variant


def p_sweep_figure(histories: Sequence[History], title: str | None = None) -> go.Figure:
    """Mean best objective at the end of the budget against p, one line per variant (JD, AJD,
    AJD unbiased); the alternating baselines as dashed horizontal lines. Bars: best to worst
    seed."""
    rows = [(variant(h), h.config.get("p") if h.method in USES_P else None, h.best_objective) for h in histories]
    frame = pd.DataFrame(rows, columns=["variant", "p", "best"])
    figure = go.Figure()
    for i, (name, part) in enumerate(frame.groupby("variant", sort=False)):
        color = PALETTE[i % len(PALETTE)]
        if part["p"].isna().all():
            figure.add_hline(y=float(part["best"].mean()), line_dash="dash", line_color=color,
                             annotation_text=name, annotation_position="top left")
            continue
        line = part.groupby("p").agg(mean=("best", "mean"), low=("best", "min"), high=("best", "max")).reset_index()
        figure.add_trace(go.Scatter(x=line["p"], y=line["mean"], name=name, mode="lines+markers",
                                    line={"color": color},
                                    error_y={"type": "data", "symmetric": False, "array": line["high"] - line["mean"],
                                             "arrayminus": line["mean"] - line["low"]}))
    figure.update_layout(title=title, xaxis_title="p (probability of a gradient step)",
                         yaxis_title="best objective at the end", yaxis_type="log", template="plotly_white")
    return figure
