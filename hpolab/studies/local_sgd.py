"""Study 13: local SGD, communication rounds against local steps.

P simulated workers each take H local SGD steps on their own iid shard between parameter
averages (:mod:`hpolab.methods.local_sgd`). For several constant periods H (H = 1 is mini-batch
SGD with batch P b) and two growing schedules, the study records the training objective
of the averaged model against local steps per worker (parallel steps) and against
communication rounds, on l2-regularized logistic regression (LIBSVM a9a, w8a; the
optimum f* computed by L-BFGS, so the objective is shown as f - f*) and on a small MLP
(MNIST). Every configuration of a seed starts from the same weights and sees the same
shards and minibatch streams, so configurations differ only in when they average.

The setting follows the notes (``../shared/papers/iclr-optimization-notes.txt``) where they
give one: P workers, batch size 1 per worker ("workers use batch_size=1"), logistic
regression with a strong-convexity term (lambda = 1e-4). Patel & Dieuleveut's large steps
gamma_t = gamma_0 t^-alpha take alpha in (1/2, 1) (their abstract); the notes give no value, so
the study takes the middle, alpha = 3/4. gamma_0 is not given either: :func:`lr_sweep` runs
mini-batch SGD (H = 1, seed 0) over a grid of gamma_0 and every configuration then uses the
one with the lowest final objective (tuning the baseline, never a local-SGD run).

The growing schedules:

* ``growing``: H_r = 1 + r after r rounds (uncapped): the number of local steps after the
  r-th communication grows with r, as in Patel & Dieuleveut; T steps take about sqrt(2 T)
  rounds. Since t ~ r^2 / 2 steps are done after r rounds, H grows as sqrt(2 t): inversely
  to the distance to the solution when that distance falls as t^-1/2.
* ``plateau`` (ours, not the paper's): start at H = 1 and double H whenever the workers' mean
  minibatch loss over the last ``window`` steps fell by less than 1 % against the window
  before (capped at the largest constant H): "H grows as the run nears its solution",
  measured rather than scheduled.

The claims (:data:`CLAIMS`) are checked on the logistic-regression tasks only: Stich's rates
and Patel & Dieuleveut's communication bounds are proved for convex (logistic) losses. The
MLP shows the same curves beyond the papers' setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Sequence

import numpy as np
import pandas as pd

from hpolab.devices import resolve_device
from hpolab.progress import progress_bar
from hpolab.studies.common import StudyResult, check_scale, saves_results
from hpolab.studies.local_sgd_claims import final_value, measured, summarize
from hpolab.studies.local_sgd_claims import CLAIMS  # noqa: F401  (the claims every run checks)
from hpolab.studies.local_sgd_claims import at_equal_rounds, target_table, targets  # noqa: F401  (the notebook's tables)
from hpolab.studies.local_sgd_figures import (  # noqa: F401  (re-exported: the notebook calls local_sgd.loss_figure)
    AXIS_TITLES, loss_figure, period_figure,
)
from hpolab.studies.local_sgd_panel import panel  # noqa: F401  (the notebook calls it)
from hpolab.studies.local_sgd_tasks import (
    BATCH_SIZE,
    LR_DECAY,
    LR_GRIDS,
    PERIOD_SCHEDULES,
    TASKS,
    _sizes,
    round_budgets,
    run_task,
    schedule_for,
)
from hpolab.validation import check_choice, check_count, check_positive


def lr_sweep(task: str, grid: Sequence[float] | None = None, *, scale: str = "cpu", workers: int = 16,
             batch_size: int = BATCH_SIZE, lr_decay: float = LR_DECAY, steps: int | None = None,
             device: str = "cpu") -> pd.DataFrame:
    """Mini-batch SGD (H = 1, seed 0) for every gamma_0 of ``grid`` (default: the task's
    :data:`LR_GRIDS`): its final value (f - f* or loss, mean over the last 10 % of steps; NaN if
    it diverged) and which gamma_0 the study takes (the lowest final value)."""
    grid = LR_GRIDS[check_choice("task", task, TASKS)] if grid is None else grid
    rows = []
    for lr in grid:
        history = run_task(task, 1, scale=scale, workers=workers, batch_size=batch_size, lr=float(lr),
                           lr_decay=lr_decay, steps=steps, device=device, evaluations=20)
        rows.append({"task": task, "lr": float(lr), "final": final_value(history, measured(task)),
                     "status": history.status})
    table = pd.DataFrame(rows)
    finals = table["final"].where(np.isfinite(table["final"]), np.inf)
    if not np.isfinite(finals).any():
        raise ValueError(f"every gamma_0 of the grid {list(grid)} diverged on {task}: give learning_rates")
    table["chosen"] = table.index == int(np.argmin(finals.to_numpy()))
    return table


@dataclass
class LocalSGDResult(StudyResult):
    """The study's histories and summary, and the gamma_0 sweep behind its step sizes."""

    lr_sweep: pd.DataFrame = field(default_factory=pd.DataFrame)
    tables: ClassVar[dict[str, str]] = {"lr_sweep": "lr_sweep"}


