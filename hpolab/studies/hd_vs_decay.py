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

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from hpolab.cache import StudyCache
from hpolab.data import as_tensors, cifar10_copy, load_cifar10, load_mnist, require_full_cifar10
from hpolab.devices import resolve_device
from hpolab.models import cifar_resnet18, mnist_mlp, small_cnn, torch_blog_vgg16
from hpolab.history import History
from hpolab.optim import SGDHD, AdamHD
from hpolab.progress import progress_bar
from hpolab.studies.common import StudyResult, check_scale
from hpolab.studies.hd_vs_decay_claims import CLAIMS  # noqa: F401  (the ledger reads a study's CLAIMS here)
from hpolab.training import fit
from hpolab.validation import check_choice, check_count
from hpolab.seeding import global_seed

OPTIMIZERS = ("sgd", "sgdn", "adam")
LR_SCHEDULES = ("constant", "hd", "decay")
TASKS = ("mnist-mlp", "cifar-cnn", "cifar-vgg16", "cifar-resnet18")
NAMES = {"sgd": "SGD", "sgdn": "SGDN", "adam": "Adam"}
SUFFIX = {"constant": "", "hd": "-HD", "decay": "-decay"}
CACHE = "hd_vs_decay"  # one cache for studies 06 and 07

# Section 3.1.
WEIGHT_DECAY = 1e-4
MOMENTUM = 0.9
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
# The paper gives no batch size; it re-runs Baydin et al.'s code, whose default is 128.
BATCH_SIZE = 128
# Section 2.2: "the stepsize is divided by 2 every 25 epochs", over 200 (MNIST) / 250 (CIFAR).
DECAY_EVERY = 25
PAPER_EPOCHS = {"mnist-mlp": 200, "cifar-cnn": 250, "cifar-vgg16": 250, "cifar-resnet18": 250}

# Appendix A. alpha_0 of constant rates and lr-decay, alpha_0 and beta of HD.
PAPER_GRIDS = {
    "sgd": [1e-5, 1e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0],
    "sgdn": [1e-5, 1e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0],
    "adam": [1e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.1, 1.0],
}
PAPER_HD_GRIDS = {**PAPER_GRIDS, "adam": [1e-6, 1e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01]}
PAPER_BETAS = {"sgd": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2], "sgdn": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2],
               "adam": [1e-8, 1e-7, 1e-6, 1e-5, 1e-4]}


def _every_other_with(values: list[float], keep: float) -> list[float]:
    """Every other grid point, starting so that ``keep`` is among them."""
    return values[values.index(keep) % 2::2]


# cpu: every other alpha_0 (the half holding 1e-3, Baydin et al.'s alpha_0); the betas around
# the paper's tuned ones (1e-4 / 1e-5 for SGD(N)-HD, 1e-7 for Adam-HD) and Baydin's (1e-3, 1e-7 / 1e-8).
CPU_GRIDS = {name: _every_other_with(grid, 1e-3) for name, grid in PAPER_GRIDS.items()}
CPU_HD_GRIDS = {name: _every_other_with(grid, 1e-3) for name, grid in PAPER_HD_GRIDS.items()}
CPU_BETAS = {"sgd": [1e-5, 1e-4, 1e-3], "sgdn": [1e-5, 1e-4, 1e-3], "adam": [1e-8, 1e-7, 1e-6]}
SMOKE_GRIDS = {"sgd": [1e-3, 0.1], "sgdn": [1e-3, 0.1], "adam": [1e-4, 1e-3]}
SMOKE_HD_GRIDS = {"sgd": [1e-3], "sgdn": [1e-3], "adam": [1e-3]}
SMOKE_BETAS = {"sgd": [1e-3], "sgdn": [1e-3], "adam": [1e-7]}

# Baydin et al.'s suggested (alpha_0, beta): the solid lines of Figure 1 (their code's MLP and
# VGG settings; ResNet-18 and the CNN stand-in take the CIFAR one).
SUGGESTED = {"sgd": (1e-3, 1e-3), "sgdn": (1e-3, 1e-3), "adam": (1e-3, 1e-7)}
SUGGESTED_CIFAR = {**SUGGESTED, "adam": (1e-3, 1e-8)}

