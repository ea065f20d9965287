"""Study 03's widget panel: one method on one data set at a time (:func:`logreg_run_one`, what
the Run button calls) and the panel itself (:func:`logreg_panel`), with the splits and Adam
step sizes it computes once and keeps. Apart from the study's run, which does not need
ipywidgets or these caches.
"""

from __future__ import annotations

from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.hypergrad import box
from hpolab.problems.tuning import tuning_problem
from hpolab.runner import run
from hpolab.splits import Split, libsvm_split
from hpolab.studies.common import check_scale
from hpolab.studies.hozog import LABELS, gamma_slider, seconds_box, tuning_method
from hpolab.studies.hozog_logreg_setting import (
    LOGREG_DATASETS, LOGREG_METHODS, LOGREG_SIZES, adam_step_table, logistic_regression_setting, pick_adam_step,
    subset_factor, table2_gamma,
)


def logreg_run_one(scale: str = "cpu", dataset: str = "a9a", method: str = "hozog", q: int = 1, mu: float = 0.01,
                   gamma: float = 0.0, seconds: float = 10.0, device: str = "cpu", callback=None,
                   should_stop=None) -> History:
    """One method on one data set for ``seconds`` (what the widget panel's Run button calls);
    gamma 0 takes the study's (:func:`default_gamma`), Adam's step the rule's (computed once per
    data set and scale)."""
    limit, max_features, horizon, _ = LOGREG_SIZES[check_scale(scale)]
    split = _cached_split(dataset, limit, max_features, str(resolve_device(device)))
    key = (dataset, limit, max_features, horizon)
    if key not in _STEPS:
        _STEPS[key] = pick_adam_step(adam_step_table(split, horizon))
    task, hyper, limits_range = logistic_regression_setting(split, horizon, _STEPS[key])
    limits = box(hyper, {"log_l2": limits_range})
    method = tuning_method(method, task, hyper, limits, q, mu, gamma or default_gamma(dataset, scale))
    return run(method, tuning_problem(task, hyper, test=split.test), None, seed=0, max_seconds=seconds,
               callback=callback, should_stop=should_stop)


_SPLITS: dict = {}
_STEPS: dict = {}


def default_gamma(dataset: str, scale: str = "cpu") -> float:
    """The study's gamma for ``dataset`` at ``scale``: Table 2's times the subset factor."""
    limit, max_features, _, _ = LOGREG_SIZES[check_scale(scale)]
    return table2_gamma(dataset) * subset_factor(_cached_split(dataset, limit, max_features, "cpu"))


def _cached_split(dataset, limit, max_features, device) -> Split:
    key = (dataset, limit, max_features, device)
    if key not in _SPLITS:
        _SPLITS[key] = libsvm_split(dataset, limit, max_features, device=device)
    return _SPLITS[key]


def logreg_panel(values: dict | None = None, **overrides):
    """Study 03's widget panel, from the notebook's parameters (``globals()``) and ``overrides``:
    method, q, mu, scale, device, dataset, gamma, seconds."""
    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    dataset = values.get("dataset") or (values.get("datasets") or ["a9a"])[0]
    extra = {"dataset": w.Dropdown(options=list(LOGREG_DATASETS), value=dataset, description="dataset"),
             "gamma": gamma_slider(values.get("gamma") or default_gamma(dataset, values.get("scale", "cpu")), -3, 1),
             "seconds": seconds_box(values.get("seconds") or 10.0)}
    uses = {"hozog": {"q", "mu", "gamma"}, "forward": {"gamma"}, "reverse": {"gamma"}, "implicit": set(),
            "random-search": set(), "bayesian": set(), "bohb": set()}
    return panel_for(logreg_run_one, {LABELS[m]: m for m in LOGREG_METHODS}, uses, values, extra,
                     x="wall_time", y="objective", total=lambda s: s["seconds"])
