"""Study 11: FDS against black-box HPO and hypergradient descent on one task, same budget
(the FDS paper's section 5.4 and Figure 1).

The paper's setting (``paper`` scale): WRN-16-1 on CIFAR-10 for 50 epochs, nine
hyperparameters within wide ranges: 7 learning rates (one per seventh of the run) in
[-1, 1], one momentum in [-1.5, 1.5] and one weight decay in [-4e-3, 4e-3]; every method
run for the same wall time (the paper: at most 100 hours each on a GTX 2080) from 8 seeds,
each curve the mean over seeds. At ``cpu`` scale LeNet on MNIST stands in for it (140 steps,
one seed, minutes per method); ``smoke`` gives every method the same number of training
steps, so that its run is deterministic.

- **FDS** starts at 0 and moves each value by its own step gamma against its hypergradient's
  sign, halving it on a flip; gamma = 0.1, 0.1 and 3e-4 and the stopping rule (every step
  below 5 % of its value) come from the authors' script for this figure
  (``scripts/paper_figure1.sh``). That script also trains early outer steps on smaller
  budgets (1 then 10 epochs); here every outer step trains the full run, which can only slow
  FDS down.
- **random search**, **Bayesian optimization** (Optuna's GP sampler), **Hyperband** (random
  points, Optuna's Hyperband pruner over training steps) and a **BOHB-like** method (TPE with
  the same pruner), all in :mod:`hpolab.methods.blackbox`, sample the box; the paper used
  HpBandSter's RS, BO, HB and BOHB.
- **HD** adapts one learning rate online from 0, with the momentum and weight decay given
  (:data:`hpolab.studies.fds.HD_MOMENTUM`); its own hypergradient rate is the best of three
  on the validation loss, and all three trainings are charged to it.

Regret is in test accuracy against the best point of a grid around common settings
(:data:`GRID`; the paper: "an expensive grid search around the most common hyperparameters
used in the literature"): at each moment, the test accuracy of the configuration with the
lowest validation loss found so far, subtracted from the grid's.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from hpolab.cache import StudyCache
from hpolab.devices import resolve_device
from hpolab.history import COUNTERS, History
from hpolab.hypergrad import box, per_entry, schedule, sign_descent, train
from hpolab.methods.blackbox import DEFAULT_LABELS, make_blackbox
from hpolab.methods.fds import learn
from hpolab.problems.tuning import classification_metrics, tuning_problem
from hpolab.progress import progress_bar
from hpolab.runner import run
from hpolab.studies.common import StudyResult, check_scale, saves_results
from hpolab.studies.fds import (GRAD_CLIP, HD_HYPERGRAD_LRS, best_hd_run, exact_estimator, hd_training, image_data,
                                image_task, start_check)
from hpolab.studies.fds_claims import CONVERGED_FRAC, ZERO_REGRET
from hpolab.studies.fds_claims import HPO_CLAIMS as CLAIMS
from hpolab.validation import check_choice, check_count, check_positive

STUDY = "11_fds_vs_hpo"
BLACKBOX = ("random-search", "bayesian", "hyperband", "bohb")
METHODS = ("fds", *BLACKBOX, "hd")
LABELS = {"fds": "FDS", **DEFAULT_LABELS, "bohb": "BOHB-like (TPE + Hyperband)", "hd": "HD"}
WINDOWS = 7  # learning rates: one per seventh of the run
RANGES = {"lr": (-1.0, 1.0), "momentum": (-1.5, 1.5), "weight_decay": (-4e-3, 4e-3)}  # the paper's
GAMMAS = {"lr": 0.1, "momentum": 0.1, "weight_decay": 3e-4}  # the authors' script for Figure 1: not tuned here
# the reference grid: a peak rate with a constant or a cosine-annealed shape (over the 7 windows), x momentum x decay
GRID = {"lr": (0.01, 0.03, 0.1, 0.3), "shape": ("constant", "cosine"), "momentum": (0.0, 0.9),
        "weight_decay": (0.0, 5e-4)}
# data, model, train images, validation, test, batch, epochs (None: per_window steps per window),
# steps per window, budget per method and seed (seconds; None: SMOKE_STEPS training steps), seeds
SIZES = {"smoke": ("mnist", "lenet", 448, 128, 256, 32, None, 2, None, 1),
         "cpu": ("mnist", "lenet", 8960, 1000, 2000, 64, None, 20, 100.0, 1),
         "paper": ("cifar10", "wrn-16-1", 47_500, 2_500, None, 256, 50, None, 100 * 3600.0, 8)}
SMOKE_STEPS = 14 * 12  # a deterministic budget in training steps: 12 full trainings


@dataclass
class HpoResult(StudyResult):
    """Every method's history for every seed (``config["method"]``, ``seed``), the summary
    over seeds, the grid the regret refers to and its best point's test accuracy; ``axis``
    is the budget's axis (``wall_time`` in seconds, or ``gradient_evaluations`` at smoke
    scale) and ``budget`` its size per method and seed."""

    grid: pd.DataFrame = field(default_factory=pd.DataFrame)
    reference: float = math.nan
    axis: str = "wall_time"
    budget: float = math.nan
    gamma_check: pd.DataFrame = field(default_factory=pd.DataFrame)
    tables: ClassVar[dict[str, str]] = {"grid": "grid"}

    @property
    def axis_unit(self) -> str:
        return "s" if self.axis == "wall_time" else "training steps"

    def runs_of(self, method: str) -> list[History]:
        return [h for h in self.histories if h.config.get("method") == method]

    def regret_curve(self, method: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(x, mean regret over seeds) of ``method``: each seed's regret is a step function
        of the axis (before anything is found, the regret of accuracy 0); None if not run."""
        runs = self.runs_of(method)
        if not runs:
            return None
        x = np.unique(np.concatenate([h.frame[self.axis].to_numpy(float) for h in runs]))
        curves = []
        for h in runs:
            times = h.frame[self.axis].to_numpy(float)
            regret = (self.reference - h.frame["found_acc"].fillna(0.0)).to_numpy(float)
            index = np.searchsorted(times, x, side="right") - 1
            curves.append(np.where(index >= 0, regret[np.clip(index, 0, None)], self.reference))
        return x, np.mean(curves, axis=0)

    def time_to_regret(self, method: str, target: float) -> float | None:
        """When the mean regret of ``method`` first fell to ``target`` (NaN: never; None: not run)."""
        curve = self.regret_curve(method)
        if curve is None:
            return None
        x, regret = curve
        reached = np.nonzero(regret <= target)[0]
        return float(x[reached[0]]) if len(reached) else math.nan

    def final_regret(self, method: str) -> float | None:
        """The mean over seeds of ``method``'s regret at the end of its budget (None: not run)."""
        curve = self.regret_curve(method)
        return None if curve is None else float(curve[1][-1])