# Per scale and task: training examples (None: all), test examples, epochs.
SIZES = {
    "smoke": {"mnist-mlp": (512, 256, 1), "cifar-cnn": (256, 128, 1)},
    "cpu": {"mnist-mlp": (10_000, 2_000, 3), "cifar-cnn": (None, None, 2)},
    "paper": {"mnist-mlp": (None, None, 200), "cifar-vgg16": (None, None, 250), "cifar-resnet18": (None, None, 250)},
}
TUNING_SEEDS = {"smoke": 1, "cpu": 1, "paper": 5}  # runs per grid point
SEEDS = {"smoke": 2, "cpu": 3, "paper": 5}  # runs per chosen configuration (06) and per grid point (07)
SENSITIVITY_SEEDS = {"smoke": 1, "cpu": 3, "paper": 5}
RECORDS_PER_EPOCH = {"smoke": 2, "cpu": 2, "paper": 1}  # the paper logs once per epoch
STUDY_TASKS = {"smoke": ["mnist-mlp", "cifar-cnn"], "cpu": ["mnist-mlp", "cifar-cnn"],
               "paper": ["mnist-mlp", "cifar-vgg16", "cifar-resnet18"]}
SENSITIVITY_TASKS = {"smoke": ["cifar-cnn"], "cpu": ["cifar-cnn"], "paper": ["cifar-vgg16", "cifar-resnet18"]}


class Grid(NamedTuple):
    """The values tuned: alpha_0 for constant rates and lr-decay, alpha_0 and beta for HD."""

    alphas: dict
    hd_alphas: dict
    betas: dict


def grids_for(scale: str) -> Grid:
    check_scale(scale)
    return {"smoke": Grid(SMOKE_GRIDS, SMOKE_HD_GRIDS, SMOKE_BETAS), "cpu": Grid(CPU_GRIDS, CPU_HD_GRIDS, CPU_BETAS),
            "paper": Grid(PAPER_GRIDS, PAPER_HD_GRIDS, PAPER_BETAS)}[scale]


def suggested(task: str, optimizer: str) -> tuple[float, float]:
    """Baydin et al.'s (alpha_0, beta) for ``optimizer``-HD on ``task``."""
    return (SUGGESTED_CIFAR if task.startswith("cifar") else SUGGESTED)[optimizer]


# ---------------------------------------------------------------------------------------------
# Models and data


MODELS = {"mnist-mlp": mnist_mlp, "cifar-cnn": small_cnn, "cifar-vgg16": torch_blog_vgg16, "cifar-resnet18": cifar_resnet18}


@functools.lru_cache(maxsize=4)
def load_task_data(task: str, n_train: int | None, n_test: int | None, device):
    """(train, test) tensors for a task, normalized per channel with the training statistics."""
    if task == "mnist-mlp":
        train, test = load_mnist(train=True), load_mnist(train=False)
    else:
        train, test = load_cifar10(train=True), load_cifar10(train=False)
    x_train, y_train = as_tensors(train, limit=n_train, device=device)
    x_test, y_test = as_tensors(test, limit=n_test, device=device)
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True)
    return ((x_train - mean) / std, y_train), ((x_test - mean) / std, y_test)


# ---------------------------------------------------------------------------------------------
# One training run


def make_optimizer(name: str, schedule: str, params, lr: float, hypergrad_lr: float, decay_steps: int):
    """The optimizer (HD's printed rule, the rate free to go negative, when ``schedule`` is
    ``"hd"``) and, for lr-decay, torch's StepLR halving the rate every ``decay_steps``."""
    check_choice("optimizer", name, OPTIMIZERS)
    check_choice("schedule", schedule, LR_SCHEDULES)
    beta = hypergrad_lr if schedule == "hd" else 0.0
    if name == "adam":
        optimizer = AdamHD(params, lr=lr, hypergrad_lr=beta, betas=ADAM_BETAS, eps=ADAM_EPS,
                           weight_decay=WEIGHT_DECAY, nonnegative=False)
    else:
        momentum = MOMENTUM if name == "sgdn" else 0.0
        optimizer = SGDHD(params, lr=lr, hypergrad_lr=beta, momentum=momentum, nesterov=name == "sgdn",
                          weight_decay=WEIGHT_DECAY, nonnegative=False)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, decay_steps, gamma=0.5) if schedule == "decay" else None
    return optimizer, scheduler


