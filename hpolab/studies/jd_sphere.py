"""Study 01: Joint Descent on the (ill-conditioned) sphere, Figures 1 and 2 of the JD paper.

JD and AJD for each gradient-step probability p, and the two alternating baselines, on the
randomly rotated and shifted sphere and ill-conditioned sphere (nx = 30, ny = 32), each
run repeated over seeds; seed s draws problem instance s and start point s, so every
method of a seed faces the same problem from the same start.

The algorithms run as printed (see :mod:`hpolab.methods.joint_descent` and
:mod:`hpolab.methods.accelerated_joint_descent`): JD's tries ``g_i ~ N(0, r_i I)`` and its
gradient step ``1 / beta``; AJD's estimate ``g = 2 g^p`` (unbiased only at p = 1/2), its
step h and its mirror step ``- a g``. Beside the printed AJD the study runs, as *our*
addition, AJD with the importance-weighted estimate (1/p, 1/(1 - p)), unbiased at every p:
section 4.1 explains AJD's need for p = 0.5 by the bias of the printed estimate, and the
two over p test that explanation.

The paper gives no search radii r, R for JD. :data:`JD_RADII` was picked by
:func:`radius_sweep` at cpu scale on seeds of their own (100, 101: not the study's),
scoring each (r, R) by the geometric mean over every p and both functions of the best
objective, so the pick favours no p: (2^-10, 2^-5) scored 3.55, the next printed row
(2^-12, 2^-7) 3.81, the old tries of typical length 2^-3 .. 2 4.10 (the notebook shows the
table). It is an interior point of the grid.

The alternating baselines' probe training restarts from the base training's random x
(``alternating_zeroth_order(common_start=True)``): with fresh starts the zeroth-order
baseline's mean best objective on the ill-conditioned sphere is 850 against 628 (cpu, 3
seeds); on the plain sphere one gradient step solves x from any start, so both give 5.81.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.methods import USES_P
from hpolab.problems import make_problem
from hpolab.progress import progress_bar
from hpolab.runner import run
from hpolab.studies.common import StudyResult, check_scale, saves_results
from hpolab.studies.jd_sphere_claims import CLAIMS  # noqa: F401  (re-exported: the ledger reads jd_sphere.CLAIMS)
from hpolab.studies.jd_sphere_figures import p_sweep_figure  # noqa: F401  (re-exported: the notebook calls it here)
from hpolab.studies.jd_sphere_panel import panel  # noqa: F401  (re-exported: the notebook's panel)
from hpolab.studies.jd_sphere_radii import radius_sweep  # noqa: F401  (re-exported: the notebook calls it here)
from hpolab.studies.jd_sphere_settings import (
    AJD_ESTIMATORS,
    ALL_FUNCTIONS,
    ALL_METHODS,
    DEFAULTS,
    JD_RADII,
    PAPER_P_VALUES,
    _check_arguments,
    configurations,
    variant,
)
from hpolab.studies.jd_sphere_settings import BASELINES, UNBIASED  # noqa: F401  (re-exported: notebook 01, study 02)
from hpolab.validation import check_count


@saves_results
def run_study(
    scale: str = "cpu",
    functions: Sequence[str] = ALL_FUNCTIONS,
    methods: Sequence[str] = ALL_METHODS,
    p_values: Sequence[float] = PAPER_P_VALUES,
    iterations: int | None = None,
    seeds: int | None = None,
    mu: float = 1e-3,
    ajd_estimators: Sequence[str] = AJD_ESTIMATORS,
    ajd_step_scales: Sequence[float] = (1.0,),
    jd_radii: Sequence[float] = JD_RADII,
    jd_try_scale: str = "printed",
    device: str = "cpu",
    progress: bool = True,
) -> StudyResult:
    """Run every (function, seed, method) of the study and summarize.

    Args:
      scale: ``smoke``, ``cpu`` or ``paper``; sets ``iterations`` and ``seeds`` unless
        given (see ``DEFAULTS``).
      functions: among ``"sphere"`` and ``"ill-conditioned sphere"``.
      methods: among ``"jd"``, ``"ajd"``, ``"alt-bo"``, ``"alt-zo"``.
      p_values: gradient-step probabilities for JD and AJD, each in (0, 1).
      iterations: evaluation budget of each run.
      seeds: number of seeds (0, 1, ... seeds - 1).
      mu: Gaussian smoothing radius of AJD and of the zeroth-order baseline.
      ajd_estimators: AJD's estimates to run: ``"printed"`` (the paper's ``2 g^p``) and/or
        ``"unbiased"`` (ours: weights 1/p and 1/(1 - p)).
      ajd_step_scales: AJD's steps as multiples of the paper's (1.0 is the paper's).
      jd_radii: JD's smallest and largest search radius (r, R).
      jd_try_scale: ``"printed"`` (tries ``N(0, r_i I)``) or ``"length"``.
      device: ``auto``, ``cpu``, ``cuda:N`` or ``mps``.
      progress: show a progress bar over the runs.
    """
    check_scale(scale)
    iterations = check_count("iterations", DEFAULTS[scale]["iterations"] if iterations is None else iterations)
    seeds = check_count("seeds", DEFAULTS[scale]["seeds"] if seeds is None else seeds, minimum=1)
    _check_arguments(functions, p_values, ajd_estimators, jd_radii, mu)
    torch_device = resolve_device(device)
    methods_list = configurations(methods, p_values, mu, ajd_estimators, ajd_step_scales, jd_radii, jd_try_scale)

    histories: list[History] = []
    total = len(functions) * seeds * len(methods_list)
    with progress_bar(total=total, desc="runs", disable=not progress) as bar:
        for function in functions:
            for seed in range(seeds):
                problem = make_problem(function, seed=seed, device=torch_device)
                for method in methods_list:
                    bar.set_postfix_str(f"{function}, {method.label}, seed {seed}", refresh=False)
                    histories.append(run(method, problem, iterations, seed=seed))
                    bar.update()
    parameters = {
        "scale": scale, "functions": list(functions), "methods": list(methods), "p_values": list(p_values),
        "iterations": iterations, "seeds": seeds, "mu": mu, "ajd_estimators": list(ajd_estimators),
        "ajd_step_scales": list(ajd_step_scales), "jd_radii": list(jd_radii), "jd_try_scale": jd_try_scale,
        "device": str(torch_device),
    }
    return StudyResult(histories, summarize(histories), parameters)


def summarize(histories: Sequence[History]) -> pd.DataFrame:
    """Per function, method variant and p: mean over seeds of the final and best objective."""
    rows = [
        {
            "function": h.problem,
            "method": variant(h),
            "p": h.config.get("p") if h.method in USES_P else None,
            "final": h.final_objective,
            "best": h.best_objective,
            "diverged": h.status == "diverged",
        }
        for h in histories
    ]
    keys = ["function", "method", "p"]
    summary = pd.DataFrame(rows).groupby(keys, dropna=False, sort=False).agg(
        final=("final", "mean"), best=("best", "mean"), runs=("final", "size"), diverged=("diverged", "sum"),
    )
    return summary.reset_index()
