"""Study 01: Joint Descent on the (ill-conditioned) sphere, Figures 1 and 2 of the JD paper.

JD and AJD for each gradient-step probability p, and the two alternating baselines, on the
randomly rotated and shifted sphere and ill-conditioned sphere (nx = 30, ny = 32), each
run repeated over seeds; seed s draws problem instance s and start point s, so every
method of a seed faces the same problem from the same start.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
from tqdm.auto import tqdm

from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.methods import USES_P, make_method
from hpolab.problems import FUNCTIONS, make_problem
from hpolab.protocol import Method
from hpolab.runner import run
from hpolab.studies.common import StudyResult, check_scale
from hpolab.validation import check_choice, check_count, check_open_unit

DEFAULTS = {  # per scale: evaluation budget per run, number of seeds
    "smoke": {"iterations": 60, "seeds": 1},
    "cpu": {"iterations": 1000, "seeds": 3},
    "paper": {"iterations": 3000, "seeds": 10},
}
ALL_METHODS = ("jd", "ajd", "alt-bo", "alt-zo")
ALL_FUNCTIONS = tuple(FUNCTIONS)
PAPER_P_VALUES = (0.1, 0.3, 0.5, 0.7, 0.9)


def configurations(methods: Sequence[str], p_values: Sequence[float], mu: float, ajd_step_scale: float) -> list[Method]:
    """The method instances of the study: one per p for JD and AJD, one per baseline."""
    built = []
    for name in methods:
        check_choice("method", name, ALL_METHODS)
        if name == "jd":
            built += [make_method("jd", p=p) for p in p_values]
        elif name == "ajd":
            built += [make_method("ajd", p=p, mu=mu, step_scale=ajd_step_scale) for p in p_values]
        elif name == "alt-zo":
            built.append(make_method("alt-zo", mu=mu))
        else:
            built.append(make_method(name))
    return built


def run_study(
    scale: str = "cpu",
    functions: Sequence[str] = ALL_FUNCTIONS,
    methods: Sequence[str] = ALL_METHODS,
    p_values: Sequence[float] = PAPER_P_VALUES,
    iterations: int | None = None,
    seeds: int | None = None,
    mu: float = 1e-3,
    ajd_step_scale: float = 1.0,
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
      ajd_step_scale: AJD's step as a multiple of the paper's.
      device: ``auto``, ``cpu``, ``cuda:N`` or ``mps``.
      progress: show a progress bar over the runs.
    """
    check_scale(scale)
    iterations = check_count("iterations", DEFAULTS[scale]["iterations"] if iterations is None else iterations)
    seeds = check_count("seeds", DEFAULTS[scale]["seeds"] if seeds is None else seeds, minimum=1)
    for function in functions:
        check_choice("function", function, ALL_FUNCTIONS)
    for p in p_values:
        check_open_unit("p", p)
    torch_device = resolve_device(device)
    methods_list = configurations(methods, p_values, mu, ajd_step_scale)

    histories: list[History] = []
    total = len(functions) * seeds * len(methods_list)
    with tqdm(total=total, desc="runs", disable=not progress) as bar:
        for function in functions:
            for seed in range(seeds):
                problem = make_problem(function, seed=seed, device=torch_device)
                for method in methods_list:
                    bar.set_postfix_str(f"{function}, {method.label}, seed {seed}")
                    histories.append(run(method, problem, iterations, seed=seed))
                    bar.update()
    parameters = {
        "scale": scale, "functions": list(functions), "methods": list(methods), "p_values": list(p_values),
        "iterations": iterations, "seeds": seeds, "mu": mu, "ajd_step_scale": ajd_step_scale,
        "device": str(torch_device),
    }
    return StudyResult(histories, summarize(histories), parameters)


def summarize(histories: Sequence[History]) -> pd.DataFrame:
    """Per function, method and p: mean over seeds of the final and the best objective."""
    rows = [
        {
            "function": h.problem,
            "method": h.method,
            "p": h.config.get("p") if h.method in USES_P else None,
            "final": h.final_objective,
            "best": h.best_objective,
            "iterations": h.iterations,
            "diverged": h.status == "diverged",
        }
        for h in histories
    ]
    frame = pd.DataFrame(rows)
    keys = ["function", "method", "p"]
    summary = frame.groupby(keys, dropna=False, sort=False).agg(
        final=("final", "mean"), best=("best", "mean"), iterations=("iterations", "mean"),
        runs=("final", "size"), diverged=("diverged", "sum"),
    )
    return summary.reset_index()
