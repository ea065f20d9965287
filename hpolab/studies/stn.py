"""Study 12: Self-Tuning Networks' best-response approximation (MacKay et al., ICLR 2019).

Three parts (the method is :mod:`hpolab.methods.stn`):

* **Ridge regression**, where the best response is known: L_train(w, lambda) =
  (|X w - y|^2 + lambda |w|^2) / (2 n), so w*(lambda) = (X^T X + lambda I)^-1 X^T y and
  d w* / d log lambda = -lambda (X^T X + lambda I)^-1 w*. STN tunes h = log lambda with the
  plain linear response w0 + W1 (h - c); the study records, at every tuning step, the fitted
  response against the exact one around c (value, Jacobian), the hypergradient through the
  fitted response against the exact one, and snapshots of the response for the figures. The
  minimizer of STN's training objective E_delta L_train(w0 + W1 delta, h + delta) has a closed
  form here (:func:`ridge_stn_optimum`), which shows how sigma biases the fitted Jacobian.
* **An MLP on real MNIST** (a small training set, so regularization matters) with
  lambda = (log weight decay, logit dropout) and the paper's structured response in every
  layer, against a grid of fixed (weight decay, dropout) trained for the same number of steps
  with the same initialization, best by validation loss.
* **The schedule replayed**: the plain MLP trained from scratch with the (weight decay,
  dropout) STN used at each step, against the same grid (the notes: "these schedules
  transferred ..., outperforming manually tuned constant schedules").

The notes (``../shared/papers/iclr-optimization-notes.txt``) give no settings. Where the
authors' code (github.com/asteroidhouse/self-tuning-networks, ``cnn/hypertrain.py``) has one,
the study takes it: perturbation scale sigma = 0.5 (learned there from 0.5 with an entropy
bonus; fixed here), T_train = 2 training steps per tuning step, validation batches of the
training batch size, 5 warm-up epochs before the first tuning step, a starting dropout of
0.05. The step size on lambda cannot be copied from a run 50 times longer: :func:`travel_lr`
sets it so that Adam can cross the box once over the run (1.8e-3 at paper scale against the
authors' 3e-3). ``docs/studies/12_stn_best_response.md`` lists every setting; :data:`CLAIMS`
are the claims each run checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.splits import mnist_split
from hpolab.plots import PALETTE
from hpolab.progress import progress_bar
from hpolab.studies.common import StudyResult, check_scale, saves_results
from hpolab.studies.stn_claims import CLAIMS  # noqa: F401  (the claims every run checks)
from hpolab.studies.stn_network import (
    SIGMA, TRAIN_STEPS, WARMUP_EPOCHS, NetworkSetting, fixed_rows, network_limits, run_network, summarize,
)
from hpolab.studies.stn_network import per_seed  # noqa: F401  (the notebook's per-seed table)
from hpolab.studies.stn_ridge import (
    RidgeRun, ridge_best_response, ridge_data, ridge_sigma_sweep, ridge_validation_curve, run_ridge, squared_loss,
    travel_lr,
)
from hpolab.studies.stn_ridge import ridge_stn_optimum  # noqa: F401  (the notebook's sigma-bias cell)
from hpolab.validation import check_count



# --- the study --------------------------------------------------------------------------------

# Per scale. Ridge: train / validation / test rows, features, warm-up steps, cycles.
RIDGE_SIZES = {"smoke": (40, 100, 200, 30, 500, 150), "cpu": (60, 200, 1000, 40, 1000, 300),
               "paper": (60, 200, 1000, 40, 2000, 1000)}
# MLP: train / validation / test images (None: all 10 000), hidden sizes, training steps, evaluations, seeds.
NETWORK_SIZES = {"smoke": (256, 256, 256, (32,), 60, 4, 1), "cpu": (2000, 2000, 5000, (256, 256), 1000, 20, 3),
                 "paper": (50_000, 10_000, None, (1000, 1000), 20_000, 50, 2)}
GRIDS = {  # (weight decays, dropouts) of the fixed-hyperparameter baseline
    "smoke": ([1e-4], [0.0, 0.5]),
    "cpu": ([1e-5, 1e-3, 1e-2], [0.0, 0.25, 0.5]),
    "paper": ([1e-6, 1e-5, 1e-4, 1e-3, 1e-2], [0.0, 0.2, 0.4, 0.6]),
}
SIGMA_SWEEP = (0.01, 0.03, 0.1, 0.3, 1.0, 2.0)


@dataclass
class STNResult(StudyResult):
    """The study's histories and summary, the ridge run and the sigma sweep of its closed form."""

    ridge: RidgeRun | None = None
    sweep: pd.DataFrame = field(default_factory=pd.DataFrame)
    tables: ClassVar[dict[str, str]] = {"sweep": "sigma_sweep"}