def setting(scale: str, device, grad_clip: float | None = GRAD_CLIP):
    """(task, test set, hyperparameters learned from 0, box) for the scale; each coordinate of
    the training gradient clamped to [-grad_clip, grad_clip] (the authors' script for Figure 1: 3)
    in every method's trainings but HD's."""
    data, model, n_train, n_val, n_test, batch, epochs, per_window, *_ = SIZES[check_scale(scale)]
    split, _ = image_data(data, n_train, n_val, n_test, device)
    task = image_task(split, model, batch, device, name=f"{model}-{data}", grad_clip=grad_clip)
    horizon = epochs * (n_train // batch) if epochs else WINDOWS * per_window
    hyper = schedule(horizon, lr=0.0, momentum=0.0, weight_decay=0.0, windows={"lr": -(-horizon // WINDOWS)},
                     learn=("lr", "momentum", "weight_decay"), dtype=torch.float32)
    return task, split["test"], hyper, box(hyper, RANGES)


def grid_points(hyper) -> list[dict]:
    """Every point of :data:`GRID` as learned values (a cosine shape is annealed over the
    learning-rate windows, evaluated at each window's middle)."""
    n = hyper.values["lr"].numel()
    cosine = 0.5 * (1 + torch.cos(torch.pi * (torch.arange(n, dtype=torch.float64) + 0.5) / n))
    points = []
    for lr, shape, momentum, decay in itertools.product(*GRID.values()):
        rates = torch.full((n,), lr, dtype=torch.float64) if shape == "constant" else lr * cosine
        points.append({"lr": lr, "shape": shape, "momentum": momentum, "weight_decay": decay, "rates": rates})
    return points


def grid_reference(task, test, hyper) -> pd.DataFrame:
    """Every grid point trained with seed 0: its validation loss and test accuracy."""
    metrics = classification_metrics(task, test)
    rows = []
    for point in grid_points(hyper):
        values = hyper.replace(lr=point["rates"].to(hyper.values["lr"].dtype),
                               momentum=torch.tensor([point["momentum"]]),
                               weight_decay=torch.tensor([point["weight_decay"]]))
        trained = train(task, values, 0)
        bad = trained.diverged
        rows.append({k: point[k] for k in ("lr", "shape", "momentum", "weight_decay")}
                    | {"val loss": math.nan if bad else float(task.val_loss(trained.theta)),
                       "test acc": math.nan if bad else 1 - metrics(trained.theta, values.pack())["test_error"]})
    return pd.DataFrame(rows)


def run_method(name: str, task, test, hyper, limits, seconds: float | None, device, estimator="auto",
               cache: StudyCache | None = None, seed: int = 0, gammas: dict | None = None, callback=None,
               should_stop=None, progress=True) -> History:
    """One method from ``seed`` under the budget (``seconds`` of wall time, or SMOKE_STEPS
    training steps)."""
    check_choice("method", name, METHODS)
    if name == "fds":
        chosen, _ = exact_estimator(estimator, device)
        outer = sign_descent(per_entry(hyper, gammas or GAMMAS, "gamma"), limits)
        steps = None if seconds else SMOKE_STEPS // hyper.horizon - 1
        history = learn(task, hyper, chosen, outer, steps, test=test, cache=cache, label=LABELS[name], seed=seed,
                        max_seconds=seconds, converged_frac=CONVERGED_FRAC, callback=callback,
                        should_stop=should_stop, progress=progress)
    elif name == "hd":
        history = best_hd(task, hyper.horizon, test, seed, callback, should_stop)
    else:
        method = make_blackbox(name, task, hyper, limits, seed=None, label=LABELS[name])
        history = run(method, tuning_problem(task, hyper, test=test), None if seconds else SMOKE_STEPS, seed=seed,
                      max_seconds=seconds, callback=callback, should_stop=should_stop)
    history.config["method"] = name
    history.seed = seed
    return with_regret_columns(history)


def best_hd(task, horizon: int, test, seed: int = 0, callback=None, should_stop=None) -> History:
    """HD trained once per hypergradient rate in HD_HYPERGRAD_LRS; the run of lowest final
    validation loss (a diverged run only if all diverged), charged for all of them: its rows'
    costs (every counter, ``iteration`` and ``wall_time``) and ``runs`` count the other
    trainings as done before it."""
    runs = [hd_training(task, horizon, rate, seed, test, record_every=horizon, callback=callback,
                        should_stop=should_stop) for rate in HD_HYPERGRAD_LRS]
    best = best_hd_run(runs) or runs[-1]
    others = [h for h in runs if h is not best]
    for column in ("iteration", *COUNTERS, "wall_time", "runs"):
        best.frame[column] = best.frame[column] + sum(h.frame[column].iloc[-1] for h in others)
    best.label = f"HD (beta_hd {best.config['hypergrad_lr']:g})"
    best.message = best.message or ", ".join(f"beta_hd {h.config['hypergrad_lr']:g}: {h.status}" for h in runs)
    return best


def with_regret_columns(history: History) -> History:
    """Add ``runs`` (trainings so far), ``found_val`` / ``found_acc`` (the validation loss and
    test accuracy of the best finished configuration so far) to the history's frame."""
    frame = history.frame
    if "test_accuracy" not in frame and "test_error" in frame:
        frame["test_accuracy"] = 1.0 - frame["test_error"]
    finished = frame["kind"].isin(["trial", "hypergradient", "final", "inner"])
    if "runs" not in frame:
        frame["runs"] = (frame["kind"] != "start").cumsum()
    value = frame["objective"].where(finished & np.isfinite(frame["objective"]))
    best_index = value.expanding().apply(lambda v: np.nanargmin(v) if np.isfinite(v).any() else -1, raw=True)
    found = [frame["test_accuracy"].iloc[int(i)] if i >= 0 else math.nan for i in best_index]
    frame["found_val"] = value.cummin().ffill()
    frame["found_acc"] = found
    return history


@saves_results
def run_study(scale: str = "cpu", methods=METHODS, seconds: float | None = None, seeds: int | None = None,
                  estimator: str = "auto", device: str = "cpu", cache: bool = True,
                  progress: bool = True, grad_clip: float | None = GRAD_CLIP) -> HpoResult:
    """Study 11: the grid reference, then every method from every seed for the same budget.
    Each finished method and seed (and each FDS outer step) is cached under
    ``runs/cache/11_fds_vs_hpo/``."""
    check_scale(scale)
    *_, default_budget, default_seeds = SIZES[scale]
    budget = default_budget if seconds is None else check_positive("seconds", seconds)
    n_seeds = default_seeds if seeds is None else check_count("seeds", seeds, minimum=1)
    for name in methods:
        check_choice("method", name, METHODS)
    torch_device = resolve_device(device)
    task, test, hyper, limits = setting(scale, torch_device, grad_clip)
    _, estimator_used = exact_estimator(estimator, torch_device)
    parameters = {"scale": scale, "sizes": SIZES[scale][:8], "seconds": budget, "horizon": hyper.horizon,
                  "gammas": GAMMAS, "ranges": RANGES, "grid": GRID, "init": "xavier", "converged_frac": CONVERGED_FRAC,
                  "grad_clip": grad_clip}
    store = StudyCache(STUDY, parameters, enabled=cache)
    parameters["seeds"] = n_seeds
    with progress_bar(total=len(methods) * n_seeds + 1, desc="grid, methods", disable=not progress) as bar:
        grid = store.get_or_compute("grid", lambda: grid_reference(task, test, hyper))
        factor, gamma_check = store.get_or_compute("start-check", lambda: start_check(task, hyper, GAMMAS))
        gammas = {name: value * factor for name, value in GAMMAS.items()}
        bar.update()
        histories = []
        for seed in range(n_seeds):
            for name in methods:
                bar.set_postfix_str(f"{LABELS[name]}, seed {seed}", refresh=False)
                piece = f"{name}-seed{seed}"
                history = store.load(piece)
                if history is None:
                    history = run_method(name, task, test, hyper, limits, budget, torch_device, estimator, store,
                                         seed=seed, gammas=gammas, progress=progress)
                    if history.status == "finished":
                        store.save(piece, history)
                histories.append(history)
                bar.update()
    reference = float(grid.loc[grid["val loss"].idxmin(), "test acc"])
    parameters.update({"estimator": estimator_used, "device": str(torch_device), "gammas_used": gammas})
    result = HpoResult(histories, pd.DataFrame(), parameters, grid=grid, reference=reference,
                       axis="wall_time" if budget else "gradient_evaluations",
                       budget=budget if budget else float(SMOKE_STEPS), gamma_check=gamma_check)
    result.summary = summarize(result, methods)
    return result


def summarize(result: HpoResult, methods, target: float = ZERO_REGRET) -> pd.DataFrame:
    """One row per method, over its seeds: trainings, diverged trainings, final regret (mean
    and per seed's range) and when the mean regret first fell to ``target``."""
    rows = []
    for name in methods:
        runs = result.runs_of(name)
        if not runs:
            continue
        finals = [result.reference - float(h.frame["found_acc"].iloc[-1]) for h in runs]
        reach = result.time_to_regret(name, target)
        rows.append({"method": runs[0].label if name == "hd" and len(runs) == 1 else LABELS[name], "seeds": len(runs),
                     "runs": float(np.mean([h.frame["runs"].iloc[-1] for h in runs])),
                     "training steps": float(np.mean([h.frame["gradient_evaluations"].iloc[-1] for h in runs])),
                     "diverged": float(np.mean([h.frame["kind"].isin(["diverged trial", "diverged"]).sum()
                                                for h in runs])),
                     "best val loss": float(np.mean([h.frame["found_val"].iloc[-1] for h in runs])),
                     "regret": float(np.mean(finals)), "worst seed's regret": float(np.max(finals)),
                     f"{result.axis_unit} to regret <= {target:g}": reach,
                     "status": ", ".join(sorted({h.status for h in runs}))})
    return pd.DataFrame(rows)


def regret_figure(result: HpoResult, x: str | None = None) -> go.Figure:
    """Mean regret over seeds in test accuracy of the best configuration found so far, against
    the budget's axis (the paper's Figure 1; ``x="runs"``: against trainings, first seed)."""
    figure = go.Figure()
    for name in METHODS:
        if x == "runs":
            runs = result.runs_of(name)
            if runs:
                frame = runs[0].frame
                figure.add_trace(go.Scatter(x=frame["runs"], y=result.reference - frame["found_acc"],
                                            mode="lines+markers", line={"shape": "hv"}, name=LABELS[name]))
            continue
        curve = result.regret_curve(name)
        if curve is not None:
            figure.add_trace(go.Scatter(x=curve[0], y=curve[1], mode="lines+markers", line={"shape": "hv"},
                                        name=LABELS[name]))
    figure.add_hline(y=ZERO_REGRET, line_dash="dot")
    axis = "runs" if x == "runs" else result.axis
    figure.update_layout(title="Regret in test accuracy against the best grid point (dotted: 'zero regret')",
                         template="plotly_white",
                         xaxis_title={"wall_time": "wall time (s)", "runs": "trainings",
                                      "gradient_evaluations": "training steps"}.get(axis, axis),
                         yaxis_title="regret (grid accuracy - accuracy)", xaxis_type="log")
    return figure


def run_one(method: str = "fds", seconds: float = 30.0, seed: int = 0, scale: str = "smoke", device: str = "cpu",
            callback=None, should_stop=None) -> History:
    """One method for ``seconds`` (what the widget panel runs); rows carry ``found_acc``
    only at the end, so the live figure draws each run's test accuracy."""
    torch_device = resolve_device(device)
    task, test, hyper, limits = setting(scale, torch_device)

    def with_accuracy(row):
        if callback is not None:
            row.setdefault("test_accuracy", 1 - row.get("test_error", math.nan))
            callback(row)

    return run_method(method, task, test, hyper, limits, check_positive("seconds", seconds), torch_device,
                      seed=seed, callback=with_accuracy, should_stop=should_stop, progress=False)


def panel(values: dict | None = None, **overrides):
    """Study 11's panel: method, seconds, scale, device; the live figure draws the test
    accuracy of each training (trial or outer step) against wall time."""
    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    extra = {"seconds": w.BoundedFloatText(value=values.get("seconds") or 30.0, min=1.0, max=36_000.0,
                                           description="seconds")}
    return panel_for(run_one, {LABELS[m]: m for m in METHODS}, {m: set() for m in METHODS}, values, extra,
                     x="wall_time", y="test_accuracy", log_y=False, total=lambda s: s["seconds"])
