"""Study 11: FDS against black-box HPO and hypergradient descent on one task, same budget
(the FDS paper's section 5.4 and Figure 1).

Nine hyperparameters within the paper's wide ranges: 7 learning rates (one per window of
T / 7 steps) in [-1, 1], one momentum in [-1.5, 1.5] and one weight decay in
[-4e-3, 4e-3]. Random search, GP Bayesian optimization, Hyperband and BOHB-like
(Optuna's samplers and Hyperband pruner, :mod:`hpolab.methods.blackbox`) sample the box;
FDS starts at 0 and takes sign-based steps; HD adapts one learning rate online from 0 with
momentum and weight decay given, its own hypergradient rate the best of three. Every method gets the same wall time (``smoke``:
the same number of training steps, so that the run is deterministic).

Regret is in test accuracy against the best point of a grid around common settings
(constant rate x momentum x weight decay): at each moment, the test accuracy of the
configuration with the lowest validation loss found so far, subtracted from the grid's.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from hpolab.cache import StudyCache
from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.hypergrad import box, per_entry, schedule, sign_descent, train
from hpolab.methods.blackbox import DEFAULT_LABELS, make_blackbox
from hpolab.problems.tuning import classification_metrics, tuning_problem
from hpolab.progress import progress_bar
from hpolab.runner import run
from hpolab.studies.common import check_scale
from hpolab.studies.common import StudyResult
from hpolab.studies.fds import HD_HYPERGRAD_LRS, best_hd_run, exact_estimator, hd_training, image_data, image_task, learn
from hpolab.validation import check_choice, check_positive

STUDY = "11_fds_vs_hpo"
BLACKBOX = ("random-search", "bayesian", "hyperband", "bohb")
METHODS = ("fds", *BLACKBOX, "hd")
LABELS = {"fds": "FDS", **DEFAULT_LABELS, "bohb": "BOHB-like (TPE + Hyperband)", "hd": "HD"}
WINDOWS = 7
RANGES = {"lr": (-1.0, 1.0), "momentum": (-1.5, 1.5), "weight_decay": (-4e-3, 4e-3)}
GAMMAS = {"lr": 0.03, "momentum": 0.1, "weight_decay": 5e-4}
GRID = {"lr": (0.01, 0.03, 0.1), "momentum": (0.0, 0.9), "weight_decay": (0.0, 5e-4)}
# train images, validation, test, batch, steps per window, seconds per method (None: steps budget)
SIZES = {"smoke": (448, 128, 256, 32, 2, None), "cpu": (8960, 1000, 2000, 64, 20, 75.0),
         "paper": (45_000, 5_000, None, 128, 50, 3600.0)}
SMOKE_STEPS = 14 * 12  # a deterministic budget in training steps: 12 full trainings


@dataclass
class HpoResult(StudyResult):
    """Every method's history and the summary, with the grid the regret refers to."""

    grid: pd.DataFrame = field(default_factory=pd.DataFrame)
    reference: float = math.nan  # the best grid point's test accuracy

    def save(self, directory: str | Path) -> dict[str, Path]:
        paths = super().save(directory)
        paths["grid"] = Path(directory) / "grid.csv"
        self.grid.to_csv(paths["grid"], index=False)
        return paths


def setting(scale: str, device):
    """(task, test set, hyperparameters learned from 0, box) for the scale."""
    n_train, n_val, n_test, batch, per_window, _ = SIZES[check_scale(scale)]
    split, _ = image_data("mnist", n_train, n_val, n_test, device)
    task = image_task(split, "lenet", batch, device, name="lenet-mnist")
    hyper = schedule(WINDOWS * per_window, lr=0.0, momentum=0.0, weight_decay=0.0, windows={"lr": per_window},
                     learn=("lr", "momentum", "weight_decay"), dtype=torch.float32)
    return task, split["test"], hyper, box(hyper, RANGES)