def decay_epochs(task: str, epochs: int) -> float:
    """Epochs between halvings: 25 at the paper's length, the same number of halvings over a
    shorter (or longer) run."""
    return DECAY_EVERY * epochs / PAPER_EPOCHS[task]


@dataclass(frozen=True)
class Setting:
    """One training configuration."""

    task: str
    optimizer: str
    schedule: str
    lr: float
    hypergrad_lr: float = 0.0

    @property
    def label(self) -> str:
        return NAMES[self.optimizer] + SUFFIX[self.schedule]

    @property
    def piece(self) -> str:
        """The setting's name in the cache (with the seed appended)."""
        return f"{self.optimizer}-{self.schedule}-lr{self.lr:g}-beta{self.hypergrad_lr:g}"


def train_setting(setting: Setting, data, epochs: int, seed: int, batch_size: int, device,
                  evaluations: int = 20, progress: bool = False, callback=None, should_stop=None,
                  records_per_epoch: int | None = None) -> History:
    """Train ``setting`` for ``epochs`` from the seed's initialization (the same for every
    optimizer), recording ``records_per_epoch`` times per epoch (else ``evaluations`` times)."""
    (x_train, y_train), test = data
    per_epoch = max(1, len(y_train) // batch_size)
    steps = epochs * per_epoch
    with global_seed(seed):  # the initialization and dropout masks: the seed's alone
        model = MODELS[setting.task]().to(device)
        decay_steps = max(1, round(decay_epochs(setting.task, epochs) * per_epoch))
        optimizer, scheduler = make_optimizer(setting.optimizer, setting.schedule, model.parameters(), setting.lr,
                                              setting.hypergrad_lr, decay_steps)
        records = epochs * records_per_epoch if records_per_epoch else evaluations
        marks = sorted({max(1, round(k * steps / records)) for k in range(1, records + 1)})  # evenly spread
        config = {"optimizer": setting.optimizer, "schedule": setting.schedule, "lr0": setting.lr,
                  "hypergrad_lr": setting.hypergrad_lr, "task": setting.task, "epochs": epochs}
        return fit(model, optimizer, (x_train, y_train), test, steps=steps, batch_size=batch_size, seed=seed,
                   scheduler=scheduler, record_steps=marks, label=setting.label,
                   problem=setting.task, config=config, progress=progress, callback=callback, should_stop=should_stop)


def _sizes(scale: str, task: str):
    check_scale(scale)
    if task not in SIZES[scale]:
        raise ValueError(f"task must be one of {sorted(SIZES[scale])} at scale {scale!r}, got {task!r}")
    return SIZES[scale][task]


class Trainer:
    """Trains settings at one scale, each (setting, seed) once: read from the shared cache when
    a run of 06 or 07 has done it before."""

    def __init__(self, scale: str, device, epochs: int | None, batch_size: int, cache: bool, progress: bool):
        self.scale, self.device, self.epochs, self.batch_size = scale, device, epochs, batch_size
        self.cache_enabled, self.progress = cache, progress
        self.runs: dict[tuple[Setting, int], History] = {}
        self._stores: dict[str, StudyCache] = {}

    def epochs_for(self, task: str) -> int:
        return check_count("epochs", self.epochs if self.epochs is not None else _sizes(self.scale, task)[2], minimum=1)

    def store(self, task: str) -> StudyCache:
        if task not in self._stores:
            n_train, n_test, _ = _sizes(self.scale, task)
            self._stores[task] = StudyCache(CACHE, {
                "task": task, "n_train": n_train, "n_test": n_test, "epochs": self.epochs_for(task),
                "batch_size": self.batch_size, "records_per_epoch": RECORDS_PER_EPOCH[self.scale],
                "device": str(self.device)}, enabled=self.cache_enabled)
        return self._stores[task]

    def run(self, plan: Sequence[tuple[Setting, int]], desc: str = "runs") -> list[History]:
        """A History per (setting, seed) of ``plan``, in order."""
        todo = [key for key in dict.fromkeys(plan) if key not in self.runs]
        with progress_bar(total=len(todo), desc=desc, disable=not self.progress) as bar:
            for setting, seed in todo:
                bar.set_postfix_str(f"{setting.task} {setting.label} lr={setting.lr:g} beta={setting.hypergrad_lr:g} "
                                    f"seed {seed}", refresh=False)
                self.runs[(setting, seed)] = self.store(setting.task).get_or_compute(
                    f"{setting.piece}-seed{seed}", functools.partial(self._train, setting, seed))
                bar.update()
        return [self.runs[key] for key in plan]

    def _train(self, setting: Setting, seed: int) -> History:
        n_train, n_test, _ = _sizes(self.scale, setting.task)
        data = load_task_data(setting.task, n_train, n_test, self.device)
        return train_setting(setting, data, self.epochs_for(setting.task), seed, self.batch_size, self.device,
                             records_per_epoch=RECORDS_PER_EPOCH[self.scale])


def grid_settings(task: str, optimizers: Sequence[str], schedules: Sequence[str], grid: Grid) -> list[Setting]:
    """Every configuration appendix A's grids (or a subset) give each schedule."""
    settings = []
    for name in optimizers:
        check_choice("optimizer", name, OPTIMIZERS)
        for schedule in schedules:
            check_choice("schedule", schedule, LR_SCHEDULES)
            if schedule == "hd":
                settings += [Setting(task, name, "hd", lr, beta) for beta in grid.betas[name] for lr in grid.hd_alphas[name]]
            else:
                settings += [Setting(task, name, schedule, lr) for lr in grid.alphas[name]]
    return settings


# ---------------------------------------------------------------------------------------------
# Scores, selection and summaries


def mean_interval(values) -> tuple[float, float]:
    """Mean and half-width of the 95 % t-interval (0 for one value)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()), 0.0
    from scipy import stats

    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean()), float(half)


def run_scores(h: History) -> dict:
    """One run's numbers: the minimal training and test loss reached (section 4's measure),
    the loss at the end, the final test accuracy and rate; NaN for a run that diverged."""
    if h.status == "diverged":
        return dict.fromkeys(["best train", "best test", "train", "test", "test acc", "final lr"], math.nan)
    frame, last = h.frame, h.frame.iloc[-1]
    return {"best train": float(frame["objective"].min()), "best test": float(frame["test_loss"].min()),
            "train": float(last["objective"]), "test": float(last["test_loss"]),
            "test acc": float(last["test_accuracy"]), "final lr": float(last["lr"])}


def aggregate(runs: Sequence[History]) -> dict:
    """Mean and 95 % half-width over seeds of each of :func:`run_scores`; a configuration with a
    diverged run gets NaN (it is not a candidate)."""
    scores = pd.DataFrame([run_scores(h) for h in runs])
    out = {}
    for column in scores.columns:
        mean, half = mean_interval(scores[column]) if scores[column].notna().all() else (math.nan, math.nan)
        out[column], out[f"{column} ±95%"] = mean, half
    out["runs"], out["diverged"] = len(runs), sum(h.status == "diverged" for h in runs)
    return out


def best_rows(frame: pd.DataFrame, keys: list[str], column: str) -> list:
    """The index of the lowest ``column`` in each group of ``keys`` (groups where every value
    is NaN, all runs diverged, have none)."""
    finite = frame[frame[column].notna()]
    return list(finite.groupby(keys, sort=False)[column].idxmin()) if len(finite) else []


def tuning_table(settings: Sequence[Setting], runs: dict[Setting, list[History]]) -> pd.DataFrame:
    """One row per grid configuration: its score (``best train``: the minimal training loss,
    mean over seeds) and the other numbers, and ``chosen`` on the lowest score of each task,
    optimizer and schedule."""
    rows = []
    for s in settings:
        stats_ = aggregate(runs[s])
        rows.append({"task": s.task, "method": s.label, "optimizer": s.optimizer, "schedule": s.schedule,
                     "alpha_0": s.lr, "beta": s.hypergrad_lr if s.schedule == "hd" else math.nan,
                     "best train": stats_["best train"], "best test": stats_["best test"], "test": stats_["test"],
                     "runs": stats_["runs"], "diverged": stats_["diverged"]})
    table = pd.DataFrame(rows)
    table["chosen"] = False
    if len(table):
        table.loc[best_rows(table, ["task", "optimizer", "schedule"], "best train"), "chosen"] = True
    return table


def chosen_settings(tuning: pd.DataFrame) -> list[Setting]:
    rows = tuning[tuning["chosen"]]
    return [Setting(r.task, r.optimizer, r.schedule, r.alpha_0, 0.0 if r.schedule != "hd" else r.beta)
            for r in rows.itertuples()]


def compare(settings: Sequence[tuple[str, Setting]], runs: dict[Setting, list[History]]) -> pd.DataFrame:
    """Study 06's table: per (role, setting) the numbers of :func:`aggregate` over the seeds."""
    rows = []
    for role, s in settings:
        rows.append({"task": s.task, "method": s.label, "role": role, "optimizer": s.optimizer, "schedule": s.schedule,
                     "alpha_0": s.lr, "beta": s.hypergrad_lr if s.schedule == "hd" else math.nan,
                     **aggregate(runs[s])})
    return pd.DataFrame(rows)


