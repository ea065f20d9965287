"""Study 13's tables and claims (local SGD: communication rounds against local steps), read off the
histories of :func:`hpolab.studies.local_sgd.run_study`."""

from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np
import pandas as pd

from hpolab import claims
from hpolab.history import History
from hpolab.tables import significant


CONVEX = ("a9a-logreg", "w8a-logreg")  # the tasks the claims are checked on
MARGIN = 1.25  # "reaches H = 1's level": f - f* at most 1.25 x where mini-batch SGD ends
SAME_RATE_FACTOR = 2.0  # "the same rate": f - f* within a constant factor 2 of mini-batch SGD's
EQUAL_TOLERANCE = 0.1  # "H = 1 is best or equal": at most 10 % above the best constant H


# --------------------------------------------------------------------------- tables


def measured(task: str) -> str:
    """The column a task is judged on: f - f* for logistic regression, the loss for the MLP."""
    return "objective" if task == "mnist-mlp" else "suboptimality"


def final_value(history: History, column: str, tail: float = 0.1) -> float:
    """Mean of ``column`` over the measurements in the last ``tail`` of the run's steps (one
    SGD measurement is noisy; a diverged run gives NaN)."""
    if history.status == "diverged":
        return math.nan
    frame = history.frame
    last = frame["step"].iloc[-1]
    return float(frame.loc[frame["step"] >= (1 - tail) * last, column].mean())


def value_at(history: History, column: str, x: str, at: float) -> float:
    """``column`` at the last measurement with ``x`` (``step`` or ``round``) at or before ``at``
    (NaN for a diverged run or before the first measurement)."""
    if history.status == "diverged":
        return math.nan
    rows = history.frame.loc[history.frame[x] <= at, column]
    return float(rows.iloc[-1]) if len(rows) else math.nan


def first_reach(history: History, column: str, target: float) -> tuple[float, float]:
    """(step, round) of the first measurement with ``column`` at or below ``target`` (NaNs if never)."""
    hit = history.frame.loc[history.frame[column] <= target]
    if not len(hit):
        return math.nan, math.nan
    return float(hit["step"].iloc[0]), float(hit["round"].iloc[0])


def is_constant(label: str) -> bool:
    return label.startswith("H=")


def period_of(label: str) -> int:
    """H of a constant period's label (``"H=16"`` -> 16)."""
    return int(label[2:])


def targets(histories: Sequence[History], margin: float = MARGIN) -> dict[str, dict[str, float]]:
    """Per task, two levels of the judged column (final values are means over seeds):

    * ``easy``: ``margin`` x the worst final value among the constant periods, a level every
      constant H reaches, so that rounds and steps to it compare all of them;
    * ``H=1``: ``margin`` x the final value of mini-batch SGD (H = 1), its quality.
    """
    found = {}
    for task in dict.fromkeys(h.problem for h in histories):
        finals: dict[str, list[float]] = {}
        for h in histories:
            if h.problem == task and is_constant(h.label):
                finals.setdefault(h.label, []).append(final_value(h, measured(task)))
        means = {label: _nanmean(v) for label, v in finals.items()}
        worst = max((v for v in means.values() if math.isfinite(v)), default=math.nan)
        found[task] = {"easy": margin * worst, "H=1": margin * means.get("H=1", math.nan)}
    return found


def _reach(runs: Sequence[History], column: str, target: float) -> tuple[float, float, int]:
    """Mean (step, round) of first reaching ``target`` over the runs that did, and how many did."""
    reach = np.array([first_reach(h, column, target) for h in runs])
    done = ~np.isnan(reach[:, 0])
    if not done.any():
        return math.nan, math.nan, 0
    return float(reach[done, 0].mean()), float(reach[done, 1].mean()), int(done.sum())


