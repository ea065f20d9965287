"""Study 14's figure: an error, time or memory measurement against the swept T, K or D on
log-log axes, a line per estimator with its fitted growth rate (:func:`growth_figure`), read
from a finished :class:`~hpolab.studies.estimator_atlas.AtlasResult`.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from hpolab.plots import PALETTE
from hpolab.studies.estimator_atlas_claims import growth_rate
from hpolab.studies.estimator_atlas_setting import AXES, FLOORS, METRICS, AtlasResult


def growth_figure(result: AtlasResult, family: str, axis: str, metric: str) -> go.Figure:
    """Log-log: ``metric`` against the swept value, a line per estimator, its fitted slope in the legend."""
    frame = result.measurements
    part = frame[(frame["family"] == family) & (frame["axis"] == axis)]
    figure = go.Figure()
    for i, (label, line) in enumerate(part.groupby("estimator", sort=False)):
        rate = growth_rate(line[axis], line[metric], FLOORS[metric])
        figure.add_trace(go.Scatter(x=line[axis], y=np.maximum(line[metric], FLOORS[metric]), mode="lines+markers",
                                    name=f"{label} (slope {rate:.2f})", line={"color": PALETTE[i % len(PALETTE)]}))
    figure.update_layout(title=f"{family}: {METRICS[metric]} against {AXES[axis]}", template="plotly_white",
                         xaxis_title=AXES[axis], yaxis_title=METRICS[metric], xaxis_type="log", yaxis_type="log")
    return figure
