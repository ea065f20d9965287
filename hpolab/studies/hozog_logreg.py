"""Study 03: l2-regularized logistic regression, one hyperparameter lambda (penalty
``exp(lambda) |w|^2``), data split 2:1:1 into train, validation and test; methods HOZOG, RFHO
forward (FOR) and reverse (REV), HOAG (implicit differentiation at the L-BFGS minimizer),
random search, GP Bayesian optimization and a BOHB-like method (TPE sampler + Hyperband pruner).
Shared pieces are in :mod:`hpolab.studies.hozog`.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from hpolab.data import load_libsvm
from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.hypergrad import box, classification_task, schedule
from hpolab.problems.tuning import tuning_problem
from hpolab.progress import progress_bar
from hpolab.runner import run
from hpolab.studies.common import StudyResult, check_scale
from hpolab.validation import check_count, check_positive
from hpolab.studies.hozog import (
    DEFAULT_GAMMA, LABELS, Split, _gamma_slider, _seconds_box, device_replicas, hozog_executor, seconds_per_step,
    time_to_reach, tuning_method, with_suboptimality,
)

LOGREG_DATASETS = ("a9a", "w8a", "news20", "mushrooms")  # stand-ins for News20, Covtype, Real-sim
PAPER_DATASETS = ("news20.binary", "covtype.binary", "real-sim")
LOGREG_METHODS = ("hozog", "forward", "reverse", "implicit", "random-search", "bayesian", "bohb")
NEWS20_POSITIVE = (2, 3, 4, 5, 6, 12, 13, 14, 15)  # comp.* and sci.* against the other groups
# Per scale: examples kept (None: all), features kept for news20, inner steps T, seconds per method.
LOGREG_SIZES = {"smoke": (600, 300, 30, None), "cpu": (None, 2000, 200, 30.0), "paper": (None, None, 1000, 600.0)}
# The paper's steps (0.05 / 0.03 / 0.005) are for a loss summed over examples; hpolab averages
# it, which divides the hypergradient by n ~ 10^4: gamma = 50 moves lambda at a similar pace.
SMOKE_ITERATIONS = 31 * 6  # smoke runs are budgeted in training steps (deterministic), not seconds


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

