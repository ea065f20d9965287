"""Study 10: FDS learns the learning-rate schedule, the momentum and the weight decay of a
WideResNet on CIFAR-10 from zero, against hypergradient descent (the FDS paper's section 5.3,
Figure 4).

FDS, as the paper's: WRN-16-1, 50 epochs, alpha shared over windows of 10 epochs (5 values),
beta and xi one value each (W = T), all starting at 0; every outer step trains from scratch,
and each value moves by its own fixed step gamma, halved when its hypergradient flips sign.
The paper's text gives no gamma, batch or stopping rule for this figure: they come from the
authors' script for it (``scripts/paper_figure4.sh``): gamma = 0.1, 0.3 and 4e-4, batch 256,
5 % of the training images for validation, 10 outer steps, stopping early once every step is
below 5 % of its value. The values stay inside the ranges of section 5.4 (alpha in [-1, 1],
beta in [-1.5, 1.5], xi in [-4e-3, 4e-3]).

HD (Baydin et al., the paper's [14]): one training in which SGD-HD adapts alpha online from 0
by greedy one-step hypergradients; HD learns alpha only, so it is given beta = 0.9 and
xi = 5e-4 (see :data:`hpolab.studies.fds.HD_MOMENTUM`). Its hypergradient learning rate is
picked from :data:`hpolab.studies.fds.HD_HYPERGRAD_LRS` on the validation loss, and all three
are shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from hpolab.cache import StudyCache
from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.hypergrad import box, per_entry, schedule, sign_descent
from hpolab.methods.fds import learn
from hpolab.progress import progress_bar
from hpolab.studies.common import StudyResult, check_scale, saves_results
from hpolab.studies.fds import (
    GRAD_CLIP,
    HD_HYPERGRAD_LRS,
    HD_MOMENTUM,
    HD_WEIGHT_DECAY,
    best_hd_run,
    exact_estimator,
    hd_training,
    image_data,
    image_task,
    start_check,
    test_accuracy,
)
from hpolab.studies.fds_claims import CIFAR_CLAIMS as CLAIMS
from hpolab.studies.fds_claims import CONVERGED_FRAC
from hpolab.validation import check_count, check_positive

STUDY = "10_fds_cifar"
RANGES = {"lr": (-1.0, 1.0), "momentum": (-1.5, 1.5), "weight_decay": (-4e-3, 4e-3)}  # section 5.4's ranges
GAMMAS = {"lr": 0.1, "momentum": 0.3, "weight_decay": 4e-4}  # the authors' script for Figure 4: not tuned here
LR_VALUES = 5  # alpha values: 50 epochs shared over windows of 10
# model, train images, validation images, test images, batch, epochs, outer steps, eval seeds
SIZES = {
    "smoke": ("wrn-10-1", 256, 128, 256, 64, 2, 2, 2),
    "cpu": ("wrn-10-1", 4000, 1000, None, 64, 2, 10, 2),
    "paper": ("wrn-16-1", 47_500, 2_500, None, 256, 50, 10, 3),
}


@dataclass
class CifarResult(StudyResult):
    """FDS's history over outer steps and HD's run (``histories``, in that order), the test
    accuracy of both (``summary``; every seed's in ``accuracies``, by ``"FDS"`` and ``"HD"``)
    and HD's hypergradient rates with their validation losses (``hd_grid``)."""

    accuracies: dict = field(default_factory=dict)
    hd_grid: pd.DataFrame = field(default_factory=pd.DataFrame)
    gamma_check: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def fds(self) -> History:
        return self.histories[0]

    @property
    def hd(self) -> History:
        return self.histories[1]


def setting(scale: str, device, model: str | None = None, grad_clip: float | None = GRAD_CLIP):
    """(task, test set, T, steps per epoch, alpha window) for the scale: T / LR_VALUES steps
    share each alpha (the paper: 10 of 50 epochs); each coordinate of the training gradient
    clamped to [-grad_clip, grad_clip] (the authors' script for Figure 4: 3)."""
    default_model, n_train, n_val, n_test, batch, epochs, *_ = SIZES[check_scale(scale)]
    split, _ = image_data("cifar10", n_train, n_val, n_test, device)
    task = image_task(split, model or default_model, batch, device, name=f"{model or default_model}-cifar10",
                      grad_clip=grad_clip)
    per_epoch = n_train // batch
    horizon = epochs * per_epoch
    return task, split["test"], horizon, per_epoch, -(-horizon // LR_VALUES)


def fds_hyperparameters(horizon: int, window: int):
    """alpha over windows of ``window`` steps, beta and xi one value each, all learned from 0."""
    return schedule(horizon, lr=0.0, momentum=0.0, weight_decay=0.0, windows={"lr": window},
                    learn=("lr", "momentum", "weight_decay"), dtype=torch.float32)


def run_fds(task, test, horizon, window, outer_steps, device, estimator="auto", gammas=None, cache=None,
            seed: int = 0, progress=True, callback=None, should_stop=None) -> History:
    hyper = fds_hyperparameters(horizon, window)
    chosen, _ = exact_estimator(estimator, device)
    outer = sign_descent(per_entry(hyper, {**GAMMAS, **(gammas or {})}, "gamma"), box(hyper, RANGES))
    history = learn(task, hyper, chosen, outer, outer_steps, test=test, cache=cache, label="FDS", seed=seed,
                    converged_frac=CONVERGED_FRAC, progress=progress, callback=callback, should_stop=should_stop)
    history.config.update({"window": window})
    return history


def run_hd(task, test, horizon, seeds: list[int], cache: StudyCache) -> tuple[History, list[float], pd.DataFrame]:
    """HD with the hypergradient learning rate of lowest final validation loss (seed 0) among
    ``HD_HYPERGRAD_LRS``; returns its history, its test accuracy over ``seeds`` and every
    rate tried with its final validation loss and status."""
    runs = [cache.get_or_compute(f"HD-{rate:g}", lambda: hd_training(task, horizon, rate, 0, test))
            for rate in HD_HYPERGRAD_LRS]
    chosen = best_hd_run(runs) or runs[0]
    best = chosen.config["hypergrad_lr"]
    accuracies = cache.get_or_compute(f"HD-{best:g}-evaluation", lambda: [
        float(hd_training(task, horizon, best, s, test).frame["test_accuracy"].iloc[-1]) for s in seeds])
    grid = pd.DataFrame([{"HD hypergradient rate": h.config["hypergrad_lr"], "final alpha": float(h.frame["lr"].iloc[-1]),
                          "final val loss": float(h.frame["objective"].iloc[-1]), "status": h.status,
                          "chosen": h is chosen} for h in runs])
    return chosen, accuracies, grid


@saves_results
def run_study(scale: str = "cpu", outer_steps: int | None = None, model: str | None = None,
                    estimator: str = "auto", device: str = "cpu", cache: bool = True,
                    progress: bool = True, grad_clip: float | None = GRAD_CLIP) -> CifarResult:
    """Study 10: FDS over ``outer_steps`` against HD, then both evaluated on fresh seeds."""
    *_, default_steps, n_eval = SIZES[check_scale(scale)]
    steps = default_steps if outer_steps is None else check_count("outer_steps", outer_steps, minimum=1)
    torch_device = resolve_device(device)
    task, test, horizon, per_epoch, window = setting(scale, torch_device, model, grad_clip)
    _, estimator_used = exact_estimator(estimator, torch_device)
    parameters = {"scale": scale, "sizes": SIZES[scale][1:5], "model": task.name, "horizon": horizon,
                  "window": window, "gammas": GAMMAS, "ranges": RANGES, "init": "xavier",
                  "converged_frac": CONVERGED_FRAC, "grad_clip": grad_clip}
    store = StudyCache(STUDY, parameters, enabled=cache)  # outer steps are pieces: a longer run reuses them
    parameters["outer_steps"] = steps
    seeds = [10_000 + s for s in range(n_eval)]
    factor, gamma_check = store.get_or_compute(
        "start-check", lambda: start_check(task, fds_hyperparameters(horizon, window), GAMMAS))
    gammas = {name: value * factor for name, value in GAMMAS.items()}
    with progress_bar(total=3, desc="FDS, HD, evaluation", disable=not progress) as bar:
        fds = run_fds(task, test, horizon, window, steps, torch_device, estimator, gammas=gammas, cache=store,
                      progress=progress)
        bar.update()
        hd, hd_accuracies, hd_grid = run_hd(task, test, horizon, seeds, store)
        rate = hd.config["hypergrad_lr"]
        bar.update()
        final = fds_hyperparameters(horizon, window).with_flat(torch.tensor(learned(fds), dtype=torch.float64))
        fds_accuracies = store.get_or_compute(f"FDS-evaluation{steps}", lambda: test_accuracy(task, final, test, seeds))
        bar.update()
    values = dict(zip(fds.hyperparameters, learned(fds)))
    rows = [
        {"method": "FDS", "alpha (per window)": ", ".join(f"{values[c]:.3f}" for c in fds.hyperparameters
                                                         if c.startswith("lr")),
         "beta": values["momentum"], "xi": values["weight_decay"], "runs": int(fds.frame["runs"].iloc[-1]),
         "final val loss": float(fds.frame["objective"].iloc[-1]), "test acc": float(np.nanmean(fds_accuracies)),
         "status": fds.status},
        {"method": f"HD (beta_hd {rate:g})", "alpha (per window)": f"ends at {hd.frame['lr'].iloc[-1]:.3f}",
         "beta": HD_MOMENTUM, "xi": HD_WEIGHT_DECAY, "runs": len(HD_HYPERGRAD_LRS) * 1,
         "final val loss": float(hd.frame["objective"].iloc[-1]), "test acc": float(np.nanmean(hd_accuracies)),
         "status": hd.status},
    ]
    parameters.update({"estimator": estimator_used, "device": str(torch_device), "hd_hypergrad_lr": rate,
                       "gammas_used": gammas,
                       "evaluation_seeds": seeds, "epochs": horizon // per_epoch})
    return CifarResult([fds, hd], pd.DataFrame(rows), parameters,
                       accuracies={"FDS": list(fds_accuracies), "HD": list(hd_accuracies)}, hd_grid=hd_grid,
                       gamma_check=gamma_check)


def learned(history: History) -> list[float]:
    """The learned values (packed order) at the history's last row."""
    return [float(history.frame[c].iloc[-1]) for c in history.hyperparameters]


def hyperparameter_figure(result: CifarResult) -> go.Figure:
    """alpha per window, beta and xi at every outer step (the paper's Figure 4), HD's alpha dashed."""
    history = result.fds
    figure = make_subplots(1, 3, subplot_titles=("learning rate alpha", "momentum beta", "weight decay xi"))
    n = len(history.frame)
    window = history.config["window"]
    lr_columns = [c for c in history.hyperparameters if c.startswith("lr")]
    for k, row in history.frame.iterrows():
        color = f"rgba(31, 119, 180, {0.15 + 0.85 * k / max(n - 1, 1):.2f})"
        rates = np.repeat([row[c] for c in lr_columns], window)
        figure.add_trace(go.Scatter(x=np.arange(len(rates)), y=rates, mode="lines", line={"shape": "hv", "color": color},
                                    name=f"outer step {row['step']}", showlegend=False), 1, 1)
    hd = result.hd.frame
    figure.add_trace(go.Scatter(x=hd["step"], y=hd["lr"], mode="lines", line={"dash": "dash", "color": "firebrick"},
                                name="HD"), 1, 1)
    for column, name in ((2, "momentum"), (3, "weight_decay")):
        figure.add_trace(go.Scatter(x=history.frame["step"], y=history.frame[name], mode="lines+markers",
                                    name=name, showlegend=False), 1, column)
    figure.update_xaxes(title_text="inner step", col=1)
    figure.update_xaxes(title_text="outer step", col=2)
    figure.update_xaxes(title_text="outer step", col=3)
    figure.update_layout(title="FDS: the hyperparameters at every outer step (darker: later)", template="plotly_white")
    return figure


def accuracy_figure(result: CifarResult) -> go.Figure:
    """Test accuracy of FDS's run at each outer step, with HD's final accuracy as a line."""
    figure = go.Figure(go.Scatter(x=result.fds.frame["step"], y=result.fds.frame["test_accuracy"],
                                  mode="lines+markers", name="FDS"))
    figure.add_hline(y=float(result.hd.frame["test_accuracy"].iloc[-1]), line_dash="dash", annotation_text="HD")
    figure.update_layout(title="Test accuracy of the run at each outer step", template="plotly_white",
                         xaxis_title="outer step", yaxis_title="test accuracy")
    return figure


PANEL_METHODS = {"FDS (forward mode)": "fds-forward", "FDS (reverse mode)": "fds-reverse", "HD": "hd"}


def run_one(method: str = "fds-reverse", W: int = 1, outer_steps: int = 4, hypergrad_lr: float = 1e-3,
            seed: int = 0, scale: str = "smoke", device: str = "cpu", callback=None, should_stop=None) -> History:
    """FDS with alpha windows of W epochs for ``outer_steps`` (rows: outer steps), or one HD
    training (rows: every tenth of the run), not cached: what the widget panel runs."""
    torch_device = resolve_device(device)
    task, test, horizon, per_epoch, _ = setting(scale, torch_device)
    if method == "hd":
        return hd_training(task, horizon, check_positive("hypergrad_lr", hypergrad_lr), seed, test,
                           callback=callback, should_stop=should_stop)
    epochs = horizon // per_epoch
    if not (isinstance(W, int) and 1 <= W <= epochs):
        raise ValueError(f"W (epochs per learning rate) must be an integer in [1, {epochs}], got {W!r}")
    return run_fds(task, test, horizon, W * per_epoch, check_count("outer_steps", outer_steps, minimum=1),
                   torch_device, method.removeprefix("fds-"), seed=seed, progress=False, callback=callback,
                   should_stop=should_stop)


def panel(values: dict | None = None, **overrides):
    """Study 10's panel: FDS (forward or reverse mode; W in epochs, outer steps) or HD
    (its hypergradient learning rate), seed, scale, device; live test accuracy."""
    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    values.setdefault("W", 1)
    extra = {
        "outer_steps": w.BoundedIntText(value=values.get("outer_steps") or 4, min=1, max=200, description="outer steps"),
        "hypergrad_lr": w.FloatLogSlider(value=1e-3, base=10, min=-6, max=-1, step=0.5, description="HD beta",
                                         readout_format=".0e"),
    }
    fds_uses = {"W", "outer_steps"}
    return panel_for(run_one, PANEL_METHODS, {"fds-forward": fds_uses, "fds-reverse": fds_uses, "hd": {"hypergrad_lr"}},
                     values, extra, x="step", y="test_accuracy", log_y=False,
                     total=lambda s: (s.get("outer_steps", 4) + 1) if s["method"] != "hd" else 1)
