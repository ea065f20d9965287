"""Study 09: learning-rate schedules learned from alpha = 0 over one epoch (the FDS paper's
section 5.2): greedy (H = 1), non-greedy without sharing (W = 1) and FDS (W steps share one
rate), against cosine annealing.

Every method learns the same thing, one learning rate per window, with the same sign-based
outer step (:func:`hpolab.hypergrad.sign_descent`: a fixed step gamma against the sign of
each hypergradient, halved when that sign flips), re-initializing the weights and
reshuffling the data at every outer step. Only the hypergradient differs: greedy takes the
validation loss right after each step, the others the validation loss at the end of the
run. Greedy uses FDS's windows, so that its horizon is the only difference.
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
from hpolab.progress import progress_bar
from hpolab.studies.common import StudyResult, check_scale
from hpolab.studies.fds import exact_estimator, image_data, image_task, learn, outer_estimator, test_accuracy
from hpolab.validation import check_choice, check_count, check_positive

STUDY = "09_fds_lr_schedules"
METHODS = ("greedy", "non-greedy", "fds")
LABELS = {"greedy": "greedy (H = 1)", "non-greedy": "non-greedy, W = 1", "fds": "FDS"}
# train images (T = n_train / batch: one epoch), validation, test, batch, outer steps, W, evaluation seeds
SIZES = {"smoke": (512, 128, 256, 64, 3, 4, 2), "cpu": (12_800, 500, 2000, 64, 20, 20, 3),
         "paper": (60_000 - 10_000, 10_000, None, 128, 50, 50, 5)}
MOMENTUM = 0.9
LR_BOX = (0.0, 1.0)
COSINE_PEAKS = (0.01, 0.03, 0.1)  # cosine annealing's starting rate, chosen on the validation loss


@dataclass
class ScheduleResult(StudyResult):
    """Each method's history over outer steps, its final schedule's test accuracy, and cosine's."""

    cosine: dict = field(default_factory=dict)
    note: str = ""


def schedule_of(history: History) -> list[float]:
    """The learning rate of every window at the history's last row."""
    return [float(history.frame[c].iloc[-1]) for c in history.hyperparameters]


def setting(scale: str, dataset: str, device):
    """(task, test set, T, note): LeNet on one epoch of the scale's training images."""
    n_train, n_val, n_test, batch, *_ = SIZES[check_scale(scale)]
    split, note = image_data(dataset, n_train, n_val, n_test, device)
    used = "mnist" if note else dataset
    task = image_task(split, "lenet", batch, device, name=f"lenet-{used}")
    return task, split["test"], n_train // batch, note


def method_hyperparameters(method: str, horizon: int, window: int):
    """Every method learns alpha from 0 over windows of ``window`` steps (W = 1 for non-greedy)."""
    W = 1 if method == "non-greedy" else window
    return schedule(horizon, lr=0.0, momentum=MOMENTUM, windows={"lr": W}, dtype=torch.float32)


def learn_schedule(task, test, horizon: int, method: str, window: int, gamma: float, steps: int, device,
                   estimator: str = "auto", cache: StudyCache | None = None, seed: int = 0, progress: bool = True,
                   callback=None, should_stop=None) -> History:
    """One method's outer loop (see :func:`hpolab.studies.fds.learn`)."""
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
    return {"peak": peak, "val_loss": losses[peak], "accuracies": accuracies, "schedule": (peak * shape).tolist()}


def run_schedule_study(scale: str = "cpu", dataset: str = "mnist", methods=METHODS, W: int | None = None,
                       gamma: float = 0.01, outer_steps: int | None = None, estimator: str = "auto",
                       device: str = "cpu", cache: bool = True, progress: bool = True) -> ScheduleResult:
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
    task, test, horizon, note = setting(scale, dataset, torch_device)
    _, estimator_used = exact_estimator(estimator, torch_device)
    parameters = {"scale": scale, "sizes": SIZES[scale][:4], "dataset": task.name, "W": window, "gamma": gamma,
                  "horizon": horizon, "momentum": MOMENTUM, "lr_box": LR_BOX}
    store = StudyCache(STUDY, parameters, enabled=cache)  # outer steps are pieces: a longer run reuses them
    parameters["outer_steps"] = steps
    eval_seeds = [10_000 + s for s in range(n_eval)]
    histories, rows = [], []
    with progress_bar(total=len(methods) + 1, desc="methods", disable=not progress) as bar:
        for method in methods:
            bar.set_postfix_str(LABELS[method], refresh=False)
            history = learn_schedule(task, test, horizon, method, window, gamma, steps, torch_device, estimator,
                                     store, progress=progress)
            history.config.update({"method": method, "W": 1 if method == "non-greedy" else window})
            histories.append(history)
            final = method_hyperparameters(method, horizon, window).with_flat(
                torch.tensor(schedule_of(history), dtype=torch.float64))
            accuracies = store.get_or_compute(f"{LABELS[method]}-evaluation{steps}",
                                 lambda: test_accuracy(task, final, test, eval_seeds))
            rows.append(_summary_row(LABELS[method], history, accuracies))
            bar.update()
        cosine = store.get_or_compute("cosine", lambda: cosine_reference(task, test, horizon, eval_seeds))
        bar.update()
    rows.append({"method": f"cosine (peak {cosine['peak']:g})", "outer steps": 0, "runs": len(COSINE_PEAKS) + n_eval,
                 "mean lr": float(np.mean(cosine["schedule"])), "max lr": float(np.max(cosine["schedule"])),
                 "final val loss": cosine["val_loss"], "test acc": float(np.mean(cosine["accuracies"])),
                 "test acc sd": float(np.std(cosine["accuracies"])), "status": "reference"})
    parameters.update({"estimator": estimator_used, "evaluation_seeds": eval_seeds, "device": str(torch_device)})
    return ScheduleResult(histories, pd.DataFrame(rows), parameters, cosine=cosine, note=note)


