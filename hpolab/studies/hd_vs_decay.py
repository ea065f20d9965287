"""Studies 06 and 07: hypergradient descent against lr-decay (and constant rates).

"Hypergradient descent vs learning-rate decay" re-runs Baydin et al.'s SGD-HD, SGDN-HD and
Adam-HD against Wilson et al.'s fixed decay (halve every 25 of 200 epochs) and constant
rates, with momentum 0.9, Adam (0.9, 0.999, 1e-8) and L2 1e-4, over several seeds (study
06); and how the best loss reached depends on the initial rate for each schedule (study
07, the appendix grids). Models: the MNIST MLP (two hidden layers of 1000), a small CNN
on the real CIFAR-10 subset (``cpu`` scale) and torchvision's VGG-16 (BN) and ResNet-18
adapted to 32 x 32 inputs (``paper`` scale).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from hpolab.data import as_tensors, load_cifar10, load_mnist
from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.optim import SGDHD, AdamHD
from hpolab.progress import progress_bar
from hpolab.studies.common import StudyResult, check_scale
from hpolab.training import fit
from hpolab.validation import check_choice, check_count

OPTIMIZERS = ("sgd", "sgdn", "adam")
SCHEDULES = ("constant", "hd", "decay")
TASKS = ("mnist-mlp", "cifar-cnn", "cifar-vgg16", "cifar-resnet18")
NAMES = {"sgd": "SGD", "sgdn": "SGDN", "adam": "Adam"}
WEIGHT_DECAY = 1e-4
MOMENTUM = 0.9
# The paper's tuned settings are per task; these are the defaults its grids centre on.
LEARNING_RATES = {"sgd": 0.05, "sgdn": 0.01, "adam": 1e-3}
HYPERGRADIENT_RATES = {"sgd": 1e-3, "sgdn": 1e-3, "adam": 1e-7}

# Per scale: training examples (None = all), test examples, epochs, seeds.
SIZES = {
    "smoke": {"mnist-mlp": (512, 256, 1, 1), "cifar-cnn": (256, 128, 1, 1)},
    "cpu": {"mnist-mlp": (10_000, 2_000, 3, 3), "cifar-cnn": (None, None, 6, 3)},
    "paper": {"mnist-mlp": (None, None, 200, 5), "cifar-vgg16": (None, None, 250, 5),
              "cifar-resnet18": (None, None, 250, 5)},
}
DECAY_FRACTION = 25 / 200  # halve the rate every 1/8 of the run, as every 25 of 200 epochs


def mnist_mlp(hidden: int = 1000) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 10))


def small_cnn() -> nn.Module:
    """Two 3x3 conv blocks (16, 32 channels) and a linear layer: seconds per epoch on a CPU."""
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 8 * 8, 10))


def cifar_vgg16() -> nn.Module:
    """torchvision's VGG-16 with BatchNorm, its head sized for 32 x 32 inputs (the CIFAR VGG)."""
    from torchvision.models import vgg16_bn

    model = vgg16_bn(num_classes=10)
    model.avgpool = nn.Identity()
    model.classifier = nn.Linear(512, 10)
    return model


def cifar_resnet18() -> nn.Module:
    """torchvision's ResNet-18 with the CIFAR stem (3x3 stride-1 first conv, no max pool)."""
    from torchvision.models import resnet18

    model = resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


MODELS = {"mnist-mlp": mnist_mlp, "cifar-cnn": small_cnn, "cifar-vgg16": cifar_vgg16, "cifar-resnet18": cifar_resnet18}


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


