"""Studies 03-05: zeroth-order hypergradients (HOZOG) against exact-gradient and black-box HPO.

HOZOG treats a whole training run as a black box f(h) = L_val(theta_T(h)) and steps h
along ``g = 1 / (mu q) sum_i (f(h + mu u_i) - f(h)) u_i`` (its q + 1 trainings batched).
Every method is charged in the same units, training steps and wall time, and every
history row records the test error of the weights the method just produced.

Study 03 (this module's first part): l2-regularized logistic regression, one
hyperparameter lambda (penalty ``exp(lambda) |w|^2``), data split 2:1:1 into train,
validation and test; methods HOZOG, RFHO forward (FOR) and reverse (REV), HOAG (implicit
differentiation at the L-BFGS minimizer), random search, GP Bayesian optimization and a
BOHB-like method (TPE sampler + Hyperband pruner).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from hpolab.data import load_libsvm
from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.hypergrad import box, classification_task, gradient_descent, make_estimator, schedule
from hpolab.methods.blackbox import make_blackbox
from hpolab.methods.hypergradient_descent import hypergradient_descent
from hpolab.problems.tuning import tuning_problem
from hpolab.progress import progress_bar
from hpolab.runner import run
from hpolab.studies.common import StudyResult, check_scale
from hpolab.validation import check_choice, check_count, check_positive

LOGREG_DATASETS = ("a9a", "w8a", "news20", "mushrooms")  # stand-ins for News20, Covtype, Real-sim
PAPER_DATASETS = ("news20.binary", "covtype.binary", "real-sim")
LOGREG_METHODS = ("hozog", "forward", "reverse", "implicit", "random-search", "bayesian", "bohb")
GRADIENT_METHODS = {"hozog": "zeroth-order", "forward": "forward", "reverse": "reverse", "implicit": "implicit"}
LABELS = {"hozog": "HOZOG", "forward": "FOR", "reverse": "REV", "implicit": "HOAG", "random-search": "RS",
          "bayesian": "GP-BO", "bohb": "BOHB-like"}
NEWS20_POSITIVE = (2, 3, 4, 5, 6, 12, 13, 14, 15)  # comp.* and sci.* against the other groups

# Per scale: examples kept (None: all), features kept for news20, inner steps T, seconds per method.
LOGREG_SIZES = {"smoke": (600, 300, 30, None), "cpu": (None, 2000, 200, 30.0), "paper": (None, None, 1000, 600.0)}
# The paper's steps (0.05 / 0.03 / 0.005) are for a loss summed over examples; hpolab averages
# it, which divides the hypergradient by n ~ 10^4: gamma = 50 moves lambda at a similar pace.
DEFAULT_GAMMA = 50.0
SMOKE_ITERATIONS = 31 * 6  # smoke runs are budgeted in training steps (deterministic), not seconds


@dataclass(frozen=True)
class Split:
    """Train, validation and test tensors of a binary classification set (labels 0 / 1)."""

    name: str
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


def logistic_regression_data(name: str, limit: int | None = None, max_features: int | None = None,
                             seed: int = 0, dtype=torch.float64, device="cpu") -> Split:
    """A LIBSVM set, dense, split 2:1:1 by a seeded permutation.

    news20 (multiclass raw counts) becomes binary (comp.* and sci.* against the rest), keeps
    its ``max_features`` most frequent words, and is scaled as log(1 + count) with unit-norm
    rows; the other sets are used as they are.
    """
    x, y = load_libsvm(name)
    if name == "news20":
        y = np.where(np.isin(y, NEWS20_POSITIVE), 1.0, -1.0)
    if max_features is not None and x.shape[1] > max_features:
        counts = np.asarray((x != 0).sum(axis=0)).ravel()
        x = x[:, np.sort(np.argsort(-counts, kind="stable")[:max_features])]
    dense = torch.tensor(x.toarray(), dtype=dtype)
    if name == "news20":
        dense = torch.log1p(dense)
        dense = dense / dense.norm(dim=1, keepdim=True).clamp_min(1e-12)
    labels = torch.tensor((y > 0).astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    if limit is not None:
        order = order[:limit]
    n = len(order)
    cut1, cut2 = n // 2, (3 * n) // 4
    parts = [order[:cut1], order[cut1:cut2], order[cut2:]]
    train, val, test = ((dense[p].to(device), labels[p].to(device)) for p in parts)
    return Split(name, train, val, test)


def data_step_size(x: torch.Tensor) -> float:
    """1 / L for the averaged logistic loss of a linear model on x (L <= lambda_max(X^T X) / (2 n),
    a bound for the two-logit softmax, with the bias as a column of ones)."""
    ones = torch.ones(len(x), 1, dtype=x.dtype, device=x.device)
    design = torch.cat([x, ones], dim=1)
    top = torch.linalg.matrix_norm(design, ord=2) ** 2 / len(x)
    return float(1.0 / (0.5 * top))


def stable_lambda_limit(step: float, momentum: float) -> float:
    """The largest lambda for which heavy-ball GD with this step stays stable on the penalty:
    the curvature 2 exp(lambda) must stay below 2 (1 + momentum) / step minus the data's 1 / step."""
    return math.log(((2 * (1 + momentum) - 1) / step) / 2)


