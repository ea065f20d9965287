"""Study 13: local SGD, communication rounds against local steps.

P simulated workers each take H local SGD steps on their own iid shard between parameter
averages (:mod:`hpolab.local_sgd`). For several constant periods H (H = 1 is mini-batch
SGD with batch P b) and two growing schedules, the study records the training objective
of the averaged model against local steps per worker (parallel steps) and against
communication rounds, on l2-regularized logistic regression (LIBSVM a9a, w8a; the
optimum f* computed by L-BFGS, so the objective is shown as f - f*) and on a small MLP
(MNIST). Every configuration of a seed starts from the same weights and sees the same
shards and minibatch streams, so configurations differ only in when they average.

Step sizes: Patel & Dieuleveut analyse large decaying steps gamma_t = gamma_0 t^-alpha,
alpha in (1/2, 1); the study uses alpha = 1/2 by default (``lr_decay=0`` for constant
steps). On the same minibatches, a round of H local steps differs from H mini-batch steps
only because each worker takes its gradients at its own point: the average of the workers'
steps is the step from their average only for gradients linear with the same slope on every
minibatch. The gap grows with the workers' spread, of the order of the step: constant steps
keep it up to the end, decaying ones shrink it, which is what lets the period grow.

The growing schedules (see ``../shared/papers/iclr-optimization-notes.txt``):

* ``growing``: H_r = 1 + r after r rounds, Patel & Dieuleveut's communication times with
  the number of local steps growing with the round index; T steps take about sqrt(2 T)
  rounds.
* ``plateau``: start at H = 1 and double H whenever the workers' mean minibatch loss over
  the last ``window`` steps fell by less than 1 % against the window before (capped at the
  largest constant H): "H grows as the run nears its solution", measured rather than
  scheduled.
"""

from __future__ import annotations

import functools
import math
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
from hpolab.validation import check_choice, check_count, check_positive

TASKS = ("a9a-logreg", "w8a-logreg", "mnist-mlp")
SCHEDULES = ("growing", "plateau")
WEIGHT_DECAY = {"a9a-logreg": 1e-4, "w8a-logreg": 1e-4, "mnist-mlp": 0.0}
# gamma_0 of the decaying steps gamma_t = gamma_0 t^-1/2 (Patel & Dieuleveut's large steps, alpha = 1/2).
LEARNING_RATES = {"a9a-logreg": 8.0, "w8a-logreg": 8.0, "mnist-mlp": 0.5}
LR_DECAY = 0.5
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
        torch.manual_seed(seed)
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
    """A constant period (an int) or a named growing schedule, capped at the largest H studied."""
    if isinstance(name, int) and not isinstance(name, bool):
        return make_schedule(name)
    check_choice("schedule", name, SCHEDULES)
    cap = max(periods) if periods else 64
    return growing(start=1, every=1, maximum=cap) if name == "growing" else plateau(start=1, maximum=cap)


def _sizes(scale: str, task: str):
    check_scale(scale)
    check_choice("task", task, TASKS)
    return SIZES[scale][task]


def run_task(task: str, period, *, scale: str = "cpu", workers: int = 16, batch_size: int = 4,
             lr: float | None = None, lr_decay: float = LR_DECAY, steps: int | None = None, seed: int = 0,
             device: str = "cpu", evaluations: int = 50, callback=None, should_stop=None) -> History:
    """One local SGD run of ``task`` at the scale's data size."""
    n_train, n_test, default_steps, _ = _sizes(scale, task)
    torch_device = resolve_device(device)
    train, test = load_task_data(task, n_train, n_test, str(torch_device))
    model = make_model(task, train[0].shape[1], seed).to(torch_device)
    optimum = logistic_optimum(task, n_train, WEIGHT_DECAY[task]) if task != "mnist-mlp" else None
    steps = check_count("steps", steps if steps is not None else default_steps, minimum=1)
    lr = check_positive("lr", lr if lr is not None else LEARNING_RATES[task])
    history = run_local_sgd(model, train, workers=workers, period=period, steps=steps, lr=lr, lr_decay=lr_decay,
                            batch_size=batch_size, seed=seed, test=test, weight_decay=WEIGHT_DECAY[task],
                            evaluations=evaluations, optimum=optimum, problem=task, callback=callback,
                            should_stop=should_stop)
    history.config["task"] = task
    return history


