"""Study 09: learning-rate schedules learned from alpha = 0 over one epoch (the FDS paper's
section 5.2, Figure 3): greedy (H = 1), non-greedy without sharing (H = T, W = 1) and FDS
(H = T, W steps share one rate), against cosine annealing.

Every method starts from alpha = 0 at every step and takes the same sign-based outer step
(:func:`hpolab.hypergrad.sign_descent`: a fixed step gamma against the sign of each
hypergradient, halved when that sign flips), re-initializing the weights and reshuffling the
data at every outer step ("in all cases we take 50 outer steps per hyperparameter").

- **greedy**, as the paper's: one learning rate per step (H = 1, no sharing), each moved by
  the hypergradient of the validation loss right after its step with the weights before it
  held fixed, and without HD's trick of starting alpha_t at alpha_{t-1};
- **non-greedy, W = 1**: one rate per step, exact hypergradients of the final validation loss;
- **FDS**: the same hypergradients, one rate per window of W steps (the paper: W ~ 50 of
  T ~ 500).

Settings the paper's text does not give (its section 5.2) are taken from elsewhere in the
paper or from the authors' code, and said so: gamma = 0.1 (Algorithm 1's outer rate and the
code's ``lr_init_step_size``) scaled down by :func:`hpolab.studies.fds.start_check` if two
steps of it from 0 no longer train, alpha in [-1, 1] (section 5.4's range), momentum 0 (the
authors' main.py, which learns schedules with that gamma, keeps a momentum it does not learn at
``inner_mom_init`` = 0), batch 128 and 5 % of the training images held out for validation (the code's defaults).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from hpolab.cache import StudyCache
from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.hypergrad import box, schedule, sign_descent, train
from hpolab.methods.fds import learn
from hpolab.progress import progress_bar
from hpolab.studies.common import StudyResult, check_scale, saves_results
from hpolab.studies.fds import (GRAD_CLIP, exact_estimator, image_data, image_task, outer_estimator, start_check,
                                test_accuracy)
from hpolab.studies.fds_claims import SCHEDULE_CLAIMS as CLAIMS
from hpolab.validation import check_choice, check_count, check_positive

STUDY = "09_fds_lr_schedules"
METHODS = ("greedy", "non-greedy", "fds")
LABELS = {"greedy": "greedy (H = 1, W = 1)", "non-greedy": "non-greedy, W = 1", "fds": "FDS"}
# train images (T = n_train / batch: one epoch), validation, test, batch, outer steps, W, evaluation seeds.
# paper: MNIST's 60 000 training images less 5 % for validation (the authors' val_train_fraction),
# batch 128: T = 445 ("T ~ 500"), W = 50 ("W ~ 50"), 50 outer steps.
SIZES = {"smoke": (512, 128, 256, 64, 3, 4, 2), "cpu": (12_800, 500, 2000, 64, 20, 20, 3),
         "paper": (57_000, 3_000, None, 128, 50, 50, 5)}
# Section 5.2 gives no momentum. The authors' main.py, the code that learns schedules with sign
# steps of lr_init_step_size = 0.1 from alpha = 0, starts momentum at inner_mom_init = 0 and keeps
# it there when it is not learned (learn_mom False): 0 here. (Until issue 13's last fix this was
# 0.9, the value of the Figure 2 script, which learns nothing and holds alpha near 0.01: with it
# one sign step of 0.1 moves the effective rate alpha / (1 - beta) by 1.0, and at cpu scale FDS's
# network was dead from outer step 2 on.)
MOMENTUM = 0.0
GAMMA = 0.1  # Algorithm 1's outer rate and the authors' lr_init_step_size: not tuned here
LR_BOX = (-1.0, 1.0)  # section 5.4's range for alpha (section 5.2 gives none)
COSINE_PEAKS = (0.01, 0.03, 0.1, 0.3, 1.0)  # cosine annealing's starting rate, chosen on the validation loss


@dataclass
class ScheduleResult(StudyResult):
    """Each method's history over outer steps, its final schedule (one rate per inner step,
    ``rates``) and that schedule's test accuracy over fresh seeds (``accuracies``), by
    method (and ``"cosine"``); ``dataset`` is the data actually used."""

    cosine: dict = field(default_factory=dict)
    note: str = ""
    rates: dict = field(default_factory=dict)
    accuracies: dict = field(default_factory=dict)
    dataset: str = "mnist"
    gamma_check: pd.DataFrame = field(default_factory=pd.DataFrame)


def schedule_of(history: History) -> list[float]:
    """The learning rate of every window at the history's last row."""
    return [float(history.frame[c].iloc[-1]) for c in history.hyperparameters]


