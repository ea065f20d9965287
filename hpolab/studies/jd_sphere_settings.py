"""Study 01's settings and method set: the scales' budgets, the p grid, JD's search radii and
the grid they were picked from, and the method instances of a run (:func:`configurations`),
with the name each run is reported under (:func:`variant`).

What the study loop (:mod:`hpolab.studies.jd_sphere`), the radius sweep, the figures, the
widget panel and the claims all read; kept in a module of its own so that none of those has to
import another.
"""

from __future__ import annotations

from typing import Sequence

from hpolab.history import History
from hpolab.methods import make_method
from hpolab.methods.joint_descent import RADII, search_radii
from hpolab.problems import FUNCTIONS
from hpolab.protocol import Method
from hpolab.validation import check_choice, check_open_unit, check_positive


NOTEBOOK = "01_jd_sphere"
DEFAULTS = {  # per scale: evaluation budget per run, number of seeds
    "smoke": {"iterations": 60, "seeds": 1},
    "cpu": {"iterations": 1000, "seeds": 3},
    "paper": {"iterations": 3000, "seeds": 10},
}
ALL_METHODS = ("jd", "ajd", "alt-bo", "alt-zo")
ALL_FUNCTIONS = tuple(FUNCTIONS)
PAPER_P_VALUES = (0.1, 0.3, 0.5, 0.7, 0.9)
AJD_ESTIMATORS = ("printed", "unbiased")
JD_RADII = RADII  # (r, R): the best printed row of radius_sweep at cpu scale (jd_sphere's docstring), JD's defaults
# The (try scale, r, R) radius_sweep tries: the printed tries on a grid, and the tries of
# typical length r_i that hpolab used before (r = 2^-4, R = 2) for comparison.
RADIUS_GRID = tuple(("printed", 2.0**r, 2.0**R) for r in (-12, -10, -8) for R in (-7, -5, -3))
RADIUS_GRID += (("length", 2**-4, 2.0),)
SWEEP_SEEDS = {"smoke": (100,), "cpu": (100, 101), "paper": (100, 101, 102, 103, 104)}  # apart from the study's
UNBIASED = "AJD unbiased (ours)"
VARIANT_NAMES = {"jd": "JD", "ajd": "AJD", "alt-bo": "Alternating BO", "alt-zo": "Alternating ZO"}
BASELINES = ("Alternating BO", "Alternating ZO")


def variant(history: History) -> str:
    """The method without its p: ``"JD"``, ``"AJD"``, ``"AJD unbiased (ours)"``, ``"AJD step x4"``,
    ``"Alternating BO"``..."""
    config = history.config
    if history.method == "ajd" and config.get("estimator", "printed") == "unbiased":
        name = UNBIASED
    else:
        name = VARIANT_NAMES.get(history.method, history.method)
    extras = []
    if config.get("step_scale", 1.0) != 1.0:
        extras.append(f"step x{config['step_scale']:g}")
    if config.get("v_coefficient", "printed") != "printed":
        extras.append(f"{config['v_coefficient']} v")
    if config.get("try_scale", "printed") != "printed":
        extras.append(f"{config['try_scale']} tries")
    return name + (" " + ", ".join(extras) if extras else "")


def configurations(methods: Sequence[str], p_values: Sequence[float], mu: float,
                   ajd_estimators: Sequence[str] = AJD_ESTIMATORS, ajd_step_scales: Sequence[float] = (1.0,),
                   jd_radii: Sequence[float] = JD_RADII, jd_try_scale: str = "printed") -> list[Method]:
    """The method instances of the study: one per p for JD, one per p, estimator and step
    scale for AJD, one per alternating baseline."""
    built = []
    r, R = jd_radii
    for name in methods:
        check_choice("method", name, ALL_METHODS)
        if name == "jd":
            built += [make_method("jd", p=p, r=r, R=R, try_scale=jd_try_scale) for p in p_values]
        elif name == "ajd":
            built += [make_method("ajd", p=p, mu=mu, step_scale=s, estimator=e)
                      for e in ajd_estimators for s in ajd_step_scales for p in p_values]
        elif name == "alt-zo":
            built.append(make_method("alt-zo", mu=mu))
        else:
            built.append(make_method(name))
    return built


def _check_arguments(functions, p_values, ajd_estimators, jd_radii, mu):
    for function in functions:
        check_choice("function", function, ALL_FUNCTIONS)
    for p in p_values:
        check_open_unit("p", p)
    for estimator in ajd_estimators:
        check_choice("ajd_estimator", estimator, AJD_ESTIMATORS)
    if len(jd_radii) != 2:
        raise ValueError(f"jd_radii must be (r, R), got {jd_radii!r}")
    search_radii(*jd_radii)
    check_positive("mu", mu)
