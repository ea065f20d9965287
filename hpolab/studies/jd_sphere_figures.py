"""Study 01's figure: the mean best objective against p, one line per JD / AJD variant, the
alternating baselines as horizontal lines (Figures 1 and 2 of the JD paper read over p).

Kept apart from the study loop (:mod:`hpolab.studies.jd_sphere`, which re-exports
:func:`p_sweep_figure` for the notebook) because it only reads histories.
"""

from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go

from hpolab.history import History
from hpolab.plots import sweep_figure
from hpolab.studies.jd_sphere_settings import variant


def p_sweep_figure(histories: Sequence[History], title: str | None = None) -> go.Figure:
    """Mean best objective at the end of the budget against p, one line per variant (JD, AJD,
    AJD unbiased); the alternating baselines as dashed horizontal lines. Bars: best to worst
    seed."""
    return sweep_figure(histories, by="p", title=title, line=variant, x_title="p (probability of a gradient step)")