@saves_results
def run_study(scale: str = "cpu", tasks: Sequence[str] = ("a9a-logreg", "mnist-mlp"),
              periods: Sequence[int] = (1, 4, 16, 64), schedules: Sequence[str] = PERIOD_SCHEDULES,
              workers: int = 16, batch_size: int = BATCH_SIZE, learning_rates: dict | None = None,
              lr_decay: float = LR_DECAY, steps: int | None = None, seeds: int | None = None, device: str = "cpu",
              progress: bool = True) -> LocalSGDResult:
    """Every task x (constant H, growing schedules) x seed; one History per run.

    Args:
      learning_rates: gamma_0 per task; a task missing here gets the best of :func:`lr_sweep`.
      lr_decay: alpha of gamma_t = gamma_0 t^-alpha (Patel & Dieuleveut: in (1/2, 1)).
    """
    check_scale(scale)
    check_count("workers", workers, minimum=1)
    check_count("batch_size", batch_size, minimum=1)
    for h in periods:
        check_count("H", h, minimum=1)
    for name in schedules:
        check_choice("schedule", name, PERIOD_SCHEDULES)
    for task in tasks:
        check_choice("task", task, TASKS)
    given = dict(learning_rates or {})
    plan = []
    for task in tasks:
        _, _, default_steps, default_seeds = _sizes(scale, task)
        task_steps = check_count("steps", steps or default_steps, minimum=1)
        task_seeds = check_count("seeds", seeds or default_seeds, minimum=1)
        plan += [(task, c, task_steps, seed) for c in [*periods, *schedules] for seed in range(task_seeds)]
    sweeps, chosen = [], {}
    for task in tasks:
        if task in given:
            chosen[task] = check_positive("lr", float(given[task]))
            continue
        table = lr_sweep(task, scale=scale, workers=workers, batch_size=batch_size, lr_decay=lr_decay,
                         steps=steps, device=device)
        sweeps.append(table)
        chosen[task] = float(table.loc[table["chosen"], "lr"].iloc[0])
    histories = []
    with progress_bar(total=len(plan), desc="runs", disable=not progress) as bar:
        for task, configuration, task_steps, seed in plan:
            schedule = schedule_for(configuration, periods)
            bar.set_postfix_str(f"{task}, {schedule.label}, seed {seed}", refresh=False)
            histories.append(run_task(task, schedule, scale=scale, workers=workers, batch_size=batch_size,
                                      lr=chosen[task], lr_decay=lr_decay, steps=task_steps, seed=seed,
                                      device=device, measure_rounds=round_budgets(task_steps, periods)))
            bar.update()
    parameters = {"scale": scale, "tasks": list(tasks), "periods": list(periods), "schedules": list(schedules),
                  "workers": workers, "batch_size": batch_size, "learning_rates": chosen,
                  "learning_rates_given": given, "lr_decay": lr_decay, "steps": steps, "seeds": seeds,
                  "device": str(resolve_device(device))}
    sweep = pd.concat(sweeps, ignore_index=True) if sweeps else pd.DataFrame(
        columns=["task", "lr", "final", "status", "chosen"])
    return LocalSGDResult(histories, summarize(histories), parameters, sweep)
