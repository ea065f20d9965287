"""Studies 06 and 07: hypergradient descent against lr-decay, each tuned on the paper's grids.

"Combining adaptive algorithms and hypergradient method" (ICLR 2019 submission) re-runs
Baydin et al.'s SGD-HD, SGDN-HD and Adam-HD against Wilson et al.'s fixed decay (halve the
rate every 25 epochs), with momentum 0.9, Adam (0.9, 0.999, 1e-8) and L2 1e-4, five runs per
configuration from the same initializations. Its protocol, which both studies follow:

1. **Tune.** Every method's alpha_0 runs over appendix A's grid; every HD method's
   (alpha_0, beta) over the product of its two grids (:data:`PAPER_GRIDS`,
   :data:`PAPER_HD_GRIDS`, :data:`PAPER_BETAS`). A configuration's score is section 4's
   "performance": the minimal training cross-entropy reached, averaged over the runs.
   Section 3 does not say how it picked its configurations; section 4's measure is the one
   the paper defines, and it selects on training data only (the paper's "validation" curves
   are the test set).
2. **Compare** the best configuration of each method over the seeds, mean and 95 % interval
   (study 06, Figures 1-3), beside HD at the setting Baydin et al. suggest (Figure 1).
3. **Sensitivity** (study 07, Figures 4-7): the same grid runs read as curves, best loss
   against alpha_0 / best alpha_0, for constant rates, lr-decay and HD (one curve per beta).

The two studies share one on-disk cache (:class:`hpolab.cache.StudyCache`, study
``hd_vs_decay``), keyed by the task's data, epochs and batch size: a run 07 needs that 06 has
done (same task, setting and seed) is read back, not trained again.

Scales (:data:`SIZES`, :func:`grids_for`): ``paper`` is the paper's setting (full MNIST,
200 epochs; VGG-16 of the Torch blog and ResNet-18 on CIFAR-10, 250 epochs; the full grids;
5 seeds everywhere). ``cpu`` keeps the MNIST MLP on 10 000 images and stands a small CNN on
the real CIFAR-10 subset in for VGG-16, for 3 epochs; it tunes on every other point of each
alpha_0 grid (the one holding Baydin et al.'s 1e-3) and on the three betas around the
paper's reported best ones and Baydin et al.'s, with one seed per grid point, then runs the
chosen configurations over 3 seeds; lr-decay keeps the paper's number of halvings (8 in 200
MNIST epochs, 10 in 250 CIFAR epochs) over the shorter run.
"""

from __future__ import annotations

from collections.abc import Sequence

from hpolab.data import cifar10_copy
from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.studies.common import StudyResult, saves_results
from hpolab.studies.hd_vs_decay_claims import CLAIMS  # noqa: F401  (the ledger reads a study's CLAIMS here)
from hpolab.studies.hd_vs_decay_panel import panel  # noqa: F401  (re-exported: the notebooks call panel here)
from hpolab.studies.hd_vs_decay_scores import TunedResult, chosen_settings, compare, sensitivity, tuning_table
from hpolab.studies.hd_vs_decay_setting import (
    BATCH_SIZE, LR_SCHEDULES, OPTIMIZERS, SEEDS, SENSITIVITY_SEEDS, SENSITIVITY_TASKS, STUDY_TASKS, TUNING_SEEDS, Grid,
    Setting, Trainer, _tasks, grid_settings, grids_for, suggested,
)
from hpolab.studies.hd_vs_decay_setting import settings_table  # noqa: F401  (re-exported: the notebooks' table)
from hpolab.studies.hd_vs_decay_tables import (  # noqa: F401  (re-exported: the notebooks call these here)
    best_configurations, comparison_table, figure_runs, grid_table,
)
from hpolab.validation import check_choice, check_count


def _group(trainer: Trainer, settings: Sequence[Setting], seeds: int, desc: str) -> dict[Setting, list[History]]:
    histories = trainer.run([(s, seed) for s in settings for seed in range(seeds)], desc=desc)
    return {s: histories[i * seeds:(i + 1) * seeds] for i, s in enumerate(settings)}


def _cifar10_copy(tasks: Sequence[str]) -> str | None:
    return cifar10_copy() if any(task.startswith("cifar") for task in tasks) else None