@dataclass
class TunedResult(StudyResult):
    """Study 06's result: the histories of every run, the comparison of the chosen
    configurations (``summary``) and every grid configuration's score (``tuning``)."""

    tuning: pd.DataFrame = field(default_factory=pd.DataFrame)

    def save(self, directory: str | Path) -> dict[str, Path]:
        paths = super().save(directory)
        paths["tuning"] = Path(directory) / "tuning.csv"
        self.tuning.to_csv(paths["tuning"], index=False)
        return paths


def _group(trainer: Trainer, settings: Sequence[Setting], seeds: int, desc: str) -> dict[Setting, list[History]]:
    histories = trainer.run([(s, seed) for s in settings for seed in range(seeds)], desc=desc)
    return {s: histories[i * seeds:(i + 1) * seeds] for i, s in enumerate(settings)}


def _tasks(scale: str, tasks, defaults: dict) -> list[str]:
    """The tasks of a run at ``scale``, checked before any training: each has a size at the
    scale, and the paper scale's CIFAR-10 tasks find the full set (not the partial copy)."""
    check_scale(scale)
    tasks = list(tasks) if tasks else list(defaults[scale])
    for task in tasks:
        _sizes(scale, task)
    if scale == "paper" and any(task.startswith("cifar") for task in tasks):
        require_full_cifar10("studies 06 / 07 at paper scale (VGG-16, ResNet-18)")
    return tasks