def run_study(scale: str = "cpu", tasks: Sequence[str] = ("a9a-logreg", "mnist-mlp"),
              periods: Sequence[int] = (1, 4, 16, 64), schedules: Sequence[str] = SCHEDULES,
              workers: int = 16, batch_size: int = 4, learning_rates: dict | None = None,
              lr_decay: float = LR_DECAY, steps: int | None = None, seeds: int | None = None, device: str = "cpu",
              progress: bool = True) -> StudyResult:
    """Every task x (constant H, growing schedules) x seed; one History per run."""
    check_scale(scale)
    check_count("workers", workers, minimum=1)
    check_count("batch_size", batch_size, minimum=1)
    for h in periods:
        check_count("H", h, minimum=1)
    for name in schedules:
        check_choice("schedule", name, SCHEDULES)
    learning_rates = {**LEARNING_RATES, **(learning_rates or {})}
    plan = []
    for task in tasks:
        _, _, default_steps, default_seeds = _sizes(scale, task)
        task_steps = check_count("steps", steps or default_steps, minimum=1)
        task_seeds = check_count("seeds", seeds or default_seeds, minimum=1)
        configurations = [*periods, *schedules]
        plan += [(task, c, task_steps, seed) for c in configurations for seed in range(task_seeds)]
    histories = []
    with progress_bar(total=len(plan), desc="runs", disable=not progress) as bar:
        for task, configuration, task_steps, seed in plan:
            schedule = schedule_for(configuration, periods)
            bar.set_postfix_str(f"{task}, {schedule.label}, seed {seed}", refresh=False)
            histories.append(run_task(task, schedule, scale=scale, workers=workers, batch_size=batch_size,
                                      lr=learning_rates[task], lr_decay=lr_decay, steps=task_steps, seed=seed,
                                      device=device))
            bar.update()
    parameters = {"scale": scale, "tasks": list(tasks), "periods": list(periods), "schedules": list(schedules),
                  "workers": workers, "batch_size": batch_size, "learning_rates": learning_rates,
                  "lr_decay": lr_decay, "steps": steps, "seeds": seeds, "device": str(resolve_device(device))}
    return StudyResult(histories, summarize(histories), parameters)


# --------------------------------------------------------------------------- tables


def measured(task: str) -> str:
    """The column a task is judged on: f - f* for logistic regression, the loss for the MLP."""
    return "objective" if task == "mnist-mlp" else "suboptimality"


def final_value(history: History, column: str, tail: float = 0.1) -> float:
    """Mean of ``column`` over the measurements in the last ``tail`` of the run's steps (one
    SGD measurement is noisy; a diverged run gives NaN)."""
    if history.status == "diverged":
        return math.nan
    frame = history.frame
    last = frame["step"].iloc[-1]
    return float(frame.loc[frame["step"] >= (1 - tail) * last, column].mean())


def first_reach(history: History, column: str, target: float) -> tuple[float, float]:
    """(step, round) of the first measurement with ``column`` at or below ``target`` (NaNs if never)."""
    hit = history.frame.loc[history.frame[column] <= target]
    if not len(hit):
        return math.nan, math.nan
    return float(hit["step"].iloc[0]), float(hit["round"].iloc[0])


def is_constant(label: str) -> bool:
    return label.startswith("H=")