def summarize(histories: Sequence[History], margin: float = MARGIN) -> pd.DataFrame:
    """Per task and period or schedule (means over seeds): communication rounds, local steps
    per worker and minibatch gradients of all workers (P x steps), the final value (f - f*
    or loss, mean over the last 10 % of steps), test accuracy, and the rounds and local
    steps taken to reach each target of :func:`targets` (mean over the runs that reached
    it; ``reached`` counts the runs that reached mini-batch SGD's level)."""
    goal = targets(histories, margin)
    groups: dict[tuple[str, str], list[History]] = {}
    for h in histories:
        groups.setdefault((h.problem, h.label), []).append(h)
    rows = []
    for (task, label), runs in groups.items():
        column = measured(task)
        easy_steps, easy_rounds, _ = _reach(runs, column, goal[task]["easy"])
        best_steps, best_rounds, reached = _reach(runs, column, goal[task]["H=1"])
        rows.append({
            "task": task, "schedule": label,
            "rounds": float(np.mean([h.frame["round"].iloc[-1] for h in runs])),
            "steps": int(runs[0].frame["step"].iloc[-1]),
            "gradients": int(runs[0].frame["gradient_evaluations"].iloc[-1]),
            "final": _nanmean([final_value(h, column) for h in runs]),
            "test acc": float(np.mean([h.frame["test_accuracy"].iloc[-1] for h in runs])),
            "rounds to easy": easy_rounds, "steps to easy": easy_steps,
            "rounds to H=1 level": best_rounds, "steps to H=1 level": best_steps,
            "reached": f"{reached}/{len(runs)}",
            "diverged": sum(h.status == "diverged" for h in runs),
        })
    return pd.DataFrame(rows)


def target_table(histories: Sequence[History], margin: float = MARGIN) -> pd.DataFrame:
    """The targets of :func:`targets` per task, with the column they apply to."""
    return pd.DataFrame([{"task": task, "measured": measured(task), "easy": levels["easy"], "H=1 level": levels["H=1"]}
                         for task, levels in targets(histories, margin).items()])


def at_equal_rounds(histories: Sequence[History]) -> pd.DataFrame:
    """Per task and constant H: the judged column at the round budget of the largest H (the
    fewest rounds any constant H takes), mean over seeds. Columns: task, H, rounds, value."""
    rows = []
    for task in dict.fromkeys(h.problem for h in histories):
        runs = [h for h in histories if h.problem == task and is_constant(h.label)]
        if not runs:
            continue
        budget = min(float(h.frame["round"].iloc[-1]) for h in runs)
        for label in sorted({h.label for h in runs}, key=period_of):
            values = [value_at(h, measured(task), "round", budget) for h in runs if h.label == label]
            rows.append({"task": task, "H": period_of(label), "rounds": budget, "value": _mean(values)})
    return pd.DataFrame(rows, columns=["task", "H", "rounds", "value"])


def _nanmean(values) -> float:
    """The mean over the finite values (the seeds that did not diverge), NaN if none."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else math.nan


def _mean(values) -> float:
    """The mean, NaN if any value is NaN (a diverged run must not vanish from a comparison)."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()) if len(values) else math.nan


# --------------------------------------------------------------------------- claims


def _fmt(value: float) -> str:
    return "never" if not math.isfinite(value) else f"{significant(float(value)):g}"


def _convex_tasks(result) -> list[str]:
    return [task for task in dict.fromkeys(h.problem for h in result.histories) if task in CONVEX]


def _finals(result, task: str) -> dict[str, float]:
    """Mean final value over seeds per label of ``task`` (NaN if any seed diverged)."""
    labels: dict[str, list[float]] = {}
    for h in result.histories:
        if h.problem == task:
            labels.setdefault(h.label, []).append(final_value(h, measured(task)))
    return {label: _mean(v) for label, v in labels.items()}


def _constants(labels) -> list[str]:
    return sorted((label for label in labels if is_constant(label)), key=period_of)


def check_fewer_rounds(result) -> claims.Verdict:
    """Per convex task, the value at the round budget of the largest H falls strictly as H grows."""
    tasks = _convex_tasks(result)
    table = at_equal_rounds([h for h in result.histories if h.problem in tasks])
    if table.empty or table.groupby("task").size().min() < 2:
        return claims.untestable("needs a logistic-regression task with at least two constant periods")
    parts, ok = [], True
    for task, rows in table.groupby("task", sort=False):
        values = rows["value"].to_numpy()
        ok &= bool(np.all(np.diff(values) < 0))
        parts.append(f"{task}, f - f* after {int(rows['rounds'].iloc[0])} rounds: "
                     + ", ".join(f"H={h} {_fmt(v)}" for h, v in zip(rows["H"], values)))
    return claims.verdict(ok, "; ".join(parts))


