"""Study 05: data hyper-cleaning on MNIST (half the training labels random), one weight per
group of examples; HOZOG against random search, the BOHB-like method and reverse mode.
Shared pieces are in :mod:`hpolab.studies.hozog`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import pandas as pd
import torch
from torch import nn

from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.hypergrad import box, classification_task, schedule
from hpolab.problems.tuning import tuning_problem
from hpolab.progress import progress_bar
from hpolab.runner import run
from hpolab.studies.common import StudyResult, check_scale
from hpolab.validation import check_positive
from hpolab.studies.hozog import (
    LABELS, Split, _gamma_slider, _seconds_box, device_replicas, hozog_executor, seconds_per_step,
    time_to_reach, tuning_method, with_suboptimality,
)

# Study 05: data hyper-cleaning. (n_train, n_val, n_test, groups, inner steps T, seconds per method)
CLEANING_SIZES = {
    "smoke": [(200, 200, 400, 50, 20, None)],
    "cpu": [(1000, 1000, 4000, 500, 300, 90.0)],
    "paper": [(1000, 1000, 4000, 500, 4000, 1200.0), (5000, 5000, 10000, 1250, 4000, 3600.0)],
}
CLEANING_METHODS = ("hozog", "random-search", "bohb", "reverse")
CLEANING_LR = 0.05  # the paper's inner gradient-descent step
# Step on lambda for HOZOG and REV. A group holds ~2 of the 1000 training examples, so one lambda_g
# moves the validation loss little and the steps must be large: 1000 was the best of {20, 100, 300,
# 1000} for both methods at cpu scale (40 s runs).
CLEANING_GAMMA = 1000.0
CLEANING_BOX = (-6.0, 6.0)  # range of each group's logit lambda_g for the black-box methods
_SPLITS: dict = {}


@dataclass(frozen=True)
class Cleaning:
    """MNIST with half the training labels replaced by random ones, examples in random groups."""

    split: Split
    groups: torch.Tensor  # group of each training example
    corrupted: torch.Tensor  # bool per training example: its label was replaced
    group_corrupted: torch.Tensor  # bool per group: most of its examples are corrupted


def cleaning_data(n_train: int, n_val: int, n_test: int, n_groups: int, seed: int = 0, device="cpu") -> Cleaning:
    """Real MNIST (pixels in [0, 1], flattened), split without overlap; every other training
    example, at random, gets a uniformly random label (possibly the right one, as in the paper)."""
    from hpolab.data import as_tensors, load_mnist

    x, y = as_tensors(load_mnist(train=True))
    x_test, y_test = as_tensors(load_mnist(train=False), limit=n_test)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=generator)[: n_train + n_val]
    x, y = x.reshape(len(x), -1).double(), y
    train_idx, val_idx = order[:n_train], order[n_train:]
    labels = y[train_idx].clone()
    corrupted = torch.zeros(n_train, dtype=torch.bool)
    corrupted[torch.randperm(n_train, generator=generator)[: n_train // 2]] = True
    labels[corrupted] = torch.randint(0, 10, (int(corrupted.sum()),), generator=generator)
    groups = torch.randint(0, n_groups, (n_train,), generator=generator)
    share = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, groups, corrupted.double())
    sizes = torch.bincount(groups, minlength=n_groups).double()
    split = Split("mnist-cleaning", (x[train_idx].to(device), labels.to(device)),
                  (x[val_idx].to(device), y[val_idx].to(device)),
                  (x_test.reshape(len(x_test), -1).double().to(device), y_test.to(device)))
    return Cleaning(split, groups, corrupted, share > sizes / 2)


def cleaning_setting(data: Cleaning, horizon: int, lr: float = CLEANING_LR):
    """(task, hyperparameters): softmax regression trained by full-batch gradient descent, each
    example's loss weighted by sigmoid(lambda_g) of its group, lambda = 0 to start."""
    torch.manual_seed(0)
    task = classification_task(nn.Linear(784, 10), data.split.train, data.split.val, batch_size=None,
                               example_groups=data.groups, dtype=torch.float64,
                               device=data.split.train[0].device, name="mnist-cleaning")
    n_groups = int(data.group_corrupted.numel())
    hyper = schedule(horizon, lr=lr, learn=("example_weights",),
                     example_weights=torch.zeros(n_groups, dtype=torch.float64))
    return task, hyper


def cleaning_quality(history: History, data: Cleaning) -> dict:
    """Precision and recall of the groups with weight below 1/2 (lambda < 0) as the corrupted
    ones, at the history's lowest validation loss."""
    frame = history.frame
    row = frame.loc[frame["objective"].idxmin()]
    names = [c for c in frame.columns if c.startswith("example_weights[")]
    flagged = torch.tensor(row[names].to_numpy(dtype=float) < 0)
    truth = data.group_corrupted
    true_positive = int((flagged & truth).sum())
    precision = true_positive / int(flagged.sum()) if flagged.any() else math.nan
    recall = true_positive / int(truth.sum()) if truth.any() else math.nan
    return {"precision": precision, "recall": recall, "flagged": int(flagged.sum())}


