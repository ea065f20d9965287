"""Study 01's radius sweep: JD's search radii (r, R), which the paper does not give, picked by
their best objective over every p and both spheres on seeds apart from the study's.

:func:`radius_sweep` is how :data:`~hpolab.studies.jd_sphere_settings.JD_RADII` was chosen (the
notebook shows its table); kept apart from the study loop (:mod:`hpolab.studies.jd_sphere`, which
re-exports it) because it is a separate experiment with its own seeds.
"""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

from hpolab.devices import resolve_device
from hpolab.methods import make_method
from hpolab.methods.joint_descent import search_radii
from hpolab.problems import make_problem
from hpolab.progress import progress_bar
from hpolab.runner import run
from hpolab.studies.common import check_scale
from hpolab.studies.jd_sphere_settings import (
    ALL_FUNCTIONS,
    DEFAULTS,
    JD_RADII,
    PAPER_P_VALUES,
    RADIUS_GRID,
    SWEEP_SEEDS,
    _check_arguments,
)
from hpolab.validation import check_count


def radius_sweep(scale: str = "cpu", grid: Sequence[tuple] | None = None, functions: Sequence[str] = ALL_FUNCTIONS,
                 p_values: Sequence[float] = PAPER_P_VALUES, iterations: int | None = None,
                 seeds: Sequence[int] | None = None, device: str = "cpu", progress: bool = True) -> pd.DataFrame:
    """JD's best objective for each (try scale, r, R) of ``grid``, on seeds apart from the study's.

    Args:
      grid: (try scale, r, R) triples; None: :data:`RADIUS_GRID` (at ``smoke`` scale only
        the study's radii and the old ones).
      seeds: None: the scale's :data:`SWEEP_SEEDS`.

    Returns one row per grid point: the evaluations a gradientless step costs, per function
    the geometric mean over ``p_values`` of the mean best objective over ``seeds``, and
    ``score``, the geometric mean of those over the functions (lower is better; every p
    weighs the same, so the score favours no p). Sorted by score.
    """
    check_scale(scale)
    iterations = check_count("iterations", DEFAULTS[scale]["iterations"] if iterations is None else iterations)
    if grid is None:
        grid = RADIUS_GRID if scale != "smoke" else (("printed", *JD_RADII), RADIUS_GRID[-1])
    seeds = SWEEP_SEEDS[scale] if seeds is None else seeds
    _check_arguments(functions, p_values, (), JD_RADII, 1.0)
    torch_device = resolve_device(device)
    rows = []
    with progress_bar(total=len(grid) * len(functions), desc="radii", disable=not progress) as bar:
        for try_scale, r, R in grid:
            row = {"try scale": try_scale, "r": r, "R": R, "tries per step": len(search_radii(r, R))}
            for function in functions:
                means = []
                for p in p_values:
                    method = make_method("jd", p=p, r=r, R=R, try_scale=try_scale)
                    best = [run(method, make_problem(function, seed=s, device=torch_device), iterations,
                                seed=s).best_objective for s in seeds]
                    means.append(sum(best) / len(best))
                row[function] = _geometric_mean(means)
                bar.update()
            row["score"] = _geometric_mean([row[f] for f in functions])
            rows.append(row)
    return pd.DataFrame(rows).sort_values("score", kind="stable", ignore_index=True)


def _geometric_mean(values: Sequence[float]) -> float:
    values = list(values)
    if not values or any(not (v > 0) for v in values):
        return math.nan if any(math.isnan(v) for v in values) or not values else math.inf
    return math.exp(sum(math.log(v) for v in values) / len(values))