@saves_results
def run_study(scale: str = "cpu", sigma: float = SIGMA, hyper_lr: float | None = None, weight_decay: float = 1e-4,
              dropout: float = 0.05, weight_decays: Sequence[float] | None = None,
              dropouts: Sequence[float] | None = None, steps: int | None = None, train_steps: int = TRAIN_STEPS,
              val_batch_size: int | None = None, warmup_epochs: float = WARMUP_EPOCHS, seeds: int | None = None,
              ridge_sigma: float = SIGMA, ridge_log_lambda0: float = -4.0, device: str = "cpu",
              progress: bool = True) -> STNResult:
    """Study 12: STN on ridge regression, then on the MNIST MLP against the fixed grid, and the
    schedule STN found replayed on the plain MLP from scratch.

    Args:
      sigma, hyper_lr, train_steps, val_batch_size: STN's perturbation scale, step size on
        lambda (None: :func:`travel_lr`), T_train and validation examples per tuning step on
        the MLP (None: the training batch size).
      warmup_epochs: epochs STN trains phi before its first tuning step, >= 0.
      weight_decay, dropout: where STN starts on the MLP.
      weight_decays, dropouts: the grid (default: the scale's); every pair is one run per seed.
      steps: training steps of every MLP run (default: the scale's).
      seeds: MLP runs per setting, seeds 0, 1, ... (initialization, batches, dropout and
        perturbations; the data split is the same); default: the scale's.
      ridge_sigma, ridge_log_lambda0: STN's sigma and starting log lambda on ridge regression.
    """
    check_scale(scale)
    torch_device = resolve_device(device)
    if not (isinstance(warmup_epochs, (int, float)) and 0 <= warmup_epochs < math.inf):
        raise ValueError(f"warmup_epochs must be a finite number >= 0, got {warmup_epochs!r}")
    n_train, n_val, n_test, features, ridge_warmup, cycles = RIDGE_SIZES[scale]
    ridge = run_ridge(ridge_data(n_train, n_val, n_test, features), log_lambda0=ridge_log_lambda0,
                      sigma=ridge_sigma, cycles=cycles, warmup=ridge_warmup)
    sweep = ridge_sigma_sweep(ridge.data, [ridge_log_lambda0, ridge.optimum], SIGMA_SWEEP)
    n_train, n_val, n_test, hidden, default_steps, evaluations, default_seeds = NETWORK_SIZES[scale]
    steps = check_count("steps", steps if steps is not None else default_steps, minimum=1)
    seeds = check_count("seeds", seeds if seeds is not None else default_seeds, minimum=1)
    batch_size = NetworkSetting("fixed", 0.0, 0.0).batch_size
    warmup = round(warmup_epochs * max(1, n_train // batch_size))
    grid_decays, grid_dropouts = GRIDS[scale]
    grid = [(wd, p) for wd in (weight_decays or grid_decays) for p in (dropouts or grid_dropouts)]
    common = {"hidden": tuple(hidden), "steps": steps, "evaluations": evaluations}
    tuner = NetworkSetting("stn", weight_decay, dropout, sigma=sigma, hyper_lr=hyper_lr, train_steps=train_steps,
                           val_batch_size=val_batch_size, warmup=warmup, **common)
    plan = [tuner, *[NetworkSetting("fixed", wd, p, **common) for wd, p in grid]]
    data = mnist_split(n_train, n_val, n_test, device=str(torch_device))
    histories = []
    with progress_bar(total=len(plan) * seeds + seeds, desc="runs", disable=not progress) as bar:
        for seed in range(seeds):
            for setting in plan:
                bar.set_postfix_str(f"{setting.label}, seed {seed}", refresh=False)
                histories.append(run_network(setting, data, seed=seed))
                bar.update()
            found = next(h for h in histories if h.method == "stn" and h.seed == seed)
            replay = NetworkSetting("replay", weight_decay, dropout, schedule=found.as_schedule(), **common)
            bar.set_postfix_str(f"{replay.label}, seed {seed}", refresh=False)
            histories.append(run_network(replay, data, seed=seed))
            bar.update()
    histories.append(ridge.history)
    stn_config = next(h.config for h in histories if h.method == "stn")
    parameters = {"scale": scale, "sigma": sigma, "hyper_lr": stn_config["hyper_lr"], "weight_decay": weight_decay,
                  "dropout": dropout, "grid": grid, "steps": steps, "train_steps": train_steps,
                  "val_batch_size": stn_config["val_batch_size"], "warmup_epochs": warmup_epochs,
                  "warmup_steps": warmup, "seeds": seeds, "ridge_sigma": ridge_sigma,
                  "ridge_hyper_lr": ridge.history.config["hyper_lr"], "ridge_log_lambda0": ridge_log_lambda0,
                  "device": str(torch_device)}
    return STNResult(histories, summarize(histories, ridge), parameters, ridge, sweep)




# --- figures: the numbers first (tested), then the drawing ---------------------------------------


def ridge_response_curves(run: RidgeRun, span: float = 2.0, points: int = 41, coordinates: int = 3) -> pd.DataFrame:
    """For every snapshot: log lambda on [c - span, c + span], the exact and the fitted
    response's validation loss, and the first ``coordinates`` coordinates of w*(lambda) and of
    w0 + W1 (lambda - c). Columns: tune_step, center, log_lambda, kind ("exact" / "fitted"),
    val_loss, w0, w1, ..."""
    rows = []
    x, y = run.data.train
    for snap in run.snapshots:
        for h in np.linspace(snap["center"] - span, snap["center"] + span, points):
            exact = ridge_best_response(x, y, float(h))
            fitted = snap["w0"] + snap["w1"][:, 0] * (float(h) - snap["center"])
            for kind, w in (("exact", exact), ("fitted", fitted)):
                rows.append({"tune_step": snap["tune_step"], "center": snap["center"], "log_lambda": float(h),
                             "kind": kind, "val_loss": float(squared_loss(w, run.data.val)),
                             **{f"w{j}": float(w[j]) for j in range(min(coordinates, len(w)))}})
    return pd.DataFrame(rows)


def best_response_figure(run: RidgeRun, span: float = 2.0, coordinate: int = 0) -> go.Figure:
    """Left: the exact validation loss L_val(w*(lambda)) over log lambda and, at each snapshot of
    the run, the fitted response's L_val(w0 + W1 (lambda - c)) around its centre c. Right: one
    coordinate of w*(lambda) and of the fitted lines."""
    from plotly.subplots import make_subplots

    curves = ridge_response_curves(run, span, coordinates=coordinate + 1)
    low = min(run.history.frame["log_lambda"].min(), run.optimum) - span
    high = max(run.history.frame["log_lambda"].max(), run.optimum) + span
    grid = np.linspace(low, high, 121)
    exact_w = [float(ridge_best_response(*run.data.train, float(h))[coordinate]) for h in grid]
    figure = make_subplots(1, 2, subplot_titles=("validation loss", f"weight w[{coordinate}]"))
    figure.add_trace(go.Scatter(x=grid, y=ridge_validation_curve(run.data, grid), name="exact w*(lambda)",
                                line={"color": "black", "width": 3}, opacity=0.35, legendgroup="exact"), 1, 1)
    figure.add_trace(go.Scatter(x=grid, y=exact_w, name="exact", showlegend=False, line={"color": "black", "width": 3},
                                opacity=0.35, legendgroup="exact"), 1, 2)
    for i, (step, snap) in enumerate(curves[curves["kind"] == "fitted"].groupby("tune_step", sort=True)):
        color = PALETTE[i % len(PALETTE)]
        center = float(snap["center"].iloc[0])
        name = f"fitted at tuning step {step} (c = {center:.2f})"
        middle = snap.iloc[(snap["log_lambda"] - center).abs().argmin()]
        figure.add_trace(go.Scatter(x=snap["log_lambda"], y=snap["val_loss"], name=name, legendgroup=name,
                                    line={"color": color}), 1, 1)
        figure.add_trace(go.Scatter(x=[center], y=[middle["val_loss"]], mode="markers", marker={"color": color, "size": 9},
                                    showlegend=False, legendgroup=name), 1, 1)
        figure.add_trace(go.Scatter(x=snap["log_lambda"], y=snap[f"w{coordinate}"], showlegend=False, legendgroup=name,
                                    line={"color": color}), 1, 2)
    figure.add_vline(x=run.optimum, line_dash="dot", line_color="gray")
    figure.update_xaxes(title_text="log lambda")
    figure.update_layout(template="plotly_white", height=420, legend={"font": {"size": 11}},
                         title="Ridge: the fitted linear best response against the exact w*(lambda)")
    return figure


def ridge_trajectory_figure(run: RidgeRun) -> go.Figure:
    """Left: log lambda per tuning step with the exact optimum. Right: the hypergradient through
    the fitted response against the exact d L_val(w*(lambda)) / d log lambda."""
    from plotly.subplots import make_subplots

    frame = run.history.frame
    figure = make_subplots(1, 2, subplot_titles=("log lambda", "hypergradient"))
    figure.add_trace(go.Scatter(x=frame["tune_step"], y=frame["log_lambda"], name="STN", line={"color": PALETTE[0]}), 1, 1)
    figure.add_hline(y=run.optimum, line_dash="dot", line_color="gray", annotation_text="exact optimum", row=1, col=1)
    figure.add_trace(go.Scatter(x=frame["tune_step"], y=frame["hypergradient"], name="through the fitted response",
                                line={"color": PALETTE[1]}), 1, 2)
    figure.add_trace(go.Scatter(x=frame["tune_step"], y=frame["exact_hypergradient"], name="exact",
                                line={"color": "black", "dash": "dash"}), 1, 2)
    figure.update_xaxes(title_text="tuning step")
    figure.update_layout(template="plotly_white", height=380, title="Ridge: STN's hyperparameter and hypergradient")
    return figure


def sigma_figure(sweep: pd.DataFrame) -> go.Figure:
    """Relative error of the Jacobian (and of w0) of the exact minimizer of STN's objective, by sigma."""
    figure = go.Figure()
    for i, (h, part) in enumerate(sweep.groupby("log lambda", sort=False)):
        color = PALETTE[i % len(PALETTE)]
        figure.add_trace(go.Scatter(x=part["sigma"], y=part["Jacobian error"], mode="lines+markers",
                                    name=f"W1, log lambda = {h:.2f}", line={"color": color}))
        figure.add_trace(go.Scatter(x=part["sigma"], y=part["response error"], mode="lines+markers",
                                    name=f"w0, log lambda = {h:.2f}", line={"color": color, "dash": "dot"}))
    figure.update_layout(template="plotly_white", xaxis_type="log", yaxis_type="log", xaxis_title="sigma",
                         yaxis_title="relative error against the exact best response", height=380,
                         title="Ridge: what the perturbation scale costs the fitted response (closed form)")
    return figure


def validation_figure(result: StudyResult) -> go.Figure:
    """Validation loss per training step on the MNIST MLP: mean over seeds with its 95 % band,
    one line per setting, STN drawn thick (the first evaluation, at initialization, left out)."""
    from hpolab.plots import objective_figure

    runs = [History(h.frame.iloc[1:], h.method, h.label, h.problem, h.seed, h.config, h.hyperparameters, h.status,
                    h.message) for h in result.histories if h.problem == "mnist-mlp"]
    figure = objective_figure(runs, x="step", y="objective", band="ci95", x_title="training step",
                              title="validation loss, MNIST MLP (mean over seeds)")
    figure.update_traces(line={"width": 4, "color": "crimson"}, selector={"name": "STN"})
    figure.update_traces(fillcolor="crimson", selector={"legendgroup": "STN", "fill": "toself"})
    return figure.update_layout(yaxis_title="validation loss", height=460)


def grid_points(result: StudyResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the grid's mean final validation loss per (weight decay, dropout), STN's paths through
    that plane: one per seed, columns seed, step, weight_decay, dropout, objective)."""
    grid = fixed_rows(result)
    paths = [h.frame[["step", "weight_decay", "dropout", "objective"]].assign(seed=h.seed)
             for h in result.histories if h.problem == "mnist-mlp" and h.method == "stn"]
    path = pd.concat(paths, ignore_index=True)[["seed", "step", "weight_decay", "dropout", "objective"]] if paths \
        else pd.DataFrame(columns=["seed", "step", "weight_decay", "dropout", "objective"])
    return grid[["weight decay", "dropout", "val loss"]].reset_index(drop=True), path


def grid_figure(result: StudyResult) -> go.Figure:
    """The grid coloured by mean final validation loss, and STN's (weight decay, dropout) path per seed."""
    grid, paths = grid_points(result)
    low = min(grid["weight decay"].min(), paths["weight_decay"].min() if len(paths) else 1.0)
    high = max(grid["weight decay"].max(), paths["weight_decay"].max() if len(paths) else 1e-8)
    figure = go.Figure(go.Scatter(
        x=grid["weight decay"], y=grid["dropout"], mode="markers+text", name="fixed (final validation loss)",
        marker={"size": 22, "color": grid["val loss"], "colorscale": "Viridis_r", "showscale": True,
                "colorbar": {"title": "val loss"}},
        text=[f"{v:.3f}" for v in grid["val loss"]], textposition="top center"))
    for i, (seed, path) in enumerate(paths.groupby("seed")):
        color = PALETTE[(i + 3) % len(PALETTE)]
        figure.add_trace(go.Scatter(x=path["weight_decay"], y=path["dropout"], mode="lines+markers",
                                    name=f"STN seed {seed}", line={"color": color}, marker={"size": 4},
                                    legendgroup=str(seed),
                                    text=[f"step {s}, val {v:.3f}" for s, v in zip(path["step"], path["objective"])]))
        figure.add_trace(go.Scatter(x=path["weight_decay"].iloc[-1:], y=path["dropout"].iloc[-1:], mode="markers",
                                    name=f"end, val {path['objective'].iloc[-1]:.3f}", legendgroup=str(seed),
                                    marker={"color": color, "size": 14, "symbol": "star"}))
    figure.update_layout(template="plotly_white", xaxis_type="log", xaxis_title="weight decay", yaxis_title="dropout",
                         xaxis_range=[math.log10(max(low, 1e-9) / 3), math.log10(max(high, 1e-9) * 3)],
                         height=520, title="MNIST MLP: the fixed grid and STN's paths",
                         legend={"orientation": "h", "y": -0.2})
    return figure


def schedule_figure(result: StudyResult) -> go.Figure:
    """STN's weight decay and dropout per training step (the schedule it found, every tuning
    step), one line per seed; the replayed runs train with exactly these."""
    from plotly.subplots import make_subplots

    figure = make_subplots(1, 2, subplot_titles=("weight decay", "dropout"))
    runs = [h for h in result.histories if h.problem == "mnist-mlp" and h.method == "stn"]
    for i, h in enumerate(runs):
        color = PALETTE[(i + 3) % len(PALETTE)]
        path = h.schedule if len(getattr(h, "schedule", ())) else h.frame
        figure.add_trace(go.Scatter(x=path["step"], y=path["weight_decay"], name=f"seed {h.seed}", line_shape="hv",
                                    legendgroup=str(h.seed), line={"color": color}), 1, 1)
        figure.add_trace(go.Scatter(x=path["step"], y=path["dropout"], name=f"seed {h.seed}", showlegend=False,
                                    line_shape="hv", legendgroup=str(h.seed), line={"color": color}), 1, 2)
    figure.update_yaxes(type="log", row=1, col=1)
    figure.update_xaxes(title_text="training step")
    figure.update_layout(template="plotly_white", height=360, title="STN's hyperparameter schedule")
    return figure




# --- the widget panel ---------------------------------------------------------------------------


def run_one(method: str = "stn", scale: str = "cpu", weight_decay: float = 1e-4, dropout: float = 0.05,
            sigma: float = SIGMA, hyper_lr: float | None = None, steps: int = 1000, seed: int = 0, device: str = "cpu",
            callback=None, should_stop=None) -> History:
    """One MLP run at the scale's data size (what the panel's Run button calls), with the
    study's warm-up, T_train and validation batches; ``hyper_lr`` None: :func:`travel_lr`."""
    n_train, n_val, n_test, hidden, _, evaluations, _ = NETWORK_SIZES[check_scale(scale)]
    data = mnist_split(n_train, n_val, n_test, device=str(resolve_device(device)))
    setting = NetworkSetting(method, weight_decay, dropout, hidden=tuple(hidden), steps=steps, sigma=sigma,
                             hyper_lr=hyper_lr, evaluations=evaluations)
    return run_network(setting, data, seed=seed, callback=callback, should_stop=should_stop)


def default_hyper_lr(scale: str, steps: int) -> float:
    """:func:`travel_lr` of an STN run of ``steps`` steps at ``scale`` (the panel's start)."""
    n_train = NETWORK_SIZES[check_scale(scale)][0]
    setting = NetworkSetting("stn", 1e-4, 0.05, steps=steps)
    return travel_lr(network_limits(), setting.tuning_steps(n_train))


def panel(values: dict | None = None, **overrides):
    """Study 12's widget panel, from the notebook's parameters (``globals()``) and ``overrides``:
    STN or fixed hyperparameters, scale, seed, device, the starting (or fixed) weight decay and
    dropout, sigma, the hyper step size, steps; draws the validation loss."""
    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    scale = check_scale(values.get("scale") or "cpu")
    steps = values.get("steps") or NETWORK_SIZES[scale][4]
    extra = {
        "weight_decay": w.FloatLogSlider(value=values.get("weight_decay") or 1e-4, base=10, min=-7, max=-0.5,
                                         step=0.25, description="weight decay", readout_format=".1e"),
        "dropout": w.FloatSlider(value=values.get("dropout") or 0.05, min=0.01, max=0.9, step=0.01,
                                 description="dropout", continuous_update=False),
        "sigma": w.FloatLogSlider(value=values.get("sigma") or SIGMA, base=10, min=-2, max=0.5, step=0.1,
                                  description="sigma", readout_format=".2f"),
        "hyper_lr": w.FloatLogSlider(value=values.get("hyper_lr") or default_hyper_lr(scale, steps), base=10, min=-4, max=0, step=0.25,
                                     description="hyper lr", readout_format=".0e"),
        "steps": w.BoundedIntText(value=steps, min=10, max=1_000_000, description="steps"),
    }
    uses = {"stn": {"sigma", "hyper_lr"}, "fixed": set()}
    return panel_for(run_one, {"STN": "stn", "fixed": "fixed"}, uses, values, extra, x="step", y="objective",
                     total=lambda s: s["steps"])