@saves_results
def run_study(scale: str = "cpu", tasks: Sequence[str] | None = None, optimizers: Sequence[str] = OPTIMIZERS,
              schedules: Sequence[str] = ("hd", "decay"), grids: Grid | None = None, epochs: int | None = None,
              tuning_seeds: int | None = None, seeds: int | None = None, batch_size: int = BATCH_SIZE,
              device: str = "cpu", cache: bool = True, progress: bool = True) -> TunedResult:
    """Study 06: tune every optimizer x schedule on the grids, then run the chosen
    configurations (and HD at Baydin et al.'s setting) over ``seeds`` seeds.

    Args:
      tasks: default the scale's (:data:`STUDY_TASKS`).
      schedules: of ``constant``, ``hd``, ``decay`` (the paper compares the last two).
      grids: default :func:`grids_for` the scale.
      epochs: default the scale's per task (:data:`SIZES`).
      tuning_seeds: runs per grid point (default :data:`TUNING_SEEDS`); seeds: runs per chosen
        configuration (default :data:`SEEDS`). The first ones are the tuning runs themselves.
      cache: keep and reuse finished runs under ``runs/cache/hd_vs_decay/``.
    """
    tasks = _tasks(scale, tasks, STUDY_TASKS)
    for name in optimizers:
        check_choice("optimizer", name, OPTIMIZERS)
    for schedule in schedules:
        check_choice("schedule", schedule, LR_SCHEDULES)
    grids = grids or grids_for(scale)
    tuning_seeds = check_count("tuning_seeds", tuning_seeds if tuning_seeds is not None else TUNING_SEEDS[scale], 1)
    seeds = check_count("seeds", seeds if seeds is not None else SEEDS[scale], 1)
    check_count("batch_size", batch_size, 1)
    trainer = Trainer(scale, resolve_device(device), epochs, batch_size, cache, progress)
    grid = [s for task in tasks for s in grid_settings(task, optimizers, schedules, grids)]
    tuning = tuning_table(grid, _group(trainer, grid, tuning_seeds, "tuning"))
    final = [("tuned", s) for s in chosen_settings(tuning)]
    if "hd" in schedules:
        final += [("suggested", Setting(task, name, "hd", *suggested(task, name))) for task in tasks for name in optimizers]
    compared = _group(trainer, list(dict.fromkeys(s for _, s in final)), seeds, "chosen")
    parameters = {"scale": scale, "tasks": tasks, "optimizers": list(optimizers), "schedules": list(schedules),
                  "grids": grids._asdict(), "epochs": {t: trainer.epochs_for(t) for t in tasks},
                  "tuning_seeds": tuning_seeds, "seeds": seeds, "batch_size": batch_size,
                  "device": str(trainer.device), "cifar10": _cifar10_copy(tasks)}
    return TunedResult(list(trainer.runs.values()), compare(final, compared), parameters, tuning=tuning)


@saves_results
def run_sensitivity(scale: str = "cpu", tasks: Sequence[str] | None = None, optimizers: Sequence[str] = OPTIMIZERS,
                    grids: Grid | None = None, epochs: int | None = None, seeds: int | None = None,
                    batch_size: int = BATCH_SIZE, device: str = "cpu", cache: bool = True,
                    progress: bool = True) -> StudyResult:
    """Study 07: every alpha_0 of the grid with a constant rate, lr-decay and HD for every
    beta, over ``seeds`` seeds (default :data:`SENSITIVITY_SEEDS`); the summary is
    :func:`sensitivity`'s table. Runs study 06 has done are read from the shared cache."""
    tasks = _tasks(scale, tasks, SENSITIVITY_TASKS)
    grids = grids or grids_for(scale)
    seeds = check_count("seeds", seeds if seeds is not None else SENSITIVITY_SEEDS[scale], 1)
    check_count("batch_size", batch_size, 1)
    trainer = Trainer(scale, resolve_device(device), epochs, batch_size, cache, progress)
    settings = [s for task in tasks for s in grid_settings(task, optimizers, LR_SCHEDULES, grids)]
    runs = _group(trainer, settings, seeds, "grid")
    parameters = {"scale": scale, "tasks": tasks, "optimizers": list(optimizers), "grids": grids._asdict(),
                  "epochs": {t: trainer.epochs_for(t) for t in tasks}, "seeds": seeds, "batch_size": batch_size,
                  "device": str(trainer.device), "cifar10": _cifar10_copy(tasks)}
    return StudyResult(list(trainer.runs.values()), sensitivity(settings, runs), parameters)