def targets(histories: Sequence[History], margin: float = 1.25) -> dict[str, dict[str, float]]:
    """Per task, two levels of the judged column (final values are means over seeds):

    * ``easy``: ``margin`` x the worst final value among the constant periods, a level every
      constant H reaches, so that rounds and steps to it compare all of them;
    * ``H=1``: ``margin`` x the final value of mini-batch SGD (H = 1), its quality.
    """
    found = {}
    for task in dict.fromkeys(h.problem for h in histories):
        finals: dict[str, list[float]] = {}
        for h in histories:
            if h.problem == task and is_constant(h.label):
                finals.setdefault(h.label, []).append(final_value(h, measured(task)))
        means = {label: float(np.nanmean(v)) if not np.isnan(v).all() else math.nan for label, v in finals.items()}
        worst = max((v for v in means.values() if math.isfinite(v)), default=math.nan)
        found[task] = {"easy": margin * worst, "H=1": margin * means.get("H=1", math.nan)}
    return found


def _reach(runs: Sequence[History], column: str, target: float) -> tuple[float, float, int]:
    """Mean (step, round) of first reaching ``target`` over the runs that did, and how many did."""
    reach = np.array([first_reach(h, column, target) for h in runs])
    done = ~np.isnan(reach[:, 0])
    if not done.any():
        return math.nan, math.nan, 0
    return float(reach[done, 0].mean()), float(reach[done, 1].mean()), int(done.sum())


def summarize(histories: Sequence[History], margin: float = 1.25) -> pd.DataFrame:
    """Per task and period or schedule (means over seeds): communication rounds, local steps
    per worker and minibatch gradients of all workers (P x steps), the final value (f - f*
    or loss, mean over the last 10 % of steps), test accuracy, and the rounds and local
    steps taken to reach each target of :func:`targets` (mean over the runs that reached
    it; ``reached`` counts the runs that reached mini-batch SGD's level)."""
    goal = targets(histories, margin)
    groups: dict[tuple[str, str], list[History]] = {}
    for h in histories:
        groups.setdefault((h.problem, h.label), []).append(h)
    rows = []
    for (task, label), runs in groups.items():
        column = measured(task)
        easy_steps, easy_rounds, _ = _reach(runs, column, goal[task]["easy"])
        best_steps, best_rounds, reached = _reach(runs, column, goal[task]["H=1"])
        rows.append({
            "task": task, "schedule": label,
            "rounds": float(np.mean([h.frame["round"].iloc[-1] for h in runs])),
            "steps": int(runs[0].frame["step"].iloc[-1]),
            "gradients": int(runs[0].frame["gradient_evaluations"].iloc[-1]),
            "final": float(np.nanmean([final_value(h, column) for h in runs])),
            "test acc": float(np.mean([h.frame["test_accuracy"].iloc[-1] for h in runs])),
            "rounds to easy": easy_rounds, "steps to easy": easy_steps,
            "rounds to H=1 level": best_rounds, "steps to H=1 level": best_steps,
            "reached": f"{reached}/{len(runs)}",
            "diverged": sum(h.status == "diverged" for h in runs),
        })
    return pd.DataFrame(rows)


def target_table(histories: Sequence[History], margin: float = 1.25) -> pd.DataFrame:
    """The targets of :func:`targets` per task, with the column they apply to."""
    return pd.DataFrame([{"task": task, "measured": measured(task), "easy": levels["easy"], "H=1 level": levels["H=1"]}
                         for task, levels in targets(histories, margin).items()])


def _fmt(value: float) -> str:
    return "never" if not math.isfinite(value) else f"{value:.3g}"