def logistic_regression_setting(split: Split, horizon: int, momentum: float = 0.9, lambda0: float = -4.0):
    """(task, hyperparameters, lambda range): full-batch GD with momentum at step 1 / L, T steps."""
    d = split.train[0].shape[1]
    torch.manual_seed(0)
    task = classification_task(nn.Linear(d, 2), split.train, split.val, batch_size=None, l2_term=True,
                               dtype=split.train[0].dtype, device=split.train[0].device, name=split.name)
    step = data_step_size(split.train[0])
    hyper = schedule(horizon, lr=step, momentum=momentum, learn=("log_l2",), log_l2=lambda0,
                     dtype=split.train[0].dtype)
    return task, hyper, (-10.0, min(10.0, stable_lambda_limit(step, momentum)))


def device_replicas(build: Callable[[torch.device], object], device: torch.device) -> list | None:
    """``build(d)`` for every GPU when ``device`` is a GPU and several exist: HOZOG then spreads
    its q + 1 trainings over them. None otherwise (one device does it all)."""
    if device.type != "cuda" or torch.cuda.device_count() < 2:
        return None
    return [build(torch.device("cuda", index)) for index in range(torch.cuda.device_count())]


def hozog_executor(address: str = ""):
    """A context giving the executor HOZOG's q + 1 trainings run on: the Dask scheduler at
    ``address`` (``tcp://host:8786``), a two-process cluster on this machine for ``"local"``,
    or None (train here) for ``""``. See :mod:`hpolab.distributed`."""
    if not address:
        return contextlib.nullcontext(None)
    from hpolab.distributed import cluster

    return cluster(None if address == "local" else address)


def tuning_method(name: str, task, hyper, limits, q: int = 1, mu: float = 0.01, gamma: float = DEFAULT_GAMMA,
                  directions: str = "gaussian", batched: bool = True, replicas: list | None = None,
                  executor=None):
    """The studies' methods by name; gradient-based ones take plain projected steps of size gamma.
    HOZOG trains its q + 1 runs inside ``limits`` too, together with ``vmap`` if ``batched``,
    spread over ``replicas`` (the task on each device) if given, or as jobs on ``executor``
    (a Dask cluster's, see :func:`hozog_executor`)."""
    check_choice("method", name, LOGREG_METHODS)
    if name in GRADIENT_METHODS:
        settings = ({"q": q, "mu": mu, "directions": directions, "batched": batched, "limits": limits,
                     "replicas": replicas, "executor": executor} if name == "hozog" else {})
        estimator = make_estimator(GRADIENT_METHODS[name], **settings)
        return hypergradient_descent(task, hyper, estimator, gradient_descent(gamma, limits), seed=0,
                                     label=LABELS[name])
    return make_blackbox(name, task, hyper, limits, seed=0, label=LABELS[name])


