"""Study 01: Joint Descent on the (ill-conditioned) sphere, Figures 1 and 2 of the JD paper.

JD and AJD for each gradient-step probability p, and the two alternating baselines, on the
randomly rotated and shifted sphere and ill-conditioned sphere (nx = 30, ny = 32), each
run repeated over seeds; seed s draws problem instance s and start point s, so every
method of a seed faces the same problem from the same start.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
from hpolab.progress import progress_bar

from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.methods import USES_P, make_method
from hpolab.problems import FUNCTIONS, make_problem
from hpolab.protocol import Method
from hpolab.runner import run
from hpolab.studies.common import StudyResult, check_scale
from hpolab.tables import significant
from hpolab.validation import check_choice, check_count, check_open_unit

DEFAULTS = {  # per scale: evaluation budget per run, number of seeds
    "smoke": {"iterations": 60, "seeds": 1},
    "cpu": {"iterations": 1000, "seeds": 3},
    "paper": {"iterations": 3000, "seeds": 10},
}
ALL_METHODS = ("jd", "ajd", "alt-bo", "alt-zo")
ALL_FUNCTIONS = tuple(FUNCTIONS)
PAPER_P_VALUES = (0.1, 0.3, 0.5, 0.7, 0.9)


VARIANT_NAMES = {"jd": "JD", "ajd": "AJD", "alt-bo": "Alternating BO", "alt-zo": "Alternating ZO"}


def variant(history: History) -> str:
    """The method without its p: ``"JD"``, ``"AJD"``, ``"AJD step x4"``, ``"Alternating BO"``."""
    name = VARIANT_NAMES.get(history.method, history.method)
    scale = history.config.get("step_scale", 1.0)
    return name if scale == 1.0 else f"{name} step x{scale:g}"


def configurations(methods: Sequence[str], p_values: Sequence[float], mu: float,
                   ajd_step_scales: Sequence[float] = (1.0,)) -> list[Method]:
    """The method instances of the study: one per p for JD, one per p and step scale for
    AJD, one per alternating baseline."""
    built = []
    for name in methods:
        check_choice("method", name, ALL_METHODS)
        if name == "jd":
            built += [make_method("jd", p=p) for p in p_values]
        elif name == "ajd":
            built += [make_method("ajd", p=p, mu=mu, step_scale=s) for s in ajd_step_scales for p in p_values]
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
    ajd_step_scales: Sequence[float] = (1.0,),
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
      ajd_step_scales: AJD's steps as multiples of the paper's (1.0 is the paper's).
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
    methods_list = configurations(methods, p_values, mu, ajd_step_scales)

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
        "iterations": iterations, "seeds": seeds, "mu": mu, "ajd_step_scales": list(ajd_step_scales),
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


def run_one(
    function: str = "sphere",
    method: str = "jd",
    p: float = 0.5,
    mu: float = 1e-3,
    ajd_step_scale: float = 1.0,
    iterations: int = 1000,
    seed: int = 0,
    device: str = "cpu",
    callback=None,
    should_stop=None,
) -> History:
    """One run of the study (what the widget panel's Run button calls)."""
    check_choice("method", method, ALL_METHODS)
    (built,) = configurations([method], [p], mu, [ajd_step_scale])
    problem = make_problem(function, seed=seed, device=resolve_device(device))
    return run(built, problem, iterations, seed=seed, callback=callback, should_stop=should_stop)


def panel(values: dict | None = None, **overrides):
    """The study's widget panel, built from the notebook's parameters (``globals()``) and
    ``overrides``: method, p, mu, iterations, seed, device, function and AJD step."""
    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    function = values.get("function") or (values.get("functions") or ["sphere"])[0]
    extra = {
        "function": w.Dropdown(options=list(ALL_FUNCTIONS), value=function, description="function"),
        "ajd_step_scale": w.BoundedFloatText(value=float(values.get("ajd_step_scale") or
                                                         (values.get("ajd_step_scales") or [1.0])[0]),
                                             min=0.1, max=100.0, step=0.5, description="AJD step x"),
    }
    methods = {"JD": "jd", "AJD": "ajd", "Alternating BO": "alt-bo", "Alternating ZO": "alt-zo"}
    uses = {"jd": {"p"}, "ajd": {"p", "mu", "ajd_step_scale"}, "alt-zo": {"mu"}, "alt-bo": set()}
    return panel_for(run_one, methods, uses, values, extra)


def _mean_best(histories: Sequence[History], name: str, p: float | None = None) -> float:
    values = [h.best_objective for h in histories if variant(h) == name and (p is None or h.config.get("p") == p)]
    return sum(values) / len(values) if values else float("nan")


def _best_at(history: History, iteration: int) -> float:
    frame = history.frame
    return float(frame.loc[frame["iteration"] <= iteration, "best_objective"].iloc[-1])


def _fmt(value: float) -> str:
    return f"{significant(value):g}"


def findings(result: StudyResult) -> list[str]:
    """The paper's three claims checked on this study's histories, one sentence each.

    1. p ~ 0.5 is the best gradient probability, for JD and for AJD;
    2. AJD beats JD;
    3. JD reaches a better value before an alternating method picks its second y.
    """
    lines = []
    by_function: dict[str, list[History]] = {}
    for history in result.histories:
        by_function.setdefault(history.problem, []).append(history)
    for function, histories in by_function.items():
        names = list(dict.fromkeys(variant(h) for h in histories if h.method in USES_P))
        for name in names:
            ps = sorted({h.config["p"] for h in histories if variant(h) == name})
            scores = {p: _mean_best(histories, name, p) for p in ps}
            best_p = min(scores, key=scores.get)
            ranking = ", ".join(f"p={p:g}: {_fmt(scores[p])}" for p in ps)
            lines.append(f"{function}, {name}: best p = {best_p:g} (mean best objective {ranking})")
        for name in (n for n in names if n.startswith("AJD")):
            lines.append(_compare(function, histories, name, "JD"))
        lines += _before_second_y(function, histories)
    return lines


def _compare(function: str, histories: Sequence[History], challenger: str, reference: str) -> str:
    """Challenger against reference at p = 0.5 and each at its own best p."""
    def scores(name):
        return {h.config["p"]: _mean_best(histories, name, h.config["p"]) for h in histories if variant(h) == name}

    ours, theirs = scores(challenger), scores(reference)
    best_ours, best_theirs = min(ours, key=ours.get), min(theirs, key=theirs.get)
    half = ""
    if 0.5 in ours and 0.5 in theirs:
        word = "beats" if ours[0.5] < theirs[0.5] else "loses to"
        half = f"at p=0.5 {challenger} {word} {reference} ({_fmt(ours[0.5])} vs {_fmt(theirs[0.5])}); "
    word = "beats" if ours[best_ours] < theirs[best_theirs] else "loses to"
    return (f"{function}: {half}each at its best p, {challenger} (p={best_ours:g}, {_fmt(ours[best_ours])}) "
            f"{word} {reference} (p={best_theirs:g}, {_fmt(theirs[best_theirs])})")


def _before_second_y(function: str, histories: Sequence[History]) -> list[str]:
    """JD (p = 0.5) against each alternating baseline at the iteration where the baseline
    finishes its first training and picks its second y."""
    lines = []
    jd_runs = {h.seed: h for h in histories if variant(h) == "JD" and h.config["p"] == 0.5}
    for baseline in ("Alternating BO", "Alternating ZO"):
        compared = []
        for h in histories:
            tuned = h.frame.index[h.frame["kind"] == "tune"]
            if variant(h) == baseline and len(tuned) and h.seed in jd_runs:
                at = int(h.frame.loc[tuned[0], "iteration"])
                compared.append((at, _best_at(jd_runs[h.seed], at), _best_at(h, at)))
        if not compared:
            continue
        end_jd = _mean_best(histories, "JD", 0.5)
        end_baseline = _mean_best(histories, baseline)
        n = len(compared)
        wins = sum(j < b for _, j, b in compared)
        lines.append(
            f"{function}, JD p=0.5 vs {baseline}: when {baseline} picks its second y (iteration "
            f"{sum(a for a, _, _ in compared) / n:.0f} on average), JD is better in {wins} of {n} seeds "
            f"(best objective so far: JD {_fmt(sum(j for _, j, _ in compared) / n)}, "
            f"{baseline} {_fmt(sum(b for _, _, b in compared) / n)}); at the end of the budget: "
            f"JD {_fmt(end_jd)}, {baseline} {_fmt(end_baseline)}"
        )
    return lines