def grid_reference(task, test, hyper) -> pd.DataFrame:
    """Every grid point (constant rate, momentum, weight decay) trained with seed 0: its
    validation loss and test accuracy."""
    metrics = classification_metrics(task, test)
    rows = []
    for lr, momentum, decay in itertools.product(*GRID.values()):
        point = hyper.replace(lr=torch.full_like(hyper.values["lr"], lr), momentum=torch.tensor([momentum]),
                              weight_decay=torch.tensor([decay]))
        trained = train(task, point, 0)
        bad = trained.diverged
        rows.append({"lr": lr, "momentum": momentum, "weight_decay": decay,
                     "val loss": math.nan if bad else float(task.val_loss(trained.theta)),
                     "test acc": math.nan if bad else 1 - metrics(trained.theta, point.pack())["test_error"]})
    return pd.DataFrame(rows)


def run_method(name: str, task, test, hyper, limits, seconds: float | None, device, estimator="auto",
               cache: StudyCache | None = None, callback=None, should_stop=None, progress=True) -> History:
    """One method under the budget (``seconds`` of wall time, or SMOKE_STEPS training steps)."""
    check_choice("method", name, METHODS)
    if name == "fds":
        chosen, _ = exact_estimator(estimator, device)
        outer = sign_descent(per_entry(hyper, GAMMAS, "gamma"), limits)
        steps = 10**6 if seconds else SMOKE_STEPS // hyper.horizon - 1
        history = learn(task, hyper, chosen, outer, steps, test=test, cache=cache, label=LABELS[name],
                        max_seconds=seconds, callback=callback, should_stop=should_stop, progress=progress)
    elif name == "hd":
        history = best_hd(task, hyper.horizon, test, callback, should_stop)
    else:
        method = make_blackbox(name, task, hyper, limits, seed=None, label=LABELS[name])
        history = run(method, tuning_problem(task, hyper, test=test), 10**12 if seconds else SMOKE_STEPS, seed=0,
                      max_seconds=seconds, callback=callback, should_stop=should_stop)
    history.config["method"] = name
    return with_regret_columns(history)


def best_hd(task, horizon: int, test, callback=None, should_stop=None) -> History:
    """HD trained once per hypergradient rate in HD_HYPERGRAD_LRS; the run of lowest final
    validation loss (a diverged run only if all diverged), charged for all of them."""
    runs = [hd_training(task, horizon, rate, 0, test, record_every=horizon, callback=callback,
                        should_stop=should_stop) for rate in HD_HYPERGRAD_LRS]
    best = best_hd_run(runs) or runs[-1]
    best.frame["runs"] = len(runs)
    best.frame["gradient_evaluations"] = sum(int(h.frame["gradient_evaluations"].iloc[-1]) for h in runs)
    best.frame["wall_time"] = sum(float(h.frame["wall_time"].iloc[-1]) for h in runs)
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


def run_hpo_study(scale: str = "cpu", methods=METHODS, seconds: float | None = None, estimator: str = "auto",
                  device: str = "cpu", cache: bool = True, progress: bool = True) -> HpoResult:
    """Study 11: the grid reference, then every method for the same budget. Each finished
    method (and each FDS outer step) is cached under ``runs/cache/11_fds_vs_hpo/``."""
    check_scale(scale)
    budget = SIZES[scale][-1] if seconds is None else check_positive("seconds", seconds)
    for name in methods:
        check_choice("method", name, METHODS)
    torch_device = resolve_device(device)
    task, test, hyper, limits = setting(scale, torch_device)
    _, estimator_used = exact_estimator(estimator, torch_device)
    parameters = {"scale": scale, "sizes": SIZES[scale][:5], "seconds": budget, "horizon": hyper.horizon,
                  "gammas": GAMMAS, "ranges": RANGES, "grid": GRID}
    store = StudyCache(STUDY, parameters, enabled=cache)
    with progress_bar(total=len(methods) + 1, desc="grid, methods", disable=not progress) as bar:
        grid = store.get_or_compute("grid", lambda: grid_reference(task, test, hyper))
        bar.update()
        histories = []
        for name in methods:
            bar.set_postfix_str(LABELS[name], refresh=False)
            history = store.load(name)
            if history is None:
                history = run_method(name, task, test, hyper, limits, budget, torch_device, estimator, store,
                                     progress=progress)
                if history.status == "finished":
                    store.save(name, history)
            histories.append(history)
            bar.update()
    reference = float(grid.loc[grid["val loss"].idxmin(), "test acc"])
    parameters.update({"estimator": estimator_used, "device": str(torch_device)})
    return HpoResult(histories, summarize(histories, reference), parameters, grid=grid, reference=reference)