def _summary_row(label: str, history: History, accuracies: list[float]) -> dict:
    rates = schedule_of(history)
    return {"method": label, "outer steps": len(history.frame) - 1, "runs": int(history.frame["runs"].iloc[-1]),
            "mean lr": float(np.mean(rates)), "max lr": float(np.max(rates)),
            "final val loss": float(history.frame["objective"].iloc[-1]),
            "test acc": float(np.nanmean(accuracies)), "test acc sd": float(np.nanstd(accuracies)),
            "status": history.status}


def findings(result: ScheduleResult) -> list[str]:
    """The paper's claims of section 5.2 on this run."""
    table = result.summary.set_index("method")
    by = {h.config["method"]: LABELS[h.config["method"]] for h in result.histories}
    cosine = result.summary["method"].iloc[-1]
    lines = []

    def acc(label):
        return f"{table.loc[label, 'test acc']:.4f} ± {table.loc[label, 'test acc sd']:.4f}"

    if "greedy" in by and "fds" in by:
        g, f = by["greedy"], by["fds"]
        ratio = table.loc[g, "mean lr"] / table.loc[f, "mean lr"] if table.loc[f, "mean lr"] else math.nan
        relation = ("the same rates as" if abs(ratio - 1) < 0.01 else
                    "smaller rates than" if ratio < 1 else "larger rates than")
        lines.append(f"greedy learns {relation} FDS: mean lr "
                     f"{table.loc[g, 'mean lr']:.4g} against {table.loc[f, 'mean lr']:.4g}; test accuracy "
                     f"{acc(g)} against {acc(f)}.")
    if "non-greedy" in by and "fds" in by:
        n, f = by["non-greedy"], by["fds"]
        rough = {label: _roughness(h) for h in result.histories for label in [LABELS[h.config["method"]]]}
        lines.append(f"without sharing (W = 1) the schedule ends at mean lr {table.loc[n, 'mean lr']:.4g} "
                     f"(max {table.loc[n, 'max lr']:.4g}, mean |step-to-step change| {rough[n]:.3g}) and test "
                     f"accuracy {acc(n)}; FDS: mean lr {table.loc[f, 'mean lr']:.4g} (max {table.loc[f, 'max lr']:.4g}, "
                     f"change {rough[f]:.3g}), {acc(f)}.")
    if "fds" in by:
        f = by["fds"]
        better = table.loc[f, "test acc"] > table.loc[cosine, "test acc"]
        lines.append(f"FDS against {cosine}: {acc(f)} against {acc(cosine)} "
                     f"({'FDS better' if better else 'cosine better or equal'}).")
    return lines


def _roughness(history: History) -> float:
    """Mean absolute change of the learned rate between consecutive steps of the run."""
    rates = np.repeat(schedule_of(history), history.config.get("W", 1))
    return float(np.abs(np.diff(rates)).mean()) if len(rates) > 1 else 0.0


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


def run_one(method: str = "fds", W: int = 20, gamma: float = 0.01, outer_steps: int = 10, seed: int = 0,
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
        "gamma": w.FloatLogSlider(value=values.get("gamma", 0.01), base=10, min=-4, max=0, step=0.1,
                                  description="gamma", readout_format=".1e"),
        "outer_steps": w.BoundedIntText(value=values.get("outer_steps") or 10, min=1, max=500, description="outer steps"),
    }
    values.setdefault("method", "fds")
    if not values.get("W"):
        values["W"] = 20
    return panel_for(run_one, {LABELS[m]: m for m in METHODS}, {"greedy": {"W"}, "fds": {"W"}, "non-greedy": set()},
                     values, extra, x="step", y="test_accuracy", log_y=False,
                     total=lambda s: s["outer_steps"] + 1)