def setting(scale: str, dataset: str, device, grad_clip: float | None = GRAD_CLIP):
    """(task, test set, T, note): LeNet on one epoch of the scale's training images, each
    coordinate of the training gradient clamped to [-grad_clip, grad_clip] (the authors' main.py: 3)."""
    n_train, n_val, n_test, batch, *_ = SIZES[check_scale(scale)]
    split, note = image_data(dataset, n_train, n_val, n_test, device)
    used = "mnist" if note else dataset
    task = image_task(split, "lenet", batch, device, name=f"lenet-{used}", grad_clip=grad_clip)
    return task, split["test"], n_train // batch, note


def method_window(method: str, window: int) -> int:
    """The steps sharing one rate: ``window`` for FDS, 1 for greedy and non-greedy."""
    return window if method == "fds" else 1


def method_hyperparameters(method: str, horizon: int, window: int):
    """Every method learns alpha from 0: FDS over windows of ``window`` steps, the others one
    rate per step."""
    return schedule(horizon, lr=0.0, momentum=MOMENTUM, windows={"lr": method_window(method, window)},
                    dtype=torch.float32)


def learn_schedule(task, test, horizon: int, method: str, window: int, gamma: float, steps: int, device,
                   estimator: str = "auto", cache: StudyCache | None = None, seed: int = 0, progress: bool = True,
                   callback=None, should_stop=None) -> History:
    """One method's outer loop (see :func:`hpolab.methods.fds.learn`)."""
    check_choice("method", method, METHODS)
    hyper = method_hyperparameters(method, horizon, window)
    chosen, _ = outer_estimator("greedy" if method == "greedy" else "exact", device, estimator)
    outer = sign_descent(gamma, box(hyper, {"lr": LR_BOX}))
    return learn(task, hyper, chosen, outer, steps, test=test, cache=cache, label=LABELS[method], seed=seed,
                 progress=progress, callback=callback, should_stop=should_stop)


def cosine_reference(task, test, horizon: int, seeds: list[int]) -> dict:
    """Cosine annealing from the best of ``COSINE_PEAKS`` (lowest validation loss, seed 0) to 0,
    with the same momentum; its test accuracy over ``seeds``."""
    steps = torch.arange(horizon, dtype=torch.float64)
    shape = 0.5 * (1 + torch.cos(math.pi * steps / horizon))
    losses = {}
    for peak in COSINE_PEAKS:
        hyper = schedule(horizon, lr=peak * shape, momentum=MOMENTUM, windows={"lr": 1}, dtype=torch.float32)
        trained = train(task, hyper, 0)
        losses[peak] = math.inf if trained.diverged else float(task.val_loss(trained.theta))
    peak = min(losses, key=losses.get)
    hyper = schedule(horizon, lr=peak * shape, momentum=MOMENTUM, windows={"lr": 1}, dtype=torch.float32)
    accuracies = test_accuracy(task, hyper, test, seeds)
    return {"peak": peak, "val_loss": losses[peak], "accuracies": accuracies, "schedule": (peak * shape).tolist(),
            "peaks": losses}


def cosine_table(result: ScheduleResult) -> pd.DataFrame:
    """Every cosine peak tried, with the validation loss it reached (seed 0) and which was kept."""
    peaks = result.cosine.get("peaks", {})
    return pd.DataFrame([{"cosine peak": peak, "val loss": loss, "kept": peak == result.cosine["peak"]}
                         for peak, loss in peaks.items()])