def make_optimizer(name: str, schedule: str, params, lr: float, hypergrad_lr: float, decay_steps: int):
    """The optimizer and (for lr-decay) torch's StepLR halving the rate every ``decay_steps``."""
    check_choice("optimizer", name, OPTIMIZERS)
    check_choice("schedule", schedule, SCHEDULES)
    beta = hypergrad_lr if schedule == "hd" else 0.0
    if name == "adam":
        optimizer = AdamHD(params, lr=lr, hypergrad_lr=beta, weight_decay=WEIGHT_DECAY)
    else:
        momentum = MOMENTUM if name == "sgdn" else 0.0
        optimizer = SGDHD(params, lr=lr, hypergrad_lr=beta, momentum=momentum, nesterov=name == "sgdn",
                          weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, decay_steps, gamma=0.5) if schedule == "decay" else None
    return optimizer, scheduler


@dataclass(frozen=True)
class Setting:
    """One training configuration."""

    task: str
    optimizer: str
    schedule: str
    lr: float
    hypergrad_lr: float

    @property
    def label(self) -> str:
        name = NAMES[self.optimizer] + {"constant": "", "hd": "-HD", "decay": "-decay"}[self.schedule]
        return name


def train_setting(setting: Setting, data, epochs: int, seed: int, batch_size: int, device,
                  evaluations: int = 20, progress: bool = False, callback=None, should_stop=None) -> History:
    """Train ``setting`` for ``epochs`` from the seed's initialization (same for every optimizer)."""
    (x_train, y_train), test = data
    steps = max(1, epochs * (len(y_train) // batch_size))
    torch.manual_seed(seed)
    model = MODELS[setting.task]().to(device)
    optimizer, scheduler = make_optimizer(setting.optimizer, setting.schedule, model.parameters(), setting.lr,
                                          setting.hypergrad_lr, max(1, round(steps * DECAY_FRACTION)))
    config = {"optimizer": setting.optimizer, "schedule": setting.schedule, "lr0": setting.lr,
              "hypergrad_lr": setting.hypergrad_lr, "task": setting.task, "epochs": epochs}
    return fit(model, optimizer, (x_train, y_train), test, steps=steps, batch_size=batch_size, seed=seed,
               scheduler=scheduler, evaluate_every=max(1, steps // evaluations), label=setting.label,
               problem=setting.task, config=config, progress=progress, callback=callback, should_stop=should_stop)


def _sizes(scale: str, task: str):
    check_scale(scale)
    if task not in SIZES[scale]:
        raise ValueError(f"task must be one of {sorted(SIZES[scale])} at scale {scale!r}, got {task!r}")
    return SIZES[scale][task]


def run_study(scale: str = "cpu", tasks: Sequence[str] = ("mnist-mlp", "cifar-cnn"),
              optimizers: Sequence[str] = OPTIMIZERS, schedules: Sequence[str] = SCHEDULES,
              learning_rates: dict | None = None, hypergradient_rates: dict | None = None,
              epochs: int | None = None, seeds: int | None = None, batch_size: int = 128,
              device: str = "cpu", progress: bool = True) -> StudyResult:
    """Study 06: every task x optimizer x schedule, over seeds; a History per run."""
    torch_device = resolve_device(device)
    learning_rates = {**LEARNING_RATES, **(learning_rates or {})}
    hypergradient_rates = {**HYPERGRADIENT_RATES, **(hypergradient_rates or {})}
    plan = []
    for task in tasks:
        n_train, n_test, default_epochs, default_seeds = _sizes(scale, task)
        task_epochs = check_count("epochs", epochs if epochs is not None else default_epochs, minimum=1)
        task_seeds = check_count("seeds", seeds if seeds is not None else default_seeds, minimum=1)
        for name in optimizers:
            check_choice("optimizer", name, OPTIMIZERS)
            for schedule in schedules:
                check_choice("schedule", schedule, SCHEDULES)
                setting = Setting(task, name, schedule, learning_rates[name], hypergradient_rates[name])
                plan += [(setting, task_epochs, seed, n_train, n_test) for seed in range(task_seeds)]
    histories = []
    data_cache = {}
    with progress_bar(total=len(plan), desc="runs", disable=not progress) as bar:
        for setting, task_epochs, seed, n_train, n_test in plan:
            if setting.task not in data_cache:
                data_cache[setting.task] = load_task_data(setting.task, n_train, n_test, torch_device)
            bar.set_postfix_str(f"{setting.task}, {setting.label}, seed {seed}", refresh=False)
            histories.append(train_setting(setting, data_cache[setting.task], task_epochs, seed, batch_size,
                                           torch_device))
            bar.update()
    parameters = {"scale": scale, "tasks": list(tasks), "optimizers": list(optimizers), "schedules": list(schedules),
                  "learning_rates": learning_rates, "hypergradient_rates": hypergradient_rates,
                  "batch_size": batch_size, "device": str(torch_device)}
    return StudyResult(histories, summarize(histories), parameters)


def mean_interval(values) -> tuple[float, float]:
    """Mean and half-width of the 95 % t-interval (0 for one value)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()), 0.0
    from scipy import stats

    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean()), float(half)


def summarize(histories: Sequence[History]) -> pd.DataFrame:
    """Per task, optimizer and schedule: final train loss, test loss and test accuracy
    (mean and 95 % interval over the seeds whose run did not diverge), the final learning
    rate, and how many runs diverged."""
    rows = []
    groups: dict[tuple, list[History]] = {}
    for h in histories:
        groups.setdefault((h.config["task"], h.config["optimizer"], h.config["schedule"]), []).append(h)
    for (task, name, schedule), runs in groups.items():
        last = [h.frame.iloc[-1] for h in runs if h.status != "diverged"] or [h.frame.iloc[-1] * math.nan for h in runs[:1]]
        train, train_ci = mean_interval([row["objective"] for row in last])
        test, test_ci = mean_interval([row["test_loss"] for row in last])
        accuracy, _ = mean_interval([row["test_accuracy"] for row in last])
        rows.append({"task": task, "method": runs[0].label, "train loss": train, "train ±95%": train_ci, "test loss": test,
                     "test ±95%": test_ci, "test acc": accuracy, "final lr": float(np.mean([row["lr"] for row in last])),
                     "runs": len(runs), "diverged": sum(h.status == "diverged" for h in runs)})
    return pd.DataFrame(rows)


# Study 07: the appendix grids (cpu scale uses a coarser subset of each).
PAPER_GRIDS = {
    "sgd": [1e-5, 1e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0],
    "sgdn": [1e-5, 1e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0],
    "adam": [1e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.1, 1.0],
}
PAPER_BETAS = {"sgd": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2], "sgdn": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2],
               "adam": [1e-8, 1e-7, 1e-6, 1e-5, 1e-4]}
CPU_GRIDS = {"sgd": [1e-3, 0.01, 0.05, 0.2, 1.0], "sgdn": [1e-3, 0.01, 0.05, 0.2, 1.0],
             "adam": [1e-4, 5e-4, 1e-3, 5e-3, 0.05]}
CPU_BETAS = {"sgd": [1e-4, 1e-3, 1e-2], "sgdn": [1e-4, 1e-3, 1e-2], "adam": [1e-8, 1e-7, 1e-6]}
SENSITIVITY_SIZES = {"smoke": (512, 256, 1, 1), "cpu": (10_000, 2_000, 2, 1), "paper": (None, None, 200, 1)}


def sensitivity_settings(task: str, optimizers: Sequence[str], grids: dict, betas: dict) -> list[Setting]:
    """Every lr of the grid with a constant rate, lr-decay, and HD for every beta."""
    settings = []
    for name in optimizers:
        check_choice("optimizer", name, OPTIMIZERS)
        for lr in grids[name]:
            settings += [Setting(task, name, "constant", lr, 0.0), Setting(task, name, "decay", lr, 0.0)]
            settings += [Setting(task, name, "hd", lr, beta) for beta in betas[name]]
    return settings


def run_sensitivity(scale: str = "cpu", task: str = "mnist-mlp", optimizers: Sequence[str] = OPTIMIZERS,
                    grids: dict | None = None, betas: dict | None = None, epochs: int | None = None,
                    seeds: int | None = None, batch_size: int = 128, device: str = "cpu",
                    progress: bool = True) -> StudyResult:
    """Study 07: the best training loss reached for each initial rate, schedule and beta."""
    check_scale(scale)
    check_choice("task", task, MODELS)
    grids = grids or (PAPER_GRIDS if scale == "paper" else CPU_GRIDS)
    betas = betas or (PAPER_BETAS if scale == "paper" else CPU_BETAS)
    if scale == "smoke":
        grids = {k: v[1:3] for k, v in grids.items()}
        betas = {k: v[1:2] for k, v in betas.items()}
    n_train, n_test, default_epochs, default_seeds = SENSITIVITY_SIZES[scale]
    epochs = check_count("epochs", epochs if epochs is not None else default_epochs, minimum=1)
    seeds = check_count("seeds", seeds if seeds is not None else default_seeds, minimum=1)
    torch_device = resolve_device(device)
    data = load_task_data(task, n_train, n_test, torch_device)
    plan = [(s, seed) for s in sensitivity_settings(task, optimizers, grids, betas) for seed in range(seeds)]
    histories = []
    with progress_bar(total=len(plan), desc="runs", disable=not progress) as bar:
        for setting, seed in plan:
            bar.set_postfix_str(f"{setting.label} lr={setting.lr:g} beta={setting.hypergrad_lr:g}", refresh=False)
            histories.append(train_setting(setting, data, epochs, seed, batch_size, torch_device, evaluations=10))
            bar.update()
    parameters = {"scale": scale, "task": task, "optimizers": list(optimizers), "grids": grids, "betas": betas,
                  "epochs": epochs, "seeds": seeds, "device": str(torch_device)}
    return StudyResult(histories, sensitivity(histories), parameters)


def curve_name(h: History) -> str:
    schedule = h.config["schedule"]
    return {"constant": "constant", "decay": "lr-decay"}.get(schedule, f"HD beta={h.config['hypergrad_lr']:g}")


def sensitivity(histories: Sequence[History]) -> pd.DataFrame:
    """Per optimizer and curve (constant, lr-decay, HD per beta) and initial rate: the best
    training loss reached (mean over seeds; a diverged run counts as NaN), and the rate
    relative to the curve's best rate."""
    rows = [{"optimizer": NAMES[h.config["optimizer"]], "curve": curve_name(h), "lr0": h.config["lr0"],
             "best loss": h.best_objective if h.status == "finished" else math.nan} for h in histories]
    frame = pd.DataFrame(rows).groupby(["optimizer", "curve", "lr0"], sort=False, as_index=False)["best loss"].mean()
    best = frame.loc[frame.groupby(["optimizer", "curve"])["best loss"].idxmin().dropna()]
    best_lr = best.set_index(["optimizer", "curve"])["lr0"]
    frame["lr / best lr"] = [row.lr0 / best_lr.get((row.optimizer, row.curve), math.nan) for row in frame.itertuples()]
    return frame


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def findings(result: StudyResult) -> list[str]:
    """Study 06's claims on this run: SGD(N)-HD against Adam-HD, lr-decay against HD on the
    test loss, and what HD does to a constant rate."""
    summary = result.summary.set_index(["task", "method"])
    lines = []
    for task in dict.fromkeys(result.summary["task"]):
        rows = summary.loc[task]

        def value(method, column):
            return rows.loc[method, column] if method in rows.index else math.nan

        hd = {m: value(m, "test loss") for m in ("SGD-HD", "SGDN-HD", "Adam-HD") if m in rows.index}
        if "Adam-HD" in hd and len(hd) > 1:
            best = min((m for m in hd if m != "Adam-HD"), key=hd.get)
            verdict = "beats" if hd[best] < hd["Adam-HD"] else "does not beat"
            lines.append(f"{task}: {best} {verdict} Adam-HD on the test loss ({_fmt(hd[best])} vs {_fmt(hd['Adam-HD'])}); "
                         f"train loss {_fmt(value(best, 'train loss'))} vs {_fmt(value('Adam-HD', 'train loss'))}")
        for name in ("SGD", "SGDN", "Adam"):
            decay, online, constant = (value(f"{name}{s}", "test loss") for s in ("-decay", "-HD", ""))
            if decay == decay and online == online:
                verdict = "generalizes better than" if decay < online else "does not generalize better than"
                lines.append(f"{task}: {name}-decay {verdict} {name}-HD (test loss {_fmt(decay)} vs {_fmt(online)}; "
                             f"constant {_fmt(constant)}); HD moved the rate from {_fmt(value(name, 'final lr'))} "
                             f"to {_fmt(value(f'{name}-HD', 'final lr'))}")
    return lines


def sensitivity_findings(result: StudyResult) -> list[str]:
    """Study 07's claims: for a fixed beta HD is less sensitive to alpha_0 (the rates whose
    best loss is within a factor of 2 of the curve's best span more decades), yet the best
    loss still depends on beta, so both need tuning."""
    frame = result.summary
    lines = []
    for optimizer, table in frame.groupby("optimizer", sort=False):
        widths, bests = {}, {}
        for curve, line in table.groupby("curve", sort=False):
            best = line["best loss"].min()
            near = line.loc[line["best loss"] <= 2 * best, "lr0"]
            widths[curve] = math.log10(near.max() / near.min()) if len(near) else math.nan
            bests[curve] = best
        hd = {c: b for c, b in bests.items() if c.startswith("HD")}
        description = ", ".join(f"{c}: {_fmt(widths[c])} decades" for c in widths)
        lines.append(f"{optimizer}: rates within 2x of each curve's best loss span {description}")
        if hd:
            spread = max(hd.values()) / min(hd.values())
            best_curve = min(bests, key=bests.get)
            lines.append(f"{optimizer}: HD's best loss varies {_fmt(spread)}x across beta "
                         f"({', '.join(f'{c}: {_fmt(b)}' for c, b in hd.items())}); overall best: {best_curve} "
                         f"({_fmt(bests[best_curve])}), constant {_fmt(bests.get('constant', math.nan))}, "
                         f"lr-decay {_fmt(bests.get('lr-decay', math.nan))}")
    return lines


def run_one(task: str = "mnist-mlp", scale: str = "cpu", optimizer: str = "sgdn", schedule: str = "hd",
            lr: float = 0.01, hypergrad_lr: float = 1e-3, epochs: int = 1, seed: int = 0, device: str = "cpu",
            callback=None, should_stop=None) -> History:
    """One training run at the scale's data size (what the widget panel's Run button calls)."""
    n_train, n_test, _, _ = _sizes(scale, task)
    torch_device = resolve_device(device)
    data = load_task_data(task, n_train, n_test, torch_device)
    setting = Setting(task, optimizer, schedule, lr, hypergrad_lr if schedule == "hd" else 0.0)
    return train_setting(setting, data, epochs, seed, 128, torch_device, callback=callback, should_stop=should_stop)


def panel(values: dict | None = None, **overrides):
    """The widget panel of studies 06 and 07, from the notebook's parameters (``globals()``) and
    ``overrides``: schedule, scale, seed, device, optimizer, alpha_0, beta, epochs."""
    import functools

    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    task = values.get("task") or (values.get("tasks") or ["mnist-mlp"])[0]
    scale = values.get("scale") or "cpu"
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
    steps_per_epoch = (n_train or (60_000 if task == "mnist-mlp" else 5085)) // 128
    uses = {"hd": {"hypergrad_lr"}, "constant": set(), "decay": set()}
    values.setdefault("schedule", "hd")
    return panel_for(functools.partial(run_one, task=task), {"constant": "constant", "HD": "hd", "lr-decay": "decay"},
                     uses, values, extra, selector="schedule", x="step", y="objective",
                     total=lambda s: s["epochs"] * steps_per_epoch)
