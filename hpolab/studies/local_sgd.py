"""Study 13: local SGD, communication rounds against local steps.

P simulated workers each take H local SGD steps on their own iid shard between parameter
averages (:mod:`hpolab.local_sgd`). For several constant periods H (H = 1 is mini-batch
SGD with batch P b) and two growing schedules, the study records the training objective
of the averaged model against local steps per worker (parallel steps) and against
communication rounds, on l2-regularized logistic regression (LIBSVM a9a, w8a; the
optimum f* computed by L-BFGS, so the objective is shown as f - f*) and on a small MLP
(MNIST). Every configuration of a seed starts from the same weights and sees the same
shards and minibatch streams, so configurations differ only in when they average.

The setting follows the notes (``../shared/papers/iclr-optimization-notes.txt``) where they
give one: P workers, batch size 1 per worker ("workers use batch_size=1"), logistic
regression with a strong-convexity term (lambda = 1e-4). Patel & Dieuleveut's large steps
gamma_t = gamma_0 t^-alpha take alpha in (1/2, 1) (their abstract); the notes give no value, so
the study takes the middle, alpha = 3/4. gamma_0 is not given either: :func:`lr_sweep` runs
mini-batch SGD (H = 1, seed 0) over a grid of gamma_0 and every configuration then uses the
one with the lowest final objective (tuning the baseline, never a local-SGD run).

The growing schedules:

* ``growing``: H_r = 1 + r after r rounds (uncapped): the number of local steps after the
  r-th communication grows with r, as in Patel & Dieuleveut; T steps take about sqrt(2 T)
  rounds. Since t ~ r^2 / 2 steps are done after r rounds, H grows as sqrt(2 t): inversely
  to the distance to the solution when that distance falls as t^-1/2.
* ``plateau`` (ours, not the paper's): start at H = 1 and double H whenever the workers' mean
  minibatch loss over the last ``window`` steps fell by less than 1 % against the window
  before (capped at the largest constant H): "H grows as the run nears its solution",
  measured rather than scheduled.

The claims (:data:`CLAIMS`) are checked on the logistic-regression tasks only: Stich's rates
and Patel & Dieuleveut's communication bounds are proved for convex (logistic) losses. The
MLP shows the same curves beyond the papers' setting.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from torch import nn

from hpolab.data import as_tensors, load_libsvm, load_mnist
from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.local_sgd import growing, make_schedule, plateau, run_local_sgd
from hpolab.plots import PALETTE
from hpolab.progress import progress_bar
from hpolab.studies.common import StudyResult, check_scale
from hpolab.studies.local_sgd_claims import final_value, measured, summarize
from hpolab.studies.local_sgd_claims import CLAIMS, NOTEBOOK  # noqa: F401  (the claims every run checks)
from hpolab.studies.local_sgd_claims import at_equal_rounds, target_table, targets  # noqa: F401  (the notebook's tables)
from hpolab.validation import check_choice, check_count, check_positive
from hpolab.seeding import global_seed

TASKS = ("a9a-logreg", "w8a-logreg", "mnist-mlp")
PERIOD_SCHEDULES = ("growing", "plateau")
WEIGHT_DECAY = {"a9a-logreg": 1e-4, "w8a-logreg": 1e-4, "mnist-mlp": 0.0}
BATCH_SIZE = 1  # the notes: "workers use batch_size=1"
LR_DECAY = 0.75  # Patel & Dieuleveut: gamma_t = gamma_0 t^-alpha, alpha in (1/2, 1); the middle
# The gamma_0 tried for mini-batch SGD (H = 1) before the study: powers of two. The MLP's grid
# reached 2 and 4 after its first cpu run picked 1, the edge of a grid ending there.
LR_GRIDS = {"a9a-logreg": (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0), "w8a-logreg": (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0),
            "mnist-mlp": (0.03125, 0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0)}
HIDDEN = 64

# Per scale and task: training examples (None: all), test examples, local steps, seeds.
SIZES = {
    "smoke": {"a9a-logreg": (2000, 500, 64, 1), "w8a-logreg": (2000, 500, 64, 1), "mnist-mlp": (1024, 256, 64, 1)},
    "cpu": {"a9a-logreg": (None, None, 4000, 3), "w8a-logreg": (None, None, 4000, 3),
            "mnist-mlp": (10_000, 2_000, 2000, 2)},
    "paper": {"a9a-logreg": (None, None, 20_000, 5), "w8a-logreg": (None, None, 20_000, 5),
              "mnist-mlp": (None, None, 20_000, 5)},
}


# --------------------------------------------------------------------------- tasks


@functools.lru_cache(maxsize=4)
def load_task_data(task: str, n_train: int | None, n_test: int | None, device: str):
    """(train, test) tensors: LIBSVM sets in float64 with labels 0 / 1 (a9a with its own
    test file a9a.t; w8a split 3:1 by a fixed permutation); MNIST flattened in float32,
    standardized with the training mean and deviation."""
    check_choice("task", task, TASKS)
    if task == "mnist-mlp":
        x, y = as_tensors(load_mnist(train=True), limit=n_train, device=device)
        xt, yt = as_tensors(load_mnist(train=False), limit=n_test, device=device)
        mean, std = x.mean(), x.std()
        return (((x - mean) / std).flatten(1), y), (((xt - mean) / std).flatten(1), yt)
    name = task.split("-")[0]
    x, y = _libsvm(name)
    if name == "a9a":
        xt, yt = _libsvm("a9a.t", n_features=x.shape[1])
    else:
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
        cut = (3 * len(y)) // 4
        (x, y), (xt, yt) = (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])
    return (x[:n_train].to(device), y[:n_train].to(device)), (xt[:n_test].to(device), yt[:n_test].to(device))


def _libsvm(name: str, n_features: int | None = None):
    x, y = load_libsvm(name, n_features=n_features)
    return torch.tensor(x.toarray(), dtype=torch.float64), torch.tensor((y > 0).astype(np.int64))


def make_model(task: str, features: int, seed: int) -> nn.Module:
    """Logistic regression (one logit, zero start) or the MLP (one hidden layer of 64 ReLUs,
    torch's default initialization drawn from ``seed``)."""
    if task == "mnist-mlp":
        with global_seed(seed):
            return nn.Sequential(nn.Linear(features, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 10))
    model = nn.Linear(features, 1).double()
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    return model


@functools.lru_cache(maxsize=8)
def logistic_optimum(task: str, n_train: int | None, weight_decay: float) -> float:
    """min_w mean logistic loss + weight_decay / 2 |w|^2 on the training set: the f* of the
    suboptimality curves. L-BFGS in float64; on a9a it ends at a gradient norm of 1.2e-9, so
    by strong convexity (weight_decay = 1e-4) f* is exact to |g|^2 / (2 weight_decay) < 1e-14."""
    (x, y), _ = load_task_data(task, n_train, None, "cpu")
    model = make_model(task, x.shape[1], 0)
    params = list(model.parameters())
    optimizer = torch.optim.LBFGS(params, lr=1, max_iter=1000, tolerance_grad=1e-11, tolerance_change=1e-16,
                                  history_size=50, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        value = nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(-1), y.double())
        value = value + 0.5 * weight_decay * sum((p * p).sum() for p in params)
        value.backward()
        return value

    for _ in range(3):
        optimizer.step(objective)
    return float(objective().detach())


def schedule_for(name: str | int, periods: Sequence[int]):
    """A constant period (an int) or a named growing schedule: ``growing`` uncapped (Patel &
    Dieuleveut's periods have no cap), ``plateau`` capped at the largest constant H studied."""
    if isinstance(name, int) and not isinstance(name, bool):
        return make_schedule(name)
    check_choice("schedule", name, PERIOD_SCHEDULES)
    cap = max(periods) if periods else 64
    return growing(start=1, every=1) if name == "growing" else plateau(start=1, maximum=cap)


def _sizes(scale: str, task: str):
    check_scale(scale)
    check_choice("task", task, TASKS)
    return SIZES[scale][task]


def round_budgets(steps: int, periods: Sequence[int]) -> list[int]:
    """The number of rounds each constant period H takes for ``steps`` local steps,
    ceil(steps / H): every run is also measured there, so that all can be compared at the
    same number of communications."""
    return sorted({math.ceil(steps / h) for h in periods})


def run_task(task: str, period, *, scale: str = "cpu", workers: int = 16, batch_size: int = BATCH_SIZE,
             lr: float, lr_decay: float = LR_DECAY, steps: int | None = None, seed: int = 0,
             device: str = "cpu", evaluations: int = 50, measure_rounds: Sequence[int] = (), callback=None,
             should_stop=None) -> History:
    """One local SGD run of ``task`` at the scale's data size."""
    n_train, n_test, default_steps, _ = _sizes(scale, task)
    torch_device = resolve_device(device)
    train, test = load_task_data(task, n_train, n_test, str(torch_device))
    model = make_model(task, train[0].shape[1], seed).to(torch_device)
    optimum = logistic_optimum(task, n_train, WEIGHT_DECAY[task]) if task != "mnist-mlp" else None
    steps = check_count("steps", steps if steps is not None else default_steps, minimum=1)
    history = run_local_sgd(model, train, workers=workers, period=period, steps=steps, lr=check_positive("lr", lr),
                            lr_decay=lr_decay, batch_size=batch_size, seed=seed, test=test,
                            weight_decay=WEIGHT_DECAY[task], evaluations=evaluations, measure_rounds=measure_rounds,
                            optimum=optimum, problem=task, callback=callback, should_stop=should_stop)
    history.config["task"] = task
    return history


def lr_sweep(task: str, grid: Sequence[float] | None = None, *, scale: str = "cpu", workers: int = 16,
             batch_size: int = BATCH_SIZE, lr_decay: float = LR_DECAY, steps: int | None = None,
             device: str = "cpu") -> pd.DataFrame:
    """Mini-batch SGD (H = 1, seed 0) for every gamma_0 of ``grid`` (default: the task's
    :data:`LR_GRIDS`): its final value (f - f* or loss, mean over the last 10 % of steps; NaN if
    it diverged) and which gamma_0 the study takes (the lowest final value)."""
    grid = LR_GRIDS[check_choice("task", task, TASKS)] if grid is None else grid
    rows = []
    for lr in grid:
        history = run_task(task, 1, scale=scale, workers=workers, batch_size=batch_size, lr=float(lr),
                           lr_decay=lr_decay, steps=steps, device=device, evaluations=20)
        rows.append({"task": task, "lr": float(lr), "final": final_value(history, measured(task)),
                     "status": history.status})
    table = pd.DataFrame(rows)
    finals = table["final"].where(np.isfinite(table["final"]), np.inf)
    if not np.isfinite(finals).any():
        raise ValueError(f"every gamma_0 of the grid {list(grid)} diverged on {task}: give learning_rates")
    table["chosen"] = table.index == int(np.argmin(finals.to_numpy()))
    return table


@dataclass
class LocalSGDResult(StudyResult):
    """The study's histories and summary, and the gamma_0 sweep behind its step sizes."""

    lr_sweep: pd.DataFrame = field(default_factory=pd.DataFrame)

    def save(self, directory):
        paths = super().save(directory)
        paths["lr_sweep"] = paths["summary"].parent / "lr_sweep.csv"
        self.lr_sweep.to_csv(paths["lr_sweep"], index=False)
        return paths


def run_study(scale: str = "cpu", tasks: Sequence[str] = ("a9a-logreg", "mnist-mlp"),
              periods: Sequence[int] = (1, 4, 16, 64), schedules: Sequence[str] = PERIOD_SCHEDULES,
              workers: int = 16, batch_size: int = BATCH_SIZE, learning_rates: dict | None = None,
              lr_decay: float = LR_DECAY, steps: int | None = None, seeds: int | None = None, device: str = "cpu",
              progress: bool = True) -> LocalSGDResult:
    """Every task x (constant H, growing schedules) x seed; one History per run.

    Args:
      learning_rates: gamma_0 per task; a task missing here gets the best of :func:`lr_sweep`.
      lr_decay: alpha of gamma_t = gamma_0 t^-alpha (Patel & Dieuleveut: in (1/2, 1)).
    """
    check_scale(scale)
    check_count("workers", workers, minimum=1)
    check_count("batch_size", batch_size, minimum=1)
    for h in periods:
        check_count("H", h, minimum=1)
    for name in schedules:
        check_choice("schedule", name, PERIOD_SCHEDULES)
    for task in tasks:
        check_choice("task", task, TASKS)
    given = dict(learning_rates or {})
    plan = []
    for task in tasks:
        _, _, default_steps, default_seeds = _sizes(scale, task)
        task_steps = check_count("steps", steps or default_steps, minimum=1)
        task_seeds = check_count("seeds", seeds or default_seeds, minimum=1)
        plan += [(task, c, task_steps, seed) for c in [*periods, *schedules] for seed in range(task_seeds)]
    sweeps, chosen = [], {}
    for task in tasks:
        if task in given:
            chosen[task] = check_positive("lr", float(given[task]))
            continue
        table = lr_sweep(task, scale=scale, workers=workers, batch_size=batch_size, lr_decay=lr_decay,
                         steps=steps, device=device)
        sweeps.append(table)
        chosen[task] = float(table.loc[table["chosen"], "lr"].iloc[0])
    histories = []
    with progress_bar(total=len(plan), desc="runs", disable=not progress) as bar:
        for task, configuration, task_steps, seed in plan:
            schedule = schedule_for(configuration, periods)
            bar.set_postfix_str(f"{task}, {schedule.label}, seed {seed}", refresh=False)
            histories.append(run_task(task, schedule, scale=scale, workers=workers, batch_size=batch_size,
                                      lr=chosen[task], lr_decay=lr_decay, steps=task_steps, seed=seed,
                                      device=device, measure_rounds=round_budgets(task_steps, periods)))
            bar.update()
    parameters = {"scale": scale, "tasks": list(tasks), "periods": list(periods), "schedules": list(schedules),
                  "workers": workers, "batch_size": batch_size, "learning_rates": chosen,
                  "learning_rates_given": given, "lr_decay": lr_decay, "steps": steps, "seeds": seeds,
                  "device": str(resolve_device(device))}
    sweep = pd.concat(sweeps, ignore_index=True) if sweeps else pd.DataFrame(
        columns=["task", "lr", "final", "status", "chosen"])
    return LocalSGDResult(histories, summarize(histories), parameters, sweep)


# --------------------------------------------------------------------------- figures


def curve_table(histories: Sequence[History], x: str = "step", y: str = "objective", points: int = 150,
                log_x: bool = False) -> pd.DataFrame:
    """Per label, y against x over seeds: each run read as a step function of x (its value
    at the last measurement at or before each grid point) on a common grid, linear from 0
    or (``log_x``) log-spaced from 1 to the largest x; geometric mean over the runs that
    have a value there, and the range. Columns: label, x, mean, low, high, runs."""
    rows = []
    groups: dict[str, list[History]] = {}
    for h in histories:
        groups.setdefault(h.label, []).append(h)
    for label, runs in groups.items():
        end = max(float(h.frame[x].iloc[-1]) for h in runs)
        grid = np.unique(np.geomspace(1, max(end, 1), points).round(3) if log_x else np.linspace(0, end, points))
        values = np.full((len(runs), grid.size), np.nan)
        for i, h in enumerate(runs):
            xs, ys = h.frame[x].to_numpy(float), h.frame[y].to_numpy(float)
            at = np.searchsorted(xs, grid, side="right") - 1
            inside = (at >= 0) & (grid <= xs[-1])
            values[i, inside] = ys[at[inside]]
        positive = np.where(values > 0, values, np.nan)
        with np.errstate(all="ignore"):
            counts = np.sum(~np.isnan(values), axis=0)
            mean = np.exp(np.nanmean(np.log(positive), axis=0)) if positive.size else positive
            low = np.nanmin(np.where(counts > 0, values, 0.0), axis=0)
            high = np.nanmax(np.where(counts > 0, values, 0.0), axis=0)
        keep = counts > 0
        rows += [(label, *v) for v in zip(grid[keep], mean[keep], low[keep], high[keep], counts[keep])]
    return pd.DataFrame(rows, columns=["label", "x", "mean", "low", "high", "runs"])


AXIS_TITLES = {"step": "local steps per worker (parallel steps)", "round": "communication rounds",
               "gradient_evaluations": "minibatch gradients, all workers"}


def loss_figure(histories: Sequence[History], x: str = "step", y: str | None = None, title: str | None = None,
                target: float | None = None) -> go.Figure:
    """y (default: f - f* for logistic regression, the loss for the MLP) against local steps
    or communication rounds (log axis), one line per period or schedule (geometric mean
    over seeds, band from the best to the worst run), the target as a dashed line."""
    y = y or measured(histories[0].problem)
    data = curve_table(histories, x, y, log_x=x == "round")
    figure = go.Figure()
    for i, (label, line) in enumerate(data.groupby("label", sort=False)):
        color = PALETTE[i % len(PALETTE)]
        if line["runs"].max() > 1:
            figure.add_trace(go.Scatter(x=np.concatenate([line["x"], line["x"][::-1]]),
                                        y=np.concatenate([line["high"], line["low"][::-1]]), fill="toself",
                                        fillcolor=color, opacity=0.15, line={"width": 0}, hoverinfo="skip",
                                        showlegend=False, legendgroup=label))
        figure.add_trace(go.Scatter(x=line["x"], y=line["mean"], name=label, mode="lines", line={"color": color},
                                    legendgroup=label))
    if target is not None and math.isfinite(target):
        figure.add_hline(y=target, line_dash="dash", line_color="gray")
        if target > 0:  # annotations on a log axis are placed in log10 units
            figure.add_annotation(x=0, xref="paper", y=math.log10(target), yref="y", text="target", showarrow=False,
                                  xanchor="left", yanchor="top")
    figure.update_layout(title=title, xaxis_title=AXIS_TITLES.get(x, x),
                         yaxis_title={"suboptimality": "f - f* (training objective)",
                                      "objective": "training loss"}.get(y, y.replace("_", " ")),
                         xaxis_type="log" if x == "round" else "linear", yaxis_type="log",
                         template="plotly_white", legend={"font": {"size": 11}})
    return figure


def period_figure(histories: Sequence[History], title: str | None = None) -> go.Figure:
    """The communication period H against local steps, for the schedules whose period
    changes (first seed of each; the last round, cut short at the end of the run, is left out)."""
    figure = go.Figure()
    seen = set()
    for h in histories:
        frame = h.frame.iloc[1:-1]
        if h.label in seen or frame["H"].nunique() <= 1:
            continue
        seen.add(h.label)
        figure.add_trace(go.Scatter(x=frame["step"], y=frame["H"], name=h.label, mode="lines", line_shape="hv",
                                    line={"color": PALETTE[(len(seen) + 3) % len(PALETTE)]}))
    figure.update_layout(title=title, xaxis_title=AXIS_TITLES["step"], yaxis_title="H (local steps per round)",
                         yaxis_type="log", template="plotly_white")
    return figure


# --------------------------------------------------------------------------- panel


def run_one(task: str = "a9a-logreg", scale: str = "cpu", schedule: str = "constant", H: int = 16,
            workers: int = 16, lr: float | None = None, lr_decay: float = LR_DECAY, batch_size: int = BATCH_SIZE,
            steps: int | None = None, seed: int = 0, device: str = "cpu", callback=None,
            should_stop=None) -> History:
    """One run for the widget panel: ``schedule`` ``constant`` uses period H; ``growing`` and
    ``plateau`` start at H = 1 and stop growing at H. ``lr`` defaults to the geometric middle
    of the task's gamma_0 grid."""
    if lr is None:
        lr = panel_learning_rate(task)
    if schedule == "constant":
        period = H
    else:
        period = growing(start=1, maximum=H) if schedule == "growing" else schedule_for(schedule, [H])
    return run_task(task, period, scale=scale, workers=workers, batch_size=batch_size, lr=lr, lr_decay=lr_decay,
                    steps=steps, seed=seed, device=device, callback=callback, should_stop=should_stop)


def panel_learning_rate(task: str) -> float:
    """The panel's starting gamma_0 when the notebook gives none: the geometric middle of the
    task's grid."""
    grid = LR_GRIDS[check_choice("task", task, TASKS)]
    return float(math.exp(np.mean(np.log(grid))))


def panel(values: dict | None = None, x: str = "round", **overrides):
    """The widget panel, from the notebook's parameters (``globals()``) and ``overrides``:
    schedule, scale, seed, device, H (the period, or the cap of a growing schedule), P, lr, its
    decay, b, steps; each run adds its line of the training objective against communication
    rounds (``x="step"``: local steps)."""
    import functools

    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    task = values.get("task") or (values.get("tasks") or ["a9a-logreg"])[0]
    scale = values.get("scale") or "cpu"
    rates = values.get("learning_rates") or {}
    extra = {
        "H": w.Dropdown(options=[1, 2, 4, 8, 16, 32, 64, 128, 256], value=16, description="H / max H"),
        "workers": w.Dropdown(options=[1, 2, 4, 8, 16, 32, 64], value=values.get("workers") or 16,
                              description="P workers"),
        "lr": w.FloatLogSlider(value=rates.get(task, panel_learning_rate(task)), base=10, min=-3, max=1.5, step=0.125,
                               description="lr gamma_0", readout_format=".3g"),
        "lr_decay": w.FloatSlider(value=values.get("lr_decay", LR_DECAY), min=0.0, max=1.0, step=0.05,
                                  description="lr decay alpha"),
        "batch_size": w.Dropdown(options=[1, 2, 4, 8, 16, 32, 64], value=values.get("batch_size") or BATCH_SIZE,
                                 description="b"),
        "steps": w.BoundedIntText(value=values.get("steps") or _sizes(scale, task)[2], min=1, max=10**6,
                                  description="steps"),
    }

    def total(settings):
        if x == "step":
            return settings["steps"]
        if settings["schedule"] == "constant":
            return math.ceil(settings["steps"] / settings["H"])
        return math.sqrt(2 * settings["steps"])

    values.setdefault("schedule", "constant")
    view = panel_for(functools.partial(run_one, task=task), ["constant", "growing", "plateau"],
                     {"constant": set(), "growing": set(), "plateau": set()}, values, extra, selector="schedule",
                     x=x, y=measured(task), total=total)
    view.figure.layout.xaxis.type = "log" if x == "round" else "linear"
    view.figure.layout.xaxis.title = AXIS_TITLES[x]
    return view
