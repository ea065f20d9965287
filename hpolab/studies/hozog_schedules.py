"""Study 04: one learning rate per epoch of a CNN on CIFAR-10; HOZOG against random search,
GP-BO and the BOHB-like method for the same wall time. Shared pieces are in
:mod:`hpolab.studies.hozog`.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch

from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.hypergrad import box, classification_task, schedule
from hpolab.problems.tuning import tuning_problem
from hpolab.progress import progress_bar
from hpolab.runner import run
from hpolab.studies.common import StudyResult, check_scale
from hpolab.validation import check_choice, check_positive
from hpolab.studies.hozog import (
    LABELS, _gamma_slider, _seconds_box, device_replicas, hozog_executor, time_to_reach, tuning_method, with_suboptimality,
)

# Study 04: one learning rate per epoch. (train images, validation images, epochs, batch, seconds per method)
SCHEDULE_SIZES = {"smoke": (256, 128, 2, 64, None), "cpu": (4085, 1000, 8, 256, 150.0),
                  "paper": (45_000, 5_000, 100, 256, 7200.0)}
SCHEDULE_METHODS = ("hozog", "random-search", "bayesian", "bohb")
SCHEDULE_BOX = (0.0, 0.5)  # each epoch's learning rate


def schedule_setting(scale: str, device="cpu", lr: float = 0.05):
    """(task, hyperparameters, test): the small CNN of study 06 on the real CIFAR-10 subset
    (``cpu``) or CIFAR-10 (``paper``), plain SGD with batch 256, one learning rate per epoch
    (a window of one epoch's steps), weights re-initialized for every training."""
    from hpolab.studies.hd_vs_decay import load_task_data, small_cnn

    n_train, n_val, epochs, batch, _ = SCHEDULE_SIZES[check_scale(scale)]
    (x, y), test = load_task_data("cifar-cnn", n_train + n_val, None, device)
    train, val = (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])
    torch.manual_seed(0)
    task = classification_task(small_cnn(), train, val, batch_size=batch, device=device, name="cifar-cnn")
    steps_per_epoch = n_train // batch
    hyper = schedule(epochs * steps_per_epoch, lr=lr, windows={"lr": steps_per_epoch}, dtype=torch.float32)
    return task, hyper, test


def batch_hozog_runs(batched: str, device: torch.device) -> bool:
    """Whether HOZOG's q + 1 CNN trainings run as one ``vmap``: ``auto`` batches on accelerators
    only. On a CPU, ``vmap`` over convolutions is slower than a loop (study 04 at cpu scale, q = 3:
    64 s batched against 34 s one by one)."""
    check_choice("batched", batched, ("auto", "yes", "no"))
    return device.type != "cpu" if batched == "auto" else batched == "yes"


