"""Study 04's widget panel: one method on the CNN's schedule at a time
(:func:`schedule_run_one`, what the Run button calls) and the panel itself
(:func:`schedule_panel`). Apart from the study's run, which does not need ipywidgets.
"""

from __future__ import annotations

from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.hypergrad import box
from hpolab.problems.tuning import tuning_problem
from hpolab.runner import run
from hpolab.studies.hozog import LABELS, gamma_slider, seconds_box, tuning_method
from hpolab.studies.hozog_schedules_setting import (
    SCHEDULE_BOX, SCHEDULE_METHODS, SCHEDULE_SCALES, batch_hozog_runs, network_settings, schedule_setting,
)


def schedule_run_one(method: str = "hozog", q: int = 1, mu: float = 0.224, gamma: float = 1.0,
                     seconds: float = 60.0, scale: str = "cpu", device: str = "cpu", callback=None,
                     should_stop=None) -> History:
    """One method on study 04's CNN schedule for ``seconds`` (what the panel runs)."""
    torch_device = resolve_device(device)
    task, hyper, test = schedule_setting(scale, "cnn", torch_device)
    built = tuning_method(method, task, hyper, box(hyper, {"lr": SCHEDULE_BOX}), q, mu, gamma, directions="sphere",
                          batched=batch_hozog_runs("auto", torch_device))
    return run(built, tuning_problem(task, hyper, test=test), None, seed=0, max_seconds=seconds,
               callback=callback, should_stop=should_stop)


def schedule_panel(values: dict | None = None, **overrides):
    """Study 04's widget panel, from the notebook's parameters (``globals()``) and ``overrides``:
    method, q, mu, scale, device, gamma, seconds."""
    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    settings = network_settings("cnn", values.get("scale", "cpu") if values.get("scale") in SCHEDULE_SCALES else "cpu")
    values = {**values, "q": values.get("q") or settings.q, "mu": values.get("mu") or settings.mu}
    extra = {"gamma": gamma_slider(values.get("gamma") or settings.gamma, -3, 2),
             "seconds": seconds_box(values.get("seconds") or 60.0)}
    uses = {"hozog": {"q", "mu", "gamma"}, "random-search": set(), "bayesian": set(), "bohb": set()}
    return panel_for(schedule_run_one, {LABELS[m]: m for m in SCHEDULE_METHODS}, uses, values, extra,
                     x="wall_time", y="objective", total=lambda s: s["seconds"])