def findings(result: StudyResult) -> list[str]:
    """The claims, checked on this run, per task: (1) a larger constant H reaches the easy
    target in fewer rounds; (2) at a cost in local steps and in final value; (3) a growing
    schedule gets the best of both: mini-batch SGD's level (H = 1's final value x 1.25) in
    all its runs, in fewer rounds than any constant H that reaches that level in all runs."""
    lines = []
    summary = result.summary
    for task, table in summary.groupby("task", sort=False):
        name = "f - f*" if measured(task) == "suboptimality" else "loss"
        rows = table.set_index("schedule")
        constants = sorted((label for label in rows.index if is_constant(label)), key=lambda l: int(l[2:]))
        if len(constants) < 2:
            continue
        rounds = [rows.loc[c, "rounds to easy"] for c in constants]
        steps = [rows.loc[c, "steps to easy"] for c in constants]
        holds = all(b < a for a, b in zip(rounds, rounds[1:]))
        lines.append(f"{task}: larger H reaches the easy target in fewer rounds: "
                     + ", ".join(f"{c} {_fmt(r)}" for c, r in zip(constants, rounds))
                     + (" (holds)" if holds else " (does not hold)"))
        first, last = constants[0], constants[-1]
        finals = ", ".join(f"{c} {_fmt(rows.loc[c, 'final'])}" for c in constants)
        ratio = rows.loc[last, "final"] / rows.loc[first, "final"]
        level = [c for c in constants if rows.loc[c, "reached"].split("/")[0] == rows.loc[c, "reached"].split("/")[1]]
        lines.append(f"{task}: cost per step: local steps to the easy target "
                     + ", ".join(f"{c} {_fmt(s)}" for c, s in zip(constants, steps))
                     + f"; final {name} {finals} ({last} / {first}: {ratio:.3g}x); "
                     + f"constant H reaching {first}'s level in every run: {', '.join(level) or 'none'}")
        best = min((rows.loc[c, "rounds to H=1 level"] for c in level), default=math.nan)
        best_label = next((c for c in level if rows.loc[c, "rounds to H=1 level"] == best), "none")
        for label in rows.index:
            if is_constant(label):
                continue
            row = rows.loc[label]
            everywhere = row["reached"].split("/")[0] == row["reached"].split("/")[1]
            wins = everywhere and row["rounds to H=1 level"] < best
            lines.append(
                f"{task}: {label}: final {name} {_fmt(row['final'])} ({first}: {_fmt(rows.loc[first, 'final'])}, "
                f"{last}: {_fmt(rows.loc[last, 'final'])}) in {row['rounds']:.3g} rounds; reaches {first}'s level "
                f"in {row['reached']} runs, after {_fmt(row['rounds to H=1 level'])} rounds "
                f"(fewest among constant H: {_fmt(best)}, {best_label}) and {_fmt(row['steps to H=1 level'])} steps: "
                + ("best of both" if wins else "not the best of both"))
    return lines


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
            workers: int = 16, lr: float | None = None, lr_decay: float = LR_DECAY, batch_size: int = 4,
            steps: int | None = None, seed: int = 0, device: str = "cpu", callback=None,
            should_stop=None) -> History:
    """One run for the widget panel: ``schedule`` ``constant`` uses period H; ``growing`` and
    ``plateau`` start at H = 1 and stop growing at H."""
    period = H if schedule == "constant" else schedule_for(schedule, [H])
    return run_task(task, period, scale=scale, workers=workers, batch_size=batch_size, lr=lr, lr_decay=lr_decay,
                    steps=steps, seed=seed, device=device, callback=callback, should_stop=should_stop)


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
    rates = values.get("learning_rates") or LEARNING_RATES
    extra = {
        "H": w.Dropdown(options=[1, 2, 4, 8, 16, 32, 64, 128, 256], value=16, description="H / max H"),
        "workers": w.Dropdown(options=[1, 2, 4, 8, 16, 32, 64], value=values.get("workers") or 16,
                              description="P workers"),
        "lr": w.FloatLogSlider(value=rates.get(task, LEARNING_RATES[task]), base=10, min=-3, max=1.5, step=0.125,
                               description="lr gamma_0", readout_format=".3g"),
        "lr_decay": w.FloatSlider(value=values.get("lr_decay", LR_DECAY), min=0.0, max=1.0, step=0.05,
                                  description="lr decay alpha"),
        "batch_size": w.Dropdown(options=[1, 2, 4, 8, 16, 32, 64], value=values.get("batch_size") or 4,
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
