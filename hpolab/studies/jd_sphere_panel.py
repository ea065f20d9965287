"""Study 01's widget panel: one run per click (:func:`run_one`) of JD, AJD or an alternating
baseline on a sphere, drawn live.

Kept apart from the study loop (:mod:`hpolab.studies.jd_sphere`, which re-exports :func:`panel`
for the notebook and the panel tests); it builds its method from
:func:`~hpolab.studies.jd_sphere_settings.configurations`, as the study does.
"""

from __future__ import annotations

from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.problems import make_problem
from hpolab.runner import run
from hpolab.studies.jd_sphere_settings import AJD_ESTIMATORS, ALL_FUNCTIONS, ALL_METHODS, configurations
from hpolab.validation import check_choice


def run_one(
    function: str = "sphere",
    method: str = "jd",
    p: float = 0.5,
    mu: float = 1e-3,
    ajd_estimator: str = "printed",
    iterations: int = 1000,
    seed: int = 0,
    device: str = "cpu",
    callback=None,
    should_stop=None,
) -> History:
    """One run of the study (what the widget panel's Run button calls)."""
    check_choice("method", method, ALL_METHODS)
    check_choice("ajd_estimator", ajd_estimator, AJD_ESTIMATORS)
    (built,) = configurations([method], [p], mu, [ajd_estimator])
    problem = make_problem(function, seed=seed, device=resolve_device(device))
    return run(built, problem, iterations, seed=seed, callback=callback, should_stop=should_stop)


def panel(values: dict | None = None, **overrides):
    """The study's widget panel, built from the notebook's parameters (``globals()``) and
    ``overrides``: method, p, mu, iterations, seed, device, function and AJD's estimator."""
    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    function = values.get("function") or (values.get("functions") or ["sphere"])[0]
    estimator = values.get("ajd_estimator") or (values.get("ajd_estimators") or ["printed"])[0]
    extra = {
        "function": w.Dropdown(options=list(ALL_FUNCTIONS), value=function, description="function"),
        "ajd_estimator": w.Dropdown(options=list(AJD_ESTIMATORS), value=estimator, description="AJD estimate"),
    }
    methods = {"JD": "jd", "AJD": "ajd", "Alternating BO": "alt-bo", "Alternating ZO": "alt-zo"}
    uses = {"jd": {"p"}, "ajd": {"p", "mu", "ajd_estimator"}, "alt-zo": {"mu"}, "alt-bo": set()}
    return panel_for(run_one, methods, uses, values, extra)