def _setting(result, task: str) -> tuple[int, int, int]:
    """(T local steps, P, b) of ``task``'s runs."""
    run = next(h for h in result.histories if h.problem == task)
    return int(run.frame["step"].iloc[-1]), int(run.config["workers"]), int(run.config["batch_size"])


def check_same_rate(result) -> claims.Verdict:
    """Per convex task, every constant 1 < H <= sqrt(T / (P b)) ends within
    :data:`SAME_RATE_FACTOR` of mini-batch SGD's f - f* after the same T local steps."""
    parts, ok, tested = [], True, False
    for task in _convex_tasks(result):
        finals = _finals(result, task)
        steps, workers, batch = _setting(result, task)
        limit = math.sqrt(steps / (workers * batch))
        inside = [c for c in _constants(finals) if 1 < period_of(c) <= limit]
        if "H=1" not in finals or not inside:
            continue
        tested = True
        ratios = {c: finals[c] / finals["H=1"] for c in inside}
        ok &= all(r <= SAME_RATE_FACTOR for r in ratios.values())  # NaN compares false
        parts.append(f"{task}, T = {steps}, P = {workers}, b = {batch}, sqrt(T/(P b)) = {_fmt(limit)}: final f - f* "
                     f"H=1 {_fmt(finals['H=1'])}, " + ", ".join(f"{c} {_fmt(finals[c])} ({_fmt(r)}x)"
                                                             for c, r in ratios.items()))
    if not tested:
        return claims.untestable("needs a logistic-regression task with H = 1 and a constant 1 < H <= sqrt(T/(P b))")
    return claims.verdict(ok, "; ".join(parts) + f" (same rate: within {SAME_RATE_FACTOR:g}x)")


def check_minibatch_best(result) -> claims.Verdict:
    """Per convex task, H = 1's final f - f* is at most (1 + :data:`EQUAL_TOLERANCE`) x the
    lowest final value of any constant H."""
    parts, ok, tested = [], True, False
    for task in _convex_tasks(result):
        finals = _finals(result, task)
        constants = _constants(finals)
        if "H=1" not in finals or len(constants) < 2:
            continue
        tested = True
        best = min(constants, key=lambda c: finals[c] if math.isfinite(finals[c]) else math.inf)
        ok &= finals["H=1"] <= (1 + EQUAL_TOLERANCE) * finals[best]
        parts.append(f"{task}, final f - f* after the same local steps: "
                     + ", ".join(f"{c} {_fmt(finals[c])}" for c in constants) + f" (lowest: {best})")
    if not tested:
        return claims.untestable("needs a logistic-regression task with H = 1 and another constant H")
    return claims.verdict(ok, "; ".join(parts) + f" (equal: within {EQUAL_TOLERANCE:.0%})")


def _rounds_to_level(result, task: str) -> tuple[float, dict[str, tuple[float, int, int]]]:
    """H = 1's level (MARGIN x its final value) and, per label, (mean rounds to reach it over
    the runs that did, how many did, how many runs)."""
    level = MARGIN * _finals(result, task).get("H=1", math.nan)
    reach = {}
    for label in dict.fromkeys(h.label for h in result.histories if h.problem == task):
        runs = [h for h in result.histories if h.problem == task and h.label == label]
        _, rounds, reached = _reach(runs, measured(task), level)
        reach[label] = (rounds, reached, len(runs))
    return level, reach


GROWING = "growing H=r+1"


def check_growing_saves_rounds(result, against_all: bool = False) -> claims.Verdict:
    """Per convex task, the ``growing`` schedule reaches H = 1's level in every seed, in fewer
    rounds than H = 1 (``against_all``: than every constant H that reaches it in every seed)."""
    parts, ok, tested = [], True, False
    for task in _convex_tasks(result):
        level, reach = _rounds_to_level(result, task)
        if GROWING not in reach or "H=1" not in reach:
            continue
        tested = True
        rounds, reached, runs = reach[GROWING]
        rivals = [c for c in _constants(reach) if reach[c][1] == reach[c][2]] if against_all else ["H=1"]
        fewest = min((reach[c][0] for c in rivals), default=math.inf)
        ok &= reached == runs and rounds < fewest
        parts.append(f"{task}, level f - f* <= {_fmt(level)} ({MARGIN:g} x H=1's final): growing reaches it in "
                     f"{reached}/{runs} runs after {_fmt(rounds)} rounds; "
                     + ", ".join(f"{c} {_fmt(reach[c][0])} ({reach[c][1]}/{reach[c][2]})" for c in _constants(reach)))
    if not tested:
        return claims.untestable("needs a logistic-regression task with H = 1 and the growing schedule")
    return claims.verdict(ok, "; ".join(parts))


