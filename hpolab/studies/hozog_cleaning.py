"""Study 05: data hyper-cleaning on MNIST (HOZOG paper, section 3.3, Figure 3).

Half the training labels are replaced by random ones; softmax regression trains by plain
gradient descent (step 0.05) on the training loss with each example weighted by
sigmoid(lambda_g) of its group g, and tuning lowers the cross-entropy on a clean validation
set. HOZOG, random search, the BOHB-like method and reverse mode (REV) get the same wall time
per size. Shared pieces are in :mod:`hpolab.studies.hozog`.

The paper's setting and ours (docs/studies/05_hozog_hypercleaning.md has the full table):

* sizes (Ntr, Nval, Ntest, Nh) = (1000, 1000, 4000, 500) and (5000, 5000, 10000, 1250): the
  ``paper`` scale runs both, ``cpu`` the first; T = 4000 inner steps at ``paper``, 300 at
  ``cpu`` (a HOZOG step trains q + 1 = 6 models: at T = 4000 one step takes minutes on two cores).
* groups: a random partition of the training examples into Nh groups of equal size
  (Ntr / Nh = 2 or 4 examples each).
* HOZOG: q = 5 and mu = 1 (Table 2), directions uniform on the unit sphere with the factor
  p / (mu q) of Eq. 3. Table 2's gamma for this row is illegible in our copy of the paper, so
  gamma is picked by a pilot over a fixed grid (:data:`GAMMA_GRID`), for HOZOG and REV
  separately, each by its own validation loss after :data:`PILOT_STEPS` steps: never by
  comparing methods. The notebook shows every pilot run.
* lambda starts at 0 (weight 1/2) and is unbounded for HOZOG and REV (lambda in R^Nh, Eq. 6);
  random search and BOHB need a box and search lambda_g in [-6, 6] (weights 0.0025 to 0.9975).
"""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.hypergrad import box
from hpolab.problems.tuning import tuning_problem
from hpolab.progress import progress_bar
from hpolab.runner import run
from hpolab.studies.common import StudyResult, check_scale, saves_results
from hpolab.validation import check_count, check_positive
from hpolab.studies.hozog import (
    LABELS, gamma_slider, seconds_box, device_replicas, hozog_executor, tuning_method, with_suboptimality,
)
from hpolab.studies.hozog_cleaning_claims import CLAIMS  # noqa: F401  (re-exported: the ledger reads CLAIMS here)
from hpolab.studies.hozog_cleaning_setting import (
    CLEANING_BOX, CLEANING_METHODS, CLEANING_MU, CLEANING_Q, CLEANING_SIZES, GAMMA_GRID, GRADIENT_METHODS,
    GRID_EXTENSIONS, PILOT_STEPS, SMOKE_STEPS, cleaning_data, cleaning_quality, cleaning_setting,
)
from hpolab.studies.hozog_cleaning_tables import (  # noqa: F401  (re-exported: the notebook calls them here)
    costs, pilot_table, settings_table,
)


def _method(name: str, task, hyper, q: int, mu: float, gamma: float, replicas=None, executor=None):
    """A study method: the gradient-based ones unbounded (lambda in R^Nh), the black-box ones in
    :data:`CLEANING_BOX`."""
    limits = None if name in GRADIENT_METHODS else box(hyper, {"example_weights": CLEANING_BOX})
    return tuning_method(name, task, hyper, limits, q, mu, gamma, directions="sphere", replicas=replicas,
                         executor=executor)


def _steps(count: int):
    """``should_stop`` for the runner: true once ``count`` outer steps have been taken."""
    taken = [0]

    def should_stop() -> bool:
        taken[0] += 1
        return taken[0] >= count

    return should_stop


