"""Studies 06 and 07's setting: the paper's constants and tuning grids per scale, the tasks'
models and data, one training run (:class:`Setting`, :func:`train_setting`), the cached
:class:`Trainer`, the grid of configurations, the check of a run's tasks and the settings
table the notebooks print. Kept apart from the run (:mod:`hpolab.studies.hd_vs_decay`) so that
the run, its scores, its tables and its widget panel all read one definition of the setting
without importing each other.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd
import torch

from hpolab.cache import StudyCache
from hpolab.data import load_cifar10, load_mnist, require_full_cifar10
from hpolab.models import cifar_resnet18, mnist_mlp, small_cnn, torch_blog_vgg16
from hpolab.history import History
from hpolab.optim import SGDHD, AdamHD
from hpolab.progress import progress_bar
from hpolab.studies.common import check_scale
from hpolab.training import fit
from hpolab.validation import check_choice, check_count
from hpolab.seeding import global_seed
from hpolab.splits import image_split

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
def hd_task_data(task: str, n_train: int | None, n_test: int | None, device):
    """(train, test) tensors for a task: the first ``n_train`` training images (None: all) and
    the first ``n_test`` test images, normalized per channel with the training statistics (the
    image family's preparation, :func:`hpolab.splits.image_split`, with no validation part)."""
    if task == "mnist-mlp":
        train, test = load_mnist(train=True), load_mnist(train=False)
    else:
        train, test = load_cifar10(train=True), load_cifar10(train=False)
    split = image_split(train, test, len(train) if n_train is None else n_train, 0, n_test, device, task)
    return split.train, split.test


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
        data = hd_task_data(setting.task, n_train, n_test, self.device)
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
