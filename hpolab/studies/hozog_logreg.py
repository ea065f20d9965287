"""Study 03: the HOZOG paper's l2-regularized logistic regression (section 3.1, Eq. 5, Figure 1).

    min_{lambda in [-10, 10]}  sum_{i in val} l(y_i <x_i, w(lambda)>),
    w(lambda) = A(lambda) ~ argmin_w  sum_{i in train} l(y_i <x_i, w>) + e^lambda |w|^2,

l(t) = log(1 + e^-t), losses summed (not averaged), data split 2:1:1 into train, validation
and test. The inner solver A is T full-batch Adam steps for HOZOG, RFHO forward (FOR) and
reverse (REV), random search, GP Bayesian optimization and a BOHB-like method (TPE sampler +
Hyperband pruner); HOAG solves with L-BFGS to its decreasing tolerances, warm started
(:mod:`hpolab.methods.hoag`). HOZOG: q = 1, mu = 0.01 and Table 2's gamma per data set; FOR and
REV take the same steps gamma from the same lambda_0 and initial weights.

The paper's data (News20, Covtype, Real-sim) are not here; LIBSVM stand-ins take their place,
each with the gamma of the paper's set it stands in for (:data:`STAND_INS`): news20 for News20
(the same newsgroups), a9a for Covtype (dense-ish, few features), w8a for Real-sim (the other
sparse binary set). Shared pieces are in :mod:`hpolab.studies.hozog`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Sequence

import pandas as pd

from hpolab.devices import cpu_threads, resolve_device
from hpolab.hypergrad import box
from hpolab.problems.tuning import tuning_problem
from hpolab.progress import progress_bar
from hpolab.runner import run
from hpolab.splits import libsvm_split
from hpolab.studies.common import StudyResult, check_scale, saves_results
from hpolab.studies.hozog import LABELS, device_replicas, hozog_executor, tuning_method
from hpolab.studies.hozog_logreg_claims import CLAIMS  # noqa: F401  (re-exported: the ledger reads CLAIMS here)
from hpolab.studies.hozog_logreg_measures import add_paper_measures, summarize_logreg
from hpolab.studies.hozog_logreg_panel import logreg_panel  # noqa: F401  (re-exported: the notebook calls it)
from hpolab.studies.hozog_logreg_setting import (
    LAMBDA0, LAMBDA_RANGE, LOGREG_METHODS, LOGREG_SIZES, SMOKE_ITERATIONS, STAND_INS, adam_step_table,
    logistic_regression_setting, pick_adam_step, subset_factor, table2_gamma,
)
from hpolab.validation import check_count, check_positive


@dataclass
class LogregResult(StudyResult):
    """Study 03's result: the runs, the summary, and per data set the setting used (``settings``)
    and the Adam step-size table it was picked from (``adam_steps``)."""

    settings: pd.DataFrame = field(default_factory=pd.DataFrame)
    adam_steps: pd.DataFrame = field(default_factory=pd.DataFrame)
    tables: ClassVar[dict[str, str]] = {"settings": "settings", "adam_steps": "adam_steps"}


@saves_results
def run_study(scale: str = "cpu", datasets: Sequence[str] = ("a9a", "w8a", "news20"),
                     methods: Sequence[str] = LOGREG_METHODS, q: int = 1, mu: float = 0.01,
                     gamma: float | None = None, lambda0: float = LAMBDA0, adam_step: float | None = None,
                     seconds: float | None = None, device: str = "cpu", address: str = "",
                     threads: int | None = 1, progress: bool = True) -> LogregResult:
    """Study 03: every method on every data set, for the same wall time (``smoke``: the same
    number of training steps, so that the run is deterministic).

    Args:
      gamma: the step of HOZOG, FOR and REV; None takes Table 2's per data set (:func:`table2_gamma`),
        times :func:`subset_factor` where the scale keeps a subset of the examples.
      lambda0: where the gradient methods start. The paper does not say; HOAG's code starts at
        0, which lies within 2.5 of the optimum on all three stand-ins, so the runs would start
        nearly converged: -5 (halfway between the box's lower end and its centre) is the default.
      adam_step: Adam's step size; None picks it per data set by :func:`pick_adam_step`
        (the table is in the result's ``adam_steps``).
      seconds: wall time per method and data set (None: the scale's).
      threads: torch's intra-op CPU threads during the run (None: leave them). One by default:
        these problems are too small to gain from more, and a fixed count keeps the rounding, so
        the ``smoke`` outputs, the same on every machine.
    """
    check_scale(scale)
    check_count("q", q, minimum=1)
    check_positive("mu", mu)
    if gamma is not None:
        check_positive("gamma", gamma)
    if adam_step is not None:
        check_positive("adam_step", adam_step)
    if not LAMBDA_RANGE[0] <= lambda0 <= LAMBDA_RANGE[1]:
        raise ValueError(f"lambda0 must be in [{LAMBDA_RANGE[0]:g}, {LAMBDA_RANGE[1]:g}], got {lambda0!r}")
    limit, max_features, horizon, default_seconds = LOGREG_SIZES[scale]
    seconds = default_seconds if seconds is None else check_positive("seconds", seconds)
    torch_device = resolve_device(device)
    histories, tables, settings = [], [], {}
    with hozog_executor(address) as executor, cpu_threads(threads), \
            progress_bar(total=len(datasets) * len(methods), desc="runs", disable=not progress) as bar:
        for dataset in datasets:
            split = libsvm_split(dataset, limit, max_features, device=torch_device)
            step = adam_step
            if step is None:
                tables.append(adam_step_table(split, horizon))
                step = pick_adam_step(tables[-1])
            step_gamma = table2_gamma(dataset) * subset_factor(split) if gamma is None else gamma
            task, hyper, limits_range = logistic_regression_setting(split, horizon, step, lambda0)
            limits = box(hyper, {"log_l2": limits_range})
            settings[dataset] = {"train": len(split.train[1]), "validation": len(split.val[1]),
                                 "features": split.train[0].shape[1], "T": horizon, "adam step": step,
                                 "gamma": step_gamma}
            problem = tuning_problem(task, hyper, test=split.test)
            replicas = device_replicas(lambda d, dataset=dataset, step=step: logistic_regression_setting(
                libsvm_split(dataset, limit, max_features, device=d), horizon, step, lambda0)[0],
                torch_device)
            for name in methods:
                bar.set_postfix_str(f"{dataset}, {LABELS.get(name, name)}", refresh=False)
                method = tuning_method(name, task, hyper, limits, q, mu, step_gamma, replicas=replicas,
                                       executor=executor)
                budget = SMOKE_ITERATIONS if seconds is None else None
                history = run(method, problem, budget, seed=0, max_seconds=seconds)
                history.config.update({"dataset": dataset, "method": name, "range": limits_range,
                                       "gamma": step_gamma, "adam_step": step})
                histories.append(history)
                bar.update()
            add_paper_measures([h for h in histories if h.problem == dataset], task, hyper, q, mu)
    parameters = {"scale": scale, "datasets": list(datasets), "methods": list(methods), "q": q, "mu": mu,
                  "gamma": gamma, "lambda0": lambda0, "adam_step": adam_step, "seconds": seconds,
                  "horizon": horizon, "device": str(torch_device), "address": address, "threads": threads,
                  "settings": settings}
    table = pd.DataFrame([{"dataset": d, "stands in for": STAND_INS.get(d, "-"), **s} for d, s in settings.items()])
    return LogregResult(histories, summarize_logreg(histories), parameters, table,
                        pd.concat(tables, ignore_index=True) if tables else pd.DataFrame())


def setting_table(result: LogregResult) -> pd.DataFrame:
    """The paper's setting (section 3.1, Table 2) next to this run's, one row per setting."""
    p = result.parameters
    per = result.settings.set_index("dataset") if len(result.settings) else pd.DataFrame()

    def each(column, fmt="{:g}"):
        return ", ".join(f"{d} {fmt.format(v)}" for d, v in per[column].items()) if column in per else "-"

    budget = "the same number of training steps (smoke)" if p.get("seconds") is None else \
        f"{p['seconds']:g} s of wall time per method and data set"
    rows = [
        ("data", "News20, Covtype, Real-sim (LIBSVM)",
         ", ".join(f"{d} for {STAND_INS.get(d, '-')}" for d in p.get("datasets", []))),
        ("examples (train)", "all, split 2:1:1", each("train", "{:d}") + " (split 2:1:1)"),
        ("model and loss (Eq. 5)", "w, l(t) = log(1 + e^-t) summed; penalty e^lambda |w|^2",
         "the same (no bias), losses summed"),
        ("lambda range", "[-10, 10]", f"[{LAMBDA_RANGE[0]:g}, {LAMBDA_RANGE[1]:g}]"),
        ("lambda_0 of the gradient methods", "not stated (HOAG's code: 0)", f"{p.get('lambda0', LAMBDA0):g}"),
        ("inner solver", "Adam (L-BFGS for HOAG)", "full-batch Adam, T steps (HOAG: L-BFGS, warm started)"),
        ("Adam steps T and step size", "not stated", f"T {p.get('horizon')}; step " + each("adam step") +
         (" (picked by pick_adam_step)" if p.get("adam_step") is None else "")),
        ("HOZOG q, mu", "1, 0.01", f"{p.get('q')}, {p.get('mu'):g}"),
        ("gamma (HOZOG, FOR, REV)", "News20 0.05, Covtype 0.03, Real-sim 0.005 (HOZOG's)", each("gamma", "{:.3g}")),
        ("HOAG", "tolerances and warm start (code defaults)", "epsilon_k = 0.01 * 0.9^k, warm starts, step 1 / L adapted"),
        ("budget", "time axes of Figure 1", budget),
    ]
    return pd.DataFrame(rows, columns=["setting", "paper", "this run"])