def runs_to_regret(history: History, reference: float, target: float) -> tuple[float, float, float]:
    """(trainings, training steps, seconds) until the regret first fell to ``target`` (NaN if never)."""
    frame = history.frame
    reached = frame[(reference - frame["found_acc"]) <= target]
    if reached.empty:
        return math.nan, math.nan, math.nan
    row = reached.iloc[0]
    return float(row["runs"]), float(row["gradient_evaluations"]), float(row["wall_time"])


def summarize(histories: list[History], reference: float, target: float = 0.01) -> pd.DataFrame:
    rows = []
    for h in histories:
        frame = h.frame
        runs, steps, seconds = runs_to_regret(h, reference, target)
        rows.append({"method": h.label, "runs": int(frame["runs"].iloc[-1]),
                     "training steps": int(frame["gradient_evaluations"].iloc[-1]),
                     "diverged": int(frame["kind"].isin(["diverged trial", "diverged"]).sum()),
                     "best val loss": float(frame["found_val"].iloc[-1]),
                     "test acc": float(frame["found_acc"].iloc[-1]),
                     "regret": reference - float(frame["found_acc"].iloc[-1]),
                     f"runs to regret <= {target:g}": runs, f"steps to regret <= {target:g}": steps,
                     "status": h.status})
    return pd.DataFrame(rows)


def findings(result: HpoResult, target: float = 0.01) -> list[str]:
    table = result.summary.set_index("method")
    best = result.grid.loc[result.grid["val loss"].idxmin()]
    lines = [f"reference: the grid's best point (lr {best['lr']:g}, momentum {best['momentum']:g}, weight decay "
             f"{best['weight_decay']:g}) reaches test accuracy {result.reference:.4f}."]
    ranking = table["regret"].sort_values()
    lines.append("regret after the same budget: " + ", ".join(f"{m} {ranking[m]:.4f}" for m in ranking.index
                                                               if ranking[m] == ranking[m]))
    for h in result.histories:
        if h.status != "finished":
            lines.append(f"{h.label} {h.status}: {h.message}")
    column = f"runs to regret <= {target:g}"
    reach = table[column]
    described = ", ".join(f"{m} {int(reach[m])}" if reach[m] == reach[m] else f"{m} never" for m in
                          reach.sort_values(na_position="last").index)
    lines.append(f"trainings needed to reach regret <= {target:g}: {described}.")
    if "FDS" in table.index:
        fds = reach["FDS"]
        others = reach.drop([m for m in reach.index if m == "FDS" or m.startswith("HD")])
        if fds == fds:
            fewer = all(not (o == o) or fds < o for o in others)
            lines.append(f"FDS {'needs fewer trainings than every black-box method' if fewer else 'does not need fewer trainings than every black-box method'} "
                         f"to reach that regret ({int(fds)}).")
        else:
            lines.append("FDS did not reach that regret within the budget.")
    return lines


def regret_figure(result: HpoResult, x: str = "wall_time") -> go.Figure:
    """Regret in test accuracy of the best configuration found so far, against wall time (or runs)."""
    figure = go.Figure()
    for h in result.histories:
        frame = h.frame
        figure.add_trace(go.Scatter(x=frame[x], y=result.reference - frame["found_acc"], mode="lines+markers",
                                    line={"shape": "hv"}, name=h.label))
    figure.add_hline(y=0, line_dash="dot")
    figure.update_layout(title="Regret in test accuracy against the best grid point", template="plotly_white",
                         xaxis_title={"wall_time": "wall time (s)", "runs": "trainings"}.get(x, x),
                         yaxis_title="regret (grid accuracy - accuracy)",
                         xaxis_type="log" if x == "runs" else "linear")  # trainings: FDS's few against hundreds
    return figure


def run_one(method: str = "fds", seconds: float = 30.0, scale: str = "smoke", device: str = "cpu",
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
                      callback=with_accuracy, should_stop=should_stop, progress=False)


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