@saves_results
def run_study(scale: str = "cpu", dataset: str = "mnist", methods=METHODS, W: int | None = None,
                       gamma: float = GAMMA, outer_steps: int | None = None, estimator: str = "auto",
                       device: str = "cpu", cache: bool = True, progress: bool = True,
                       grad_clip: float | None = GRAD_CLIP) -> ScheduleResult:
    """Study 09: every method's schedule over ``outer_steps``, then the test accuracy of its final
    schedule over a few fresh seeds, against cosine annealing. Finished outer steps are cached
    under ``runs/cache/09_fds_lr_schedules/``."""
    n_train, _, _, batch, default_steps, default_window, n_eval = SIZES[check_scale(scale)]
    check_positive("gamma", gamma)
    steps = default_steps if outer_steps is None else check_count("outer_steps", outer_steps, minimum=1)
    window = default_window if W is None else W
    if not (isinstance(window, int) and 1 <= window <= n_train // batch):
        raise ValueError(f"W must be an integer in [1, T] = [1, {n_train // batch}], got {window!r}")
    for method in methods:
        check_choice("method", method, METHODS)
    torch_device = resolve_device(device)
    task, test, horizon, note = setting(scale, dataset, torch_device, grad_clip)
    _, estimator_used = exact_estimator(estimator, torch_device)
    parameters = {"scale": scale, "sizes": SIZES[scale][:4], "dataset": task.name, "W": window, "gamma": gamma,
                  "horizon": horizon, "momentum": MOMENTUM, "lr_box": LR_BOX, "init": "xavier", "grad_clip": grad_clip}
    store = StudyCache(STUDY, parameters, enabled=cache)  # outer steps are pieces: a longer run reuses them
    parameters["outer_steps"] = steps
    eval_seeds = [10_000 + s for s in range(n_eval)]
    factor, gamma_check = store.get_or_compute(
        "start-check", lambda: start_check(task, method_hyperparameters("fds", horizon, window), gamma))
    gamma_used = gamma * factor
    parameters["gamma_used"] = gamma_used
    histories, rows, rates, accuracies_by = [], [], {}, {}
    with progress_bar(total=len(methods) + 1, desc="methods", disable=not progress) as bar:
        for method in methods:
            bar.set_postfix_str(LABELS[method], refresh=False)
            history = learn_schedule(task, test, horizon, method, window, gamma_used, steps, torch_device, estimator,
                                     store, progress=progress)
            history.config.update({"method": method, "W": method_window(method, window), "horizon": horizon})
            histories.append(history)
            final = method_hyperparameters(method, horizon, window).with_flat(
                torch.tensor(schedule_of(history), dtype=torch.float64))
            accuracies = store.get_or_compute(f"{LABELS[method]}-evaluation{steps}",
                                 lambda: test_accuracy(task, final, test, eval_seeds))
            rows.append(_summary_row(LABELS[method], history, accuracies))
            rates[method] = per_step_rates(history)
            accuracies_by[method] = list(accuracies)
            bar.update()
        cosine = store.get_or_compute("cosine", lambda: cosine_reference(task, test, horizon, eval_seeds))
        bar.update()
    rows.append({"method": f"cosine (peak {cosine['peak']:g})", "outer steps": 0, "runs": len(COSINE_PEAKS) + n_eval,
                 "mean lr": float(np.mean(cosine["schedule"])), "max lr": float(np.max(cosine["schedule"])),
                 "final val loss": cosine["val_loss"], "test acc": float(np.mean(cosine["accuracies"])),
                 "test acc sd": float(np.std(cosine["accuracies"])), "status": "reference"})
    parameters.update({"estimator": estimator_used, "evaluation_seeds": eval_seeds, "device": str(torch_device)})
    rates["cosine"], accuracies_by["cosine"] = list(cosine["schedule"]), list(cosine["accuracies"])
    return ScheduleResult(histories, pd.DataFrame(rows), parameters, cosine=cosine, note=note, rates=rates,
                          accuracies=accuracies_by, dataset="mnist" if note else dataset, gamma_check=gamma_check)


def per_step_rates(history: History) -> list[float]:
    """The final schedule as one learning rate per inner step."""
    return np.repeat(schedule_of(history), history.config.get("W", 1))[:history.config.get("horizon")].tolist()


def _summary_row(label: str, history: History, accuracies: list[float]) -> dict:
    rates = schedule_of(history)
    return {"method": label, "outer steps": len(history.frame) - 1, "runs": int(history.frame["runs"].iloc[-1]),
            "mean lr": float(np.mean(rates)), "max lr": float(np.max(rates)),
            "final val loss": float(history.frame["objective"].iloc[-1]),
            "test acc": float(np.nanmean(accuracies)), "test acc sd": float(np.nanstd(accuracies)),
            "status": history.status}


def schedule_figure(result: ScheduleResult) -> go.Figure:
    """Each method's final learned schedule against the inner step, with cosine's."""
    figure = go.Figure()
    for history in result.histories:
        W = history.config.get("W", 1)
        rates = np.repeat(schedule_of(history), W)
        figure.add_trace(go.Scatter(x=np.arange(len(rates)), y=rates, mode="lines", name=history.label,
                                    line={"shape": "hv"}))
    figure.add_trace(go.Scatter(x=np.arange(len(result.cosine["schedule"])), y=result.cosine["schedule"],
                                mode="lines", name=f"cosine (peak {result.cosine['peak']:g})", line={"dash": "dash"}))
    figure.update_layout(title="Learned learning-rate schedules after the last outer step", template="plotly_white",
                         xaxis_title="inner step t", yaxis_title="learning rate alpha_t")
    return figure


def outer_figure(result: ScheduleResult, column: str = "objective") -> go.Figure:
    """Validation loss (or another history column) of each outer step's run."""
    figure = go.Figure()
    for history in result.histories:
        figure.add_trace(go.Scatter(x=history.frame["step"], y=history.frame[column], mode="lines+markers",
                                    name=history.label))
    figure.update_layout(title=f"{column} of the run at each outer step", template="plotly_white",
                         xaxis_title="outer step", yaxis_title=column)
    return figure


def evolution_figure(history: History) -> go.Figure:
    """One method's schedule at every outer step (lighter: earlier), as in the paper's Figure 3."""
    figure = go.Figure()
    W = history.config.get("W", 1)
    n = len(history.frame)
    for k, row in history.frame.iterrows():
        rates = np.repeat([row[c] for c in history.hyperparameters], W)
        figure.add_trace(go.Scatter(x=np.arange(len(rates)), y=rates, mode="lines", name=f"outer step {row['step']}",
                                    line={"shape": "hv", "color": f"rgba(31, 119, 180, {0.15 + 0.85 * k / max(n - 1, 1):.2f})"}))
    figure.update_layout(title=f"{history.label}: the schedule at every outer step", template="plotly_white",
                         xaxis_title="inner step t", yaxis_title="learning rate", showlegend=False)
    return figure


def run_one(method: str = "fds", W: int = 20, gamma: float = GAMMA, outer_steps: int = 10, seed: int = 0,
            scale: str = "smoke", device: str = "cpu", callback=None, should_stop=None) -> History:
    """One method's outer loop, not cached (what the widget panel's Run button calls)."""
    torch_device = resolve_device(device)
    task, test, horizon, _ = setting(scale, "mnist", torch_device)
    return learn_schedule(task, test, horizon, method, min(W, horizon), check_positive("gamma", gamma),
                          check_count("outer_steps", outer_steps, minimum=1), torch_device, seed=seed,
                          progress=False, callback=callback, should_stop=should_stop)


def panel(values: dict | None = None, **overrides):
    """Study 09's widget panel: method, W, gamma, outer steps, seed, scale, device; the live
    figure draws the test accuracy of each outer step's run."""
    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    extra = {
        "gamma": w.FloatLogSlider(value=values.get("gamma", GAMMA), base=10, min=-4, max=0, step=0.1,
                                  description="gamma", readout_format=".1e"),
        "outer_steps": w.BoundedIntText(value=values.get("outer_steps") or 10, min=1, max=500, description="outer steps"),
    }
    values.setdefault("method", "fds")
    if not values.get("W"):
        values["W"] = 20
    return panel_for(run_one, {LABELS[m]: m for m in METHODS}, {"greedy": set(), "fds": {"W"}, "non-greedy": set()},
                     values, extra, x="step", y="test_accuracy", log_y=False,
                     total=lambda s: s["outer_steps"] + 1)