def run_schedule_study(scale: str = "cpu", methods: Sequence[str] = SCHEDULE_METHODS, q: int = 3,
                       mu: float = 0.02, gamma: float = 0.01, seconds: float | None = None, device: str = "cpu",
                       batched: str = "auto", address: str = "", progress: bool = True) -> StudyResult:
    """Study 04: HOZOG against random search, GP-BO and the BOHB-like method on an epoch-wise
    learning-rate schedule, for the same wall time."""
    check_scale(scale)
    torch_device = resolve_device(device)
    batch_runs = batch_hozog_runs(batched, torch_device)
    task, hyper, test = schedule_setting(scale, torch_device)
    default_seconds = SCHEDULE_SIZES[scale][-1]
    budget_seconds = default_seconds if seconds is None else check_positive("seconds", seconds)
    limits = box(hyper, {"lr": SCHEDULE_BOX})
    problem = tuning_problem(task, hyper, test=test)
    replicas = device_replicas(lambda d: schedule_setting(scale, d)[0], torch_device)
    histories = []
    with hozog_executor(address) as executor, \
            progress_bar(total=len(methods), desc="runs", disable=not progress) as bar:
        for name in methods:
            check_choice("method", name, SCHEDULE_METHODS)
            bar.set_postfix_str(LABELS[name], refresh=False)
            method = tuning_method(name, task, hyper, limits, q, mu, gamma, batched=batch_runs, replicas=replicas,
                                   executor=executor)
            budget = 10**12 if budget_seconds else (hyper.horizon + 1) * (q + 1) * 3
            history = run(method, problem, budget, seed=0, max_seconds=budget_seconds)
            history.config.update({"method": name})
            histories.append(history)
            bar.update()
    with_suboptimality(histories)
    summary = pd.DataFrame([{
        "method": h.label, "best val loss": float(h.frame["objective"].min()),
        "test error": float(h.frame.loc[h.frame["objective"].idxmin(), "test_error"]),
        "suboptimality": float(h.frame["suboptimality"].iloc[-1]), "steps": len(h.frame) - 1,
        "training steps": int(h.frame["gradient_evaluations"].iloc[-1]),
    } for h in histories])
    parameters = {"scale": scale, "methods": list(methods), "q": q, "mu": mu, "gamma": gamma,
                  "seconds": budget_seconds, "epochs": hyper.values["lr"].numel(), "device": str(torch_device),
                  "batched": batch_runs, "address": address}
    return StudyResult(histories, summary, parameters)


def best_schedule(history: History) -> list[float]:
    """The learning rate per epoch at the history's lowest validation loss."""
    frame = history.frame
    row = frame.loc[frame["objective"].idxmin()]
    return [float(row[c]) for c in frame.columns if c.startswith("lr[")]


def schedule_findings(result: StudyResult, tolerance: float = 0.02) -> list[str]:
    """Study 04's claim: HOZOG finds a good schedule sooner than RS, GP-BO and BOHB."""
    table = result.summary.set_index("method")
    ranking = ", ".join(f"{m} {table.loc[m, 'best val loss']:.4g} (test error {table.loc[m, 'test error']:.3f})"
                        for m in table["best val loss"].sort_values().index)
    lines = [f"best validation loss after the same wall time: {ranking}"]
    reach = {h.label: time_to_reach(h, tolerance) for h in result.histories}
    lines.append(f"time to within {tolerance:g} of the best loss found: " + ", ".join(
        f"{m} {t:.3g} s" if t == t else f"{m} never" for m, t in reach.items()))
    for h in result.histories:
        lines.append(f"{h.label}: best schedule " + ", ".join(f"{v:.3f}" for v in best_schedule(h)))
    return lines


def schedule_run_one(method: str = "hozog", q: int = 3, mu: float = 0.02, gamma: float = 0.01,
                     seconds: float = 60.0, scale: str = "cpu", device: str = "cpu", callback=None,
                     should_stop=None) -> History:
    """One method on study 04's schedule for ``seconds`` (what the panel runs)."""
    torch_device = resolve_device(device)
    task, hyper, test = schedule_setting(scale, torch_device)
    built = tuning_method(method, task, hyper, box(hyper, {"lr": SCHEDULE_BOX}), q, mu, gamma,
                          batched=batch_hozog_runs("auto", torch_device))
    return run(built, tuning_problem(task, hyper, test=test), 10**12, seed=0, max_seconds=seconds,
               callback=callback, should_stop=should_stop)


def schedule_panel(values: dict | None = None, **overrides):
    """Study 04's widget panel, from the notebook's parameters (``globals()``) and ``overrides``:
    method, q, mu, scale, device, gamma, seconds."""
    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    extra = {"gamma": _gamma_slider(values.get("gamma") or 0.01, -4, 1),
             "seconds": _seconds_box(values.get("seconds") or 60.0)}
    uses = {"hozog": {"q", "mu", "gamma"}, "random-search": set(), "bayesian": set(), "bohb": set()}
    return panel_for(schedule_run_one, {LABELS[m]: m for m in SCHEDULE_METHODS}, uses, values, extra,
                     x="wall_time", y="objective", total=lambda s: s["seconds"])