def _cifar10_copy(tasks: Sequence[str]) -> str | None:
    return cifar10_copy() if any(task.startswith("cifar") for task in tasks) else None


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


def grid_table(tuning: pd.DataFrame, task: str, column: str = "best train") -> pd.DataFrame:
    """The tuning grid of one task as a table: a row per method (and beta), a column per
    alpha_0, cells ``column`` (NaN: a run diverged); the chosen cell marked with ``*`` in
    the ``chosen`` column."""
    table = tuning[tuning["task"] == task].copy()
    table["row"] = [m if s != "hd" else f"{m} beta={b:g}" for m, s, b in zip(table["method"], table["schedule"], table["beta"])]
    pivot = table.pivot_table(index="row", columns="alpha_0", values=column, sort=False, dropna=False)
    pivot = pivot[sorted(pivot.columns)]
    pivot.columns = [f"{c:g}" for c in pivot.columns]
    winners = table[table["chosen"]].set_index("row")
    pivot.insert(0, "chosen alpha_0", [f"{winners.loc[r, 'alpha_0']:g}" if r in winners.index else "" for r in pivot.index])
    return pivot.reset_index().rename(columns={"row": "method"})


COMPARED = ["task", "method", "role", "alpha_0", "beta", "train", "train ±95%", "test", "test ±95%", "test acc",
            "runs", "diverged"]


def comparison_table(result: TunedResult) -> pd.DataFrame:
    """Study 06's comparison, the columns a reader needs: per task and method the chosen
    (``tuned``) configuration and Baydin et al.'s (``suggested``), final training and test
    loss (mean, 95 % half-width over seeds), final test accuracy, runs and diverged runs."""
    order = {name: i for i, name in enumerate(["tuned", "suggested"])}
    table = result.summary.sort_values(["task", "role"], key=lambda c: c.map(order) if c.name == "role" else
                                       c.map({t: i for i, t in enumerate(dict.fromkeys(result.summary["task"]))}),
                                       kind="stable")
    return table[COMPARED].reset_index(drop=True)