def run_cleaning_study(scale: str = "cpu", methods: Sequence[str] = CLEANING_METHODS, q: int = 5, mu: float = 0.1,
                       gamma: float = CLEANING_GAMMA, seconds: float | None = None, device: str = "cpu",
                       address: str = "", progress: bool = True) -> StudyResult:
    """Study 05: HOZOG (q directions on the unit sphere, the paper's Eq. 3) against random
    search, the BOHB-like method and reverse mode, for the same wall time per size."""
    check_scale(scale)
    torch_device = resolve_device(device)
    histories, quality = [], []
    sizes = CLEANING_SIZES[scale]
    with hozog_executor(address) as executor, \
            progress_bar(total=len(sizes) * len(methods), desc="runs", disable=not progress) as bar:
        for n_train, n_val, n_test, n_groups, horizon, default_seconds in sizes:
            budget_seconds = default_seconds if seconds is None else check_positive("seconds", seconds)
            data = cleaning_data(n_train, n_val, n_test, n_groups, device=torch_device)
            task, hyper = cleaning_setting(data, horizon)
            limits = box(hyper, {"example_weights": CLEANING_BOX})
            problem = tuning_problem(task, hyper, test=data.split.test)
            replicas = device_replicas(lambda d: cleaning_setting(
                cleaning_data(n_train, n_val, n_test, n_groups, device=d), horizon)[0], torch_device)
            for name in methods:
                bar.set_postfix_str(f"{n_groups} groups, {LABELS.get(name, name)}", refresh=False)
                method = tuning_method(name, task, hyper, limits, q, mu, gamma, directions="sphere",
                                       replicas=replicas, executor=executor)
                budget = 10**12 if budget_seconds else (horizon + 1) * (q + 1) * 4
                history = run(method, problem, budget, seed=0, max_seconds=budget_seconds)
                history.problem = f"{n_groups} groups"
                history.config.update({"method": name, "groups": n_groups, "n_train": n_train})
                histories.append(history)
                quality.append(cleaning_quality(history, data))
                bar.update()
    with_suboptimality(histories)
    summary = pd.DataFrame([{
        "size": h.problem, "method": h.label, "best val loss": float(h.frame["objective"].min()),
        "test error": float(h.frame.loc[h.frame["objective"].idxmin(), "test_error"]),
        "suboptimality": float(h.frame["suboptimality"].iloc[-1]), "steps": len(h.frame) - 1,
        "precision": q_["precision"], "recall": q_["recall"], "flagged groups": q_["flagged"],
    } for h, q_ in zip(histories, quality)])
    parameters = {"scale": scale, "methods": list(methods), "q": q, "mu": mu, "gamma": gamma, "seconds": seconds,
                  "device": str(torch_device), "address": address}
    return StudyResult(histories, summary, parameters)


def cleaning_findings(result: StudyResult, tolerance: float = 1e-2) -> list[str]:
    """Study 05's claims: HOZOG against RS and BOHB, and REV's quality and cost per step."""
    lines = []
    summary = result.summary
    for size in dict.fromkeys(h.problem for h in result.histories):
        runs = {h.label: h for h in result.histories if h.problem == size}
        table = summary[summary["size"] == size].set_index("method")
        best = table["best val loss"]
        ranking = ", ".join(f"{m} {best[m]:.4g}" for m in best.sort_values().index)
        lines.append(f"{size}: best validation loss after the same wall time: {ranking}")
        per_step = {m: seconds_per_step(h) for m, h in runs.items()}
        if "HOZOG" in per_step and "REV" in per_step:
            lines.append(f"{size}: seconds per hypergradient: REV {per_step['REV']:.3g} s, HOZOG {per_step['HOZOG']:.3g} s")
        reach = {m: time_to_reach(h, tolerance) for m, h in runs.items()}
        lines.append(f"{size}: time to within {tolerance:g} of the best loss found: " + ", ".join(
            f"{m} {t:.3g} s" if t == t else f"{m} never" for m, t in reach.items()))
        lines.append(f"{size}: corrupted groups found (precision / recall at the best loss): " + ", ".join(
            f"{m} {table.loc[m, 'precision']:.2f} / {table.loc[m, 'recall']:.2f}" for m in table.index))
    return lines


def cleaning_run_one(method: str = "hozog", q: int = 5, mu: float = 0.1, gamma: float = CLEANING_GAMMA,
                     seconds: float = 30.0, scale: str = "cpu", device: str = "cpu", callback=None,
                     should_stop=None) -> History:
    """One method on the scale's hyper-cleaning data for ``seconds`` (what the panel runs)."""
    n_train, n_val, n_test, n_groups, horizon, _ = CLEANING_SIZES[check_scale(scale)][0]
    key = (n_train, n_val, n_test, n_groups, str(resolve_device(device)))
    if key not in _SPLITS:
        _SPLITS[key] = cleaning_data(n_train, n_val, n_test, n_groups, device=resolve_device(device))
    data = _SPLITS[key]
    task, hyper = cleaning_setting(data, horizon)
    built = tuning_method(method, task, hyper, box(hyper, {"example_weights": CLEANING_BOX}), q, mu, gamma,
                          directions="sphere")
    return run(built, tuning_problem(task, hyper, test=data.split.test), 10**12, seed=0, max_seconds=seconds,
               callback=callback, should_stop=should_stop)


def cleaning_panel(values: dict | None = None, **overrides):
    """Study 05's widget panel, from the notebook's parameters (``globals()``) and ``overrides``:
    method, q, mu, scale, device, gamma, seconds."""
    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    extra = {"gamma": _gamma_slider(values.get("gamma") or CLEANING_GAMMA, 0, 4),
             "seconds": _seconds_box(values.get("seconds") or 30.0)}
    uses = {"hozog": {"q", "mu", "gamma"}, "reverse": {"gamma"}, "random-search": set(), "bohb": set()}
    return panel_for(cleaning_run_one, {LABELS[m]: m for m in CLEANING_METHODS}, uses, values, extra,
                     x="wall_time", y="objective", total=lambda s: s["seconds"])