def check_delay_affordable_late(result, early: float = 0.1) -> claims.Verdict:
    """Per convex task, the largest constant H's excess over mini-batch SGD, the ratio of their
    f - f* at the same local step, is smaller at the end of the run than at ``early`` x T (or
    after the largest H's first average, if later)."""
    parts, ok, tested = [], True, False
    for task in _convex_tasks(result):
        labels = _constants({h.label for h in result.histories if h.problem == task})
        if "H=1" not in labels or len(labels) < 2:
            continue
        tested = True
        steps, _, _ = _setting(result, task)
        largest = labels[-1]

        def mean_at(label, step, task=task):
            return _mean([value_at(h, measured(task), "step", step) for h in result.histories
                          if h.problem == task and h.label == label])

        first = max(int(early * steps), period_of(largest))  # after the largest H's first average
        ratio_early = mean_at(largest, first) / mean_at("H=1", first)
        ratio_late = mean_at(largest, steps) / mean_at("H=1", steps)
        ok &= ratio_late < ratio_early
        parts.append(f"{task}: f - f* of {largest} / of H=1 at step {first}: {_fmt(ratio_early)}, "
                     f"at step {steps}: {_fmt(ratio_late)}")
    if not tested:
        return claims.untestable("needs a logistic-regression task with H = 1 and a larger constant H")
    return claims.verdict(ok, "; ".join(parts))


NOTEBOOK = "13_local_sgd"
CLAIMS = [
    claims.Claim(
        "larger-h-fewer-rounds", NOTEBOOK,
        "Local SGD communicates little: for the same number of communication rounds, a larger number of local "
        "steps H between averages reaches a lower loss (logistic regression)",
        "Stich, Local SGD Converges Fast and Communicates Little (notes); Patel & Dieuleveut",
        check_fewer_rounds),
    claims.Claim(
        "same-rate-as-minibatch-sgd", NOTEBOOK,
        "For the finite-sum convex setting local SGD converges at the same rate as mini-batch SGD (per gradient), "
        "for H up to order sqrt(T / (P b))",
        "Stich, Local SGD Converges Fast and Communicates Little (notes; abstract)",
        check_same_rate),
    claims.Claim(
        "minibatch-sgd-best-per-step", NOTEBOOK,
        "Averaging parameters after one step is mini-batch SGD; after the same number of local steps, H = 1 "
        "reaches the lowest loss or an equal one (local SGD matches, not beats, mini-batch SGD's rate)",
        "Stich (notes): same for one step, different for several",
        check_minibatch_best),
    claims.Claim(
        "growing-period-saves-rounds", NOTEBOOK,
        "For logistic regression you can reduce communication frequency as you get closer to the solution: a "
        "period growing with the communication index reaches mini-batch SGD's loss with fewer rounds",
        "Patel & Dieuleveut, Communication trade-offs for synchronized distributed SGD with large step size (notes)",
        check_growing_saves_rounds),
    claims.Claim(
        "growing-period-beats-constant", NOTEBOOK,
        "The allowable delay grows as the run nears the solution, so a growing period reaches mini-batch SGD's "
        "loss with fewer rounds than any constant period that reaches it",
        "Patel & Dieuleveut (notes: the allowable delay grows in inverse proportion to distance to the result)",
        functools.partial(check_growing_saves_rounds, against_all=True)),
    claims.Claim(
        "delay-affordable-near-solution", NOTEBOOK,
        "The allowable delay grows as the iterates approach the solution: a fixed large H costs less, relative "
        "to mini-batch SGD, near the end of the run than early on",
        "Patel & Dieuleveut (notes); the large steps gamma_0 t^-alpha, alpha in (1/2, 1)",
        check_delay_affordable_late),
]