def figure_runs(result: TunedResult, task: str, schedules: Sequence[str] = ("hd", "decay"),
                roles: Sequence[str] = ("tuned",)) -> list[History]:
    """The runs of the compared configurations of ``task`` (the first ``seeds`` seeds), each
    labelled by method, role and setting (``SGD-HD tuned (alpha_0 0.1, beta 0.0001)``)."""
    wanted: dict[tuple, list[str]] = {}
    for r in result.summary.itertuples():
        if r.task == task and r.role in roles and r.schedule in schedules:
            key = (r.optimizer, r.schedule, float(r.alpha_0), 0.0 if r.schedule != "hd" else float(r.beta))
            wanted.setdefault(key, []).append(r.role)
    runs = []
    for role in roles:
        for h in result.histories:
            c = h.config
            key = (c["optimizer"], c["schedule"], float(c["lr0"]), float(c["hypergrad_lr"]))
            if h.problem == task and role in wanted.get(key, []) and h.seed < result.parameters["seeds"]:
                beta = f", beta {c['hypergrad_lr']:g}" if c["schedule"] == "hd" else ""
                runs.append(dataclasses.replace(h, label=f"{h.label} {role} (alpha_0 {c['lr0']:g}{beta})"))
    return runs


def settings_table(scale: str, study: str = "06") -> pd.DataFrame:
    """The settings a run at ``scale`` uses, read from the constants above (what the
    notebooks print, so that no setting is typed by hand)."""
    check_scale(scale)
    check_choice("study", study, ("06", "07"))
    grid = grids_for(scale)
    tasks = (STUDY_TASKS if study == "06" else SENSITIVITY_TASKS)[scale]
    rows = [("tasks", ", ".join(tasks))]
    for task in tasks:
        n_train, n_test, epochs = SIZES[scale][task]
        rows.append((f"{task}: train / test images, epochs",
                     f"{n_train or 'all'} / {n_test or 'all'}, {epochs} (paper {PAPER_EPOCHS[task]})"))
        rows.append((f"{task}: lr-decay", f"halve every {decay_epochs(task, epochs):g} epochs"))
    adam = f"{ADAM_BETAS[0]:g}, {ADAM_BETAS[1]:g}, {ADAM_EPS:g}"
    rows += [("batch size", str(BATCH_SIZE)), ("L2 (weight decay)", f"{WEIGHT_DECAY:g}"),
             ("SGDN momentum (Nesterov)", f"{MOMENTUM:g}"), ("Adam (beta1, beta2, eps)", adam)]
    for name in OPTIMIZERS:
        rows.append((f"{NAMES[name]}: alpha_0 (constant, lr-decay)", " ".join(f"{v:g}" for v in grid.alphas[name])))
        rows.append((f"{NAMES[name]}-HD: alpha_0", " ".join(f"{v:g}" for v in grid.hd_alphas[name])))
        rows.append((f"{NAMES[name]}-HD: beta", " ".join(f"{v:g}" for v in grid.betas[name])))
    if study == "06":
        rows += [("runs per grid point", str(TUNING_SEEDS[scale])), ("runs per chosen configuration", str(SEEDS[scale])),
                 ("selection", "lowest minimal training loss, mean over runs (section 4's performance)")]
    else:
        rows += [("runs per grid point", str(SENSITIVITY_SEEDS[scale])),
                 ("performance", "minimal training / test loss reached, mean over runs (section 4)")]
    records = f"{RECORDS_PER_EPOCH[scale]} per epoch (training loss: mean over the minibatches since the last record)"
    rows.append(("records", records))
    return pd.DataFrame(rows, columns=["setting", "value"])


# ---------------------------------------------------------------------------------------------
# Study 07: sensitivity


def curve_name(schedule: str, beta: float) -> str:
    return {"constant": "constant", "decay": "lr-decay"}.get(schedule, f"HD beta={beta:g}")