def run_logreg_study(scale: str = "cpu", datasets: Sequence[str] = ("a9a", "w8a", "news20"),
                     methods: Sequence[str] = LOGREG_METHODS, q: int = 1, mu: float = 0.01,
                     gamma: float = DEFAULT_GAMMA,
                     seconds: float | None = None, device: str = "cpu", address: str = "",
                     progress: bool = True) -> StudyResult:
    """Study 03: every method on every dataset, for the same wall time (``smoke``: the same
    number of training steps, so that the run is deterministic)."""
    check_scale(scale)
    check_count("q", q, minimum=1)
    check_positive("mu", mu)
    check_positive("gamma", gamma)
    limit, max_features, horizon, default_seconds = LOGREG_SIZES[scale]
    seconds = default_seconds if seconds is None else check_positive("seconds", seconds)
    torch_device = resolve_device(device)
    histories = []
    with hozog_executor(address) as executor, \
            progress_bar(total=len(datasets) * len(methods), desc="runs", disable=not progress) as bar:
        for dataset in datasets:
            split = logistic_regression_data(dataset, limit, max_features, device=torch_device)
            task, hyper, limits_range = logistic_regression_setting(split, horizon)
            limits = box(hyper, {"log_l2": limits_range})
            problem = tuning_problem(task, hyper, test=split.test)
            replicas = device_replicas(lambda d: logistic_regression_setting(
                logistic_regression_data(dataset, limit, max_features, device=d), horizon)[0], torch_device)
            for name in methods:
                bar.set_postfix_str(f"{dataset}, {LABELS.get(name, name)}", refresh=False)
                method = tuning_method(name, task, hyper, limits, q, mu, gamma, replicas=replicas, executor=executor)
                budget = SMOKE_ITERATIONS if seconds is None else 10**12
                history = run(method, problem, budget, seed=0, max_seconds=seconds)
                history.config.update({"dataset": dataset, "method": name, "range": limits_range})
                histories.append(history)
                bar.update()
    parameters = {"scale": scale, "datasets": list(datasets), "methods": list(methods), "q": q, "mu": mu,
                  "gamma": gamma, "seconds": seconds, "horizon": horizon, "device": str(torch_device),
                  "address": address}
    return StudyResult(histories, summarize_logreg(histories), parameters)


def with_suboptimality(histories: Sequence[History]) -> list[History]:
    """Add ``suboptimality`` = f(lambda) - the lowest validation loss any method found on
    that dataset (the paper's definition), to every history's frame (in place)."""
    best: dict[str, float] = {}
    for h in histories:
        finite = h.frame["objective"][np.isfinite(h.frame["objective"])]
        if len(finite):
            best[h.problem] = min(best.get(h.problem, math.inf), float(finite.min()))
    for h in histories:
        h.frame["suboptimality"] = h.frame["best_objective"] - best.get(h.problem, math.nan)
    return list(histories)


def summarize_logreg(histories: Sequence[History]) -> pd.DataFrame:
    """Per dataset and method: best validation loss, its lambda and test error, how many
    training runs and steps it took, and the trials that diverged."""
    with_suboptimality(histories)
    rows = []
    for h in histories:
        frame = h.frame.iloc[1:] if len(h.frame) > 1 else h.frame
        best = frame.loc[frame["objective"].idxmin()] if frame["objective"].notna().any() else frame.iloc[-1]
        rows.append({
            "dataset": h.problem, "method": h.label, "best val loss": float(best["objective"]),
            "lambda": float(best["log_l2"]), "test error": float(best.get("test_error", math.nan)),
            "suboptimality": float(h.frame["suboptimality"].iloc[-1]), "steps": len(h.frame) - 1,
            "training steps": int(h.frame["gradient_evaluations"].iloc[-1]),
            "diverged": int((h.frame["kind"] == "diverged trial").sum()),
        })
    return pd.DataFrame(rows)


def seconds_per_step(history: History) -> float:
    """Wall time per outer step (per trial for the black-box methods)."""
    return history.frame["wall_time"].iloc[-1] / max(len(history.frame) - 1, 1)


def time_to_reach(history: History, tolerance: float) -> float:
    """Wall time at which the history's suboptimality first fell to ``tolerance`` (NaN if never)."""
    reached = history.frame.loc[history.frame["suboptimality"] <= tolerance, "wall_time"]
    return float(reached.iloc[0]) if len(reached) else math.nan


