"""Study 13's widget panel: one local SGD run per click (:func:`run_one`), a constant period H or
a growing schedule capped at H, drawn live against communication rounds or local steps.

Kept apart from the study loop (:mod:`hpolab.studies.local_sgd`, which re-exports :func:`panel` for
the notebook and the panel tests): the panel builds its runs from :mod:`hpolab.studies.local_sgd_tasks`.
"""

from __future__ import annotations

import math

import numpy as np

from hpolab.history import History
from hpolab.methods.local_sgd import growing
from hpolab.studies.local_sgd_claims import measured
from hpolab.studies.local_sgd_figures import AXIS_TITLES
from hpolab.studies.local_sgd_tasks import BATCH_SIZE, LR_DECAY, LR_GRIDS, TASKS, _sizes, run_task, schedule_for
from hpolab.validation import check_choice


def run_one(task: str = "a9a-logreg", scale: str = "cpu", schedule: str = "constant", H: int = 16,
            workers: int = 16, lr: float | None = None, lr_decay: float = LR_DECAY, batch_size: int = BATCH_SIZE,
            steps: int | None = None, seed: int = 0, device: str = "cpu", callback=None,
            should_stop=None) -> History:
    """One run for the widget panel: ``schedule`` ``constant`` uses period H; ``growing`` and
    ``plateau`` start at H = 1 and stop growing at H. ``lr`` defaults to the geometric middle
    of the task's gamma_0 grid."""
    if lr is None:
        lr = panel_learning_rate(task)
    if schedule == "constant":
        period = H
    else:
        period = growing(start=1, maximum=H) if schedule == "growing" else schedule_for(schedule, [H])
    return run_task(task, period, scale=scale, workers=workers, batch_size=batch_size, lr=lr, lr_decay=lr_decay,
                    steps=steps, seed=seed, device=device, callback=callback, should_stop=should_stop)


def panel_learning_rate(task: str) -> float:
    """The panel's starting gamma_0 when the notebook gives none: the geometric middle of the
    task's grid."""
    grid = LR_GRIDS[check_choice("task", task, TASKS)]
    return float(math.exp(np.mean(np.log(grid))))


def panel(values: dict | None = None, x: str = "round", **overrides):
    """The widget panel, from the notebook's parameters (``globals()``) and ``overrides``:
    schedule, scale, seed, device, H (the period, or the cap of a growing schedule), P, lr, its
    decay, b, steps; each run adds its line of the training objective against communication
    rounds (``x="step"``: local steps)."""
    import functools

    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    task = values.get("task") or (values.get("tasks") or ["a9a-logreg"])[0]
    scale = values.get("scale") or "cpu"
    rates = values.get("learning_rates") or {}
    extra = {
        "H": w.Dropdown(options=[1, 2, 4, 8, 16, 32, 64, 128, 256], value=16, description="H / max H"),
        "workers": w.Dropdown(options=[1, 2, 4, 8, 16, 32, 64], value=values.get("workers") or 16,
                              description="P workers"),
        "lr": w.FloatLogSlider(value=rates.get(task, panel_learning_rate(task)), base=10, min=-3, max=1.5, step=0.125,
                               description="lr gamma_0", readout_format=".3g"),
        "lr_decay": w.FloatSlider(value=values.get("lr_decay", LR_DECAY), min=0.0, max=1.0, step=0.05,
                                  description="lr decay alpha"),
        "batch_size": w.Dropdown(options=[1, 2, 4, 8, 16, 32, 64], value=values.get("batch_size") or BATCH_SIZE,
                                 description="b"),
        "steps": w.BoundedIntText(value=values.get("steps") or _sizes(scale, task)[2], min=1, max=10**6,
                                  description="steps"),
    }

    def total(settings):
        if x == "step":
            return settings["steps"]
        if settings["schedule"] == "constant":
            return math.ceil(settings["steps"] / settings["H"])
        return math.sqrt(2 * settings["steps"])

    values.setdefault("schedule", "constant")
    view = panel_for(functools.partial(run_one, task=task), ["constant", "growing", "plateau"],
                     {"constant": set(), "growing": set(), "plateau": set()}, values, extra, selector="schedule",
                     x=x, y=measured(task), total=total)
    view.figure.layout.xaxis.type = "log" if x == "round" else "linear"
    view.figure.layout.xaxis.title = AXIS_TITLES[x]
    return view