def sensitivity(settings: Sequence[Setting], runs: dict[Setting, list[History]]) -> pd.DataFrame:
    """Per task, optimizer, curve (constant, lr-decay, HD per beta) and alpha_0: the minimal
    training and test loss reached, mean and 95 % half-width over seeds (NaN where a run
    diverged), and alpha_0 relative to the curve's best alpha_0 (train and test each)."""
    rows = []
    for s in settings:
        stats_ = aggregate(runs[s])
        rows.append({"task": s.task, "optimizer": NAMES[s.optimizer], "curve": curve_name(s.schedule, s.hypergrad_lr),
                     "schedule": s.schedule, "beta": s.hypergrad_lr if s.schedule == "hd" else math.nan,
                     "lr0": s.lr, "train": stats_["best train"], "train ±95%": stats_["best train ±95%"],
                     "test": stats_["best test"], "test ±95%": stats_["best test ±95%"],
                     "runs": stats_["runs"], "diverged": stats_["diverged"]})
    frame = pd.DataFrame(rows)
    keys = ["task", "optimizer", "curve"]
    for loss in ("train", "test"):
        best = frame.loc[best_rows(frame, keys, loss)].set_index(keys)["lr0"]
        frame[f"{loss} lr / best lr"] = [row.lr0 / best.get((row.task, row.optimizer, row.curve), math.nan)
                                         for row in frame.itertuples()]
    return frame


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


def best_configurations(frame: pd.DataFrame, loss: str = "train") -> pd.DataFrame:
    """Per task, optimizer and curve of a sensitivity table: the best alpha_0, its loss, and
    how many grid points the curve has and how many diverged."""
    keys = ["task", "optimizer", "curve"]
    best = frame.loc[best_rows(frame, keys, loss)]
    counts = frame.groupby(keys, sort=False).agg(points=("lr0", "size"), diverged=("diverged", lambda d: int((d > 0).sum())))
    return best[[*keys, "lr0", loss, f"{loss} ±95%"]].rename(columns={"lr0": "best alpha_0"}).join(counts, on=keys)


# ---------------------------------------------------------------------------------------------
# The widget panel


def run_one(task: str = "mnist-mlp", scale: str = "cpu", optimizer: str = "sgdn", schedule: str = "hd",
            lr: float = 0.01, hypergrad_lr: float = 1e-3, epochs: int = 1, seed: int = 0, device: str = "cpu",
            callback=None, should_stop=None) -> History:
    """One training run at the scale's data size (what the widget panel's Run button calls)."""
    _tasks(scale, [task], {})
    n_train, n_test, _ = _sizes(scale, task)
    torch_device = resolve_device(device)
    data = load_task_data(task, n_train, n_test, torch_device)
    setting = Setting(task, optimizer, schedule, lr, hypergrad_lr if schedule == "hd" else 0.0)
    return train_setting(setting, data, epochs, seed, BATCH_SIZE, torch_device, callback=callback,
                         should_stop=should_stop)


def panel(values: dict | None = None, **overrides):
    """The widget panel of studies 06 and 07, from the notebook's parameters (``globals()``) and
    ``overrides``: schedule, scale, seed, device, optimizer, alpha_0, beta, epochs."""
    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    scale = values.get("scale") or "cpu"
    task = values.get("task") or (values.get("tasks") or STUDY_TASKS.get(scale, ["mnist-mlp"]))[0]
    extra = {
        "optimizer": w.Dropdown(options=[("SGD", "sgd"), ("SGDN", "sgdn"), ("Adam", "adam")], value="sgdn",
                                description="optimizer"),
        "lr": w.FloatLogSlider(value=0.01, base=10, min=-6, max=0, step=0.25, description="alpha_0",
                               readout_format=".1e"),
        "hypergrad_lr": w.FloatLogSlider(value=1e-3, base=10, min=-9, max=-1, step=0.5, description="beta",
                                         readout_format=".0e"),
        "epochs": w.BoundedIntText(value=1, min=1, max=500, description="epochs"),
    }
    n_train = _sizes(scale, task)[0]
    steps_per_epoch = (n_train or (60_000 if task == "mnist-mlp" else 5085)) // BATCH_SIZE
    uses = {"hd": {"hypergrad_lr"}, "constant": set(), "decay": set()}
    values.setdefault("schedule", "hd")
    return panel_for(functools.partial(run_one, task=task), {"constant": "constant", "HD": "hd", "lr-decay": "decay"},
                     uses, values, extra, selector="schedule", x="step", y="objective",
                     total=lambda s: s["epochs"] * steps_per_epoch)