def logreg_findings(result: StudyResult, tolerance: float = 1e-3) -> list[str]:
    """Study 03's claims on this run: HOZOG's cost per hypergradient against the exact-gradient
    methods (FOR, REV, HOAG), and how soon each method gets within ``tolerance`` of the best
    validation loss found."""
    lines = []
    for dataset in dict.fromkeys(h.problem for h in result.histories):
        runs = [h for h in result.histories if h.problem == dataset]
        per_step = {h.label: seconds_per_step(h) for h in runs}
        if "HOZOG" in per_step:
            exact = ", ".join(f"{m} {per_step[m]:.3g} s" for m in ("FOR", "REV", "HOAG") if m in per_step)
            lines.append(f"{dataset}: seconds per step: HOZOG {per_step['HOZOG']:.3g} s; {exact}; "
                         f"black-box trial: " + ", ".join(f"{m} {per_step[m]:.3g} s"
                                                           for m in ("RS", "GP-BO", "BOHB-like") if m in per_step))
        reach = {h.label: time_to_reach(h, tolerance) for h in runs}
        order = sorted(reach, key=lambda m: (math.isnan(reach[m]), reach[m]))
        described = ", ".join(f"{m} {reach[m]:.3g} s" if not math.isnan(reach[m]) else f"{m} never" for m in order)
        lines.append(f"{dataset}: time to within {tolerance:g} of the best validation loss found: {described}")
    return lines


def logreg_run_one(scale: str = "cpu", dataset: str = "a9a", method: str = "hozog", q: int = 1, mu: float = 0.01,
                   gamma: float = DEFAULT_GAMMA, seconds: float = 10.0, device: str = "cpu", callback=None,
                   should_stop=None) -> History:
    """One method on one dataset for ``seconds`` (what the widget panel's Run button calls)."""
    limit, max_features, horizon, _ = LOGREG_SIZES[check_scale(scale)]
    split = _cached_split(dataset, limit, max_features, str(resolve_device(device)))
    task, hyper, limits_range = logistic_regression_setting(split, horizon)
    limits = box(hyper, {"log_l2": limits_range})
    method = tuning_method(method, task, hyper, limits, q, mu, gamma)
    return run(method, tuning_problem(task, hyper, test=split.test), 10**12, seed=0, max_seconds=seconds,
               callback=callback, should_stop=should_stop)


_SPLITS: dict = {}


def _cached_split(dataset, limit, max_features, device) -> Split:
    key = (dataset, limit, max_features, device)
    if key not in _SPLITS:
        _SPLITS[key] = logistic_regression_data(dataset, limit, max_features, device=device)
    return _SPLITS[key]


def _gamma_slider(value: float, low: float, high: float):
    import ipywidgets as w

    return w.FloatLogSlider(value=value, base=10, min=low, max=high, step=0.25, description="gamma")


def _seconds_box(value: float):
    import ipywidgets as w

    return w.BoundedFloatText(value=value, min=1.0, max=36_000.0, description="seconds")


def logreg_panel(values: dict | None = None, **overrides):
    """Study 03's widget panel, from the notebook's parameters (``globals()``) and ``overrides``:
    method, q, mu, scale, device, dataset, gamma, seconds."""
    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    dataset = values.get("dataset") or (values.get("datasets") or ["a9a"])[0]
    extra = {"dataset": w.Dropdown(options=list(LOGREG_DATASETS), value=dataset, description="dataset"),
             "gamma": _gamma_slider(values.get("gamma") or DEFAULT_GAMMA, -2, 3),
             "seconds": _seconds_box(values.get("seconds") or 10.0)}
    uses = {"hozog": {"q", "mu", "gamma"}, "forward": {"gamma"}, "reverse": {"gamma"}, "implicit": {"gamma"},
            "random-search": set(), "bayesian": set(), "bohb": set()}
    return panel_for(logreg_run_one, {LABELS[m]: m for m in LOGREG_METHODS}, uses, values, extra,
                     x="wall_time", y="objective", total=lambda s: s["seconds"])


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
    key = ("cleaning", n_train, n_val, n_test, n_groups, str(resolve_device(device)))
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