def pick_gamma(method: str, task, hyper, problem, steps: int, q: int = CLEANING_Q, mu: float = CLEANING_MU,
               gammas: Sequence[float] = GAMMA_GRID, extend: int = GRID_EXTENSIONS) -> tuple[float, list[dict]]:
    """The step gamma for ``method`` (HOZOG or REV): each gamma of the grid runs ``steps`` outer
    steps, and the one with the lowest validation loss found wins (ties: the smaller gamma; a
    diverged run counts as infinite). While the winner is the grid's largest or smallest value
    and beats its neighbour, the grid grows by a factor 10 on that side, at most ``extend``
    times. The first step trains at the starting lambda, so ``steps`` >= 2. Only the method's own
    objective decides. Returns the gamma and one row per pilot run."""
    check_count("steps", steps, minimum=2)
    rows: list[dict] = []

    def trial(gamma: float) -> None:
        history = run(_method(method, task, hyper, q, mu, gamma), problem, None, seed=0, should_stop=_steps(steps))
        best = float(history.frame["best_objective"].iloc[-1])
        rows.append({"method": LABELS[method], "gamma": float(gamma), "steps": len(history.frame) - 1,
                     "start val loss": float(history.frame["objective"].iloc[0]),
                     "best val loss": math.inf if history.status == "diverged" else best,
                     "seconds": float(history.frame["wall_time"].iloc[-1])})

    def winner() -> dict:
        return min(rows, key=lambda row: (row["best val loss"], row["gamma"]))

    for gamma in sorted(gammas):
        trial(gamma)
    for _ in range(extend):
        ranked = sorted(rows, key=lambda row: row["gamma"])
        best = winner()
        if best is ranked[-1] and best["best val loss"] < ranked[-2]["best val loss"]:
            trial(best["gamma"] * 10)
        elif best is ranked[0] and best["best val loss"] < ranked[1]["best val loss"]:
            trial(best["gamma"] / 10)
        else:
            break
    chosen = winner()
    for row in rows:
        row["chosen"] = row is chosen
    return chosen["gamma"], rows


@saves_results
def run_study(scale: str = "cpu", methods: Sequence[str] = CLEANING_METHODS, q: int = CLEANING_Q,
                       mu: float = CLEANING_MU, gamma: float | None = None, seconds: float | None = None,
                       device: str = "cpu", address: str = "", progress: bool = True,
                       gammas: Sequence[float] = GAMMA_GRID) -> StudyResult:
    """Study 05: HOZOG (q directions on the unit sphere, Eq. 3) against random search, the
    BOHB-like method and reverse mode, for the same wall time per size.

    Args:
      gamma: the outer step of HOZOG and REV; None picks one per method and size by
        :func:`pick_gamma` over ``gammas`` (Table 2's value is illegible in our copy).
      seconds: wall time per method and size (None: the scale's, see :data:`CLEANING_SIZES`).
    """
    check_scale(scale)
    check_count("q", q, minimum=1)
    check_positive("mu", mu)
    if gamma is not None:
        check_positive("gamma", gamma)
    for name in methods:
        if name not in CLEANING_METHODS:
            raise ValueError(f"method must be one of {sorted(CLEANING_METHODS)}, got {name!r}")
    torch_device = resolve_device(device)
    histories, quality, pilots, chosen = [], [], [], {}
    sizes = CLEANING_SIZES[scale]
    with hozog_executor(address) as executor, \
            progress_bar(total=len(sizes) * len(methods), desc="runs", disable=not progress) as bar:
        for size in sizes:
            budget_seconds = size.seconds if seconds is None else check_positive("seconds", seconds)
            data = cleaning_data(size.n_train, size.n_val, size.n_test, size.groups, device=torch_device)
            task, hyper = cleaning_setting(data, size.horizon)
            problem = tuning_problem(task, hyper, test=data.split.test)
            replicas = device_replicas(lambda d: cleaning_setting(cleaning_data(
                size.n_train, size.n_val, size.n_test, size.groups, device=d), size.horizon)[0], torch_device)
            label = f"{size.groups} groups"
            steps = {}
            for name in (m for m in methods if m in GRADIENT_METHODS):
                if gamma is None:
                    steps[name], rows = pick_gamma(name, task, hyper, problem, PILOT_STEPS[scale], q, mu, gammas)
                    pilots += [{"size": label, **row} for row in rows]
                else:
                    steps[name] = gamma
            chosen[label] = {LABELS[name]: value for name, value in steps.items()}
            for name in methods:
                bar.set_postfix_str(f"{label}, {LABELS[name]}", refresh=False)
                method = _method(name, task, hyper, q, mu, steps.get(name, 1.0), replicas, executor)
                budget = None if budget_seconds else SMOKE_STEPS * (q + 1) * (size.horizon + 1)
                history = run(method, problem, budget, seed=0, max_seconds=budget_seconds)
                history.problem = label
                history.config.update({"method": name, "groups": size.groups, "n_train": size.n_train,
                                       "horizon": size.horizon, "seconds": budget_seconds})
                histories.append(history)
                quality.append(cleaning_quality(history, data))
                bar.update()
    with_suboptimality(histories)
    summary = pd.DataFrame([{
        "size": h.problem, "method": h.label, "gamma": chosen[h.problem].get(h.label, math.nan),
        "best val loss": float(h.frame["objective"].min()),
        "test error": float(h.frame.loc[h.frame["objective"].idxmin(), "test_error"]),
        "suboptimality": float(h.frame["suboptimality"].iloc[-1]), "steps": len(h.frame) - 1,
        "precision": q_["precision"], "recall": q_["recall"], "flagged groups": q_["flagged"],
    } for h, q_ in zip(histories, quality)])
    parameters = {"scale": scale, "methods": list(methods), "q": q, "mu": mu, "gamma": gamma,
                  "gamma_chosen": chosen, "gamma_pilot": pilots, "gammas": [float(g) for g in gammas],
                  "pilot_steps": PILOT_STEPS[scale], "seconds": seconds, "device": str(torch_device),
                  "address": address, "sizes": [s._asdict() for s in sizes]}
    return StudyResult(histories, summary, parameters)


# ---------------------------------------------------------------------------------------------
# The panel


_SPLITS: dict = {}


def cleaning_run_one(method: str = "hozog", q: int = CLEANING_Q, mu: float = CLEANING_MU, gamma: float = 1000.0,
                     seconds: float = 30.0, scale: str = "cpu", device: str = "cpu", callback=None,
                     should_stop=None) -> History:
    """One method on the scale's hyper-cleaning data for ``seconds`` (what the panel runs)."""
    size = CLEANING_SIZES[check_scale(scale)][0]
    key = (size.n_train, size.n_val, size.n_test, size.groups, str(resolve_device(device)))
    if key not in _SPLITS:
        _SPLITS[key] = cleaning_data(size.n_train, size.n_val, size.n_test, size.groups, device=resolve_device(device))
    data = _SPLITS[key]
    task, hyper = cleaning_setting(data, size.horizon)
    built = _method(method, task, hyper, q, mu, gamma)
    return run(built, tuning_problem(task, hyper, test=data.split.test), None, seed=0, max_seconds=seconds,
               callback=callback, should_stop=should_stop)


def cleaning_panel(values: dict | None = None, **overrides):
    """Study 05's widget panel, from the notebook's parameters (``globals()``) and ``overrides``:
    method, q, mu, scale, device, gamma, seconds."""
    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    extra = {"gamma": gamma_slider(values.get("gamma") or 1000.0, 0, 4),
             "seconds": seconds_box(values.get("seconds") or 30.0)}
    uses = {"hozog": {"q", "mu", "gamma"}, "reverse": {"gamma"}, "random-search": set(), "bohb": set()}
    return panel_for(cleaning_run_one, {LABELS[m]: m for m in CLEANING_METHODS}, uses, values, extra,
                     x="wall_time", y="objective", total=lambda s: s["seconds"])
