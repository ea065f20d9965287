"""Study 14: an atlas of the hypergradient estimators: error, time and memory as T, K and D grow.

Every estimator of :mod:`hpolab.hypergrad` (and central finite differences, the reference-free
baseline) computes d L_val(theta_T) / d h at the same point of two task families: a one-hidden-
layer MLP on MNIST (the learning rate shared over K windows of W = T / K steps) and
l2-regularized logistic regression on a9a (the same windows plus ``log_l2``). Everything runs in
float64; the exact hypergradient is float64 reverse mode (Franceschi et al. 2017 (RFHO)), so the
reverse row's error is 0 by construction. Each sweep varies one of T (K fixed), K (T fixed) and
the MLP's hidden width (T and K fixed); time and peak memory come from
:class:`hpolab.hypergrad.cost.Meter` (CPU memory: resident-set growth, coarse). Growth rates are
slopes of log cost against log T, K or D.

``implicit`` (HOAG) applies only to training-loss hyperparameters at a minimizer: it runs on
logistic regression for ``log_l2`` (error against the reverse-mode ``log_l2`` entry after T
steps, so it measures how far T steps are from the minimizer) and is skipped on the MLP, whose
learning rates do not move a minimizer. ``greedy`` is biased by design: its error is real.
``zeroth-order`` draws its directions from seeded generators; its error is the root mean square
over ``repeats`` draws. The claims (textbook expectations as growth rates) are in
:mod:`hpolab.studies.estimator_atlas_claims`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.hypergrad import make_estimator
from hpolab.progress import progress_bar
from hpolab.recorder import running_best
from hpolab.studies.common import check_scale, saves_results
from hpolab.studies.estimator_atlas_claims import CLAIMS, FAMILIES  # noqa: F401
from hpolab.studies.estimator_atlas_figures import growth_figure  # noqa: F401  (re-exported: the notebook)
from hpolab.studies.estimator_atlas_measure import applies, exact_cpu_memory, measure
from hpolab.studies.estimator_atlas_panel import panel  # noqa: F401  (re-exported: the notebook)
from hpolab.studies.estimator_atlas_setting import (
    ATLAS_ESTIMATORS, SIZES, AtlasResult, check_windows, family_data, setting, sweep_points, variants,
)
from hpolab.studies.estimator_atlas_tables import slopes
from hpolab.studies.estimator_atlas_tables import (  # noqa: F401  (re-exported: the notebook calls these here)
    error_table, recommendations,
)
from hpolab.validation import check_choice, check_count, check_positive


@saves_results
def run_study(scale: str = "cpu", families: Sequence[str] = FAMILIES, estimators: Sequence[str] = ATLAS_ESTIMATORS,
              greedy_horizons: Sequence[int] = (1, 10), q_values: Sequence[int] = (1, 5, 20), mu: float = 1e-3,
              horizons: Sequence[int] | None = None, k_values: Sequence[int] | None = None,
              widths: Sequence[int] | None = None, repeats: int | None = None, seed: int = 0,
              device: str = "cpu", progress: bool = True) -> AtlasResult:
    """Measure every estimator variant at every point of every family's sweeps.

    Args:
      scale: ``smoke``, ``cpu`` or ``paper``; sets the data, the sweeps and ``repeats`` (``SIZES``).
      families: among ``"mlp"`` (MNIST) and ``"logreg"`` (a9a).
      estimators: among :data:`ATLAS_ESTIMATORS`; ``greedy`` runs once per H in ``greedy_horizons``,
        ``zeroth-order`` once per q in ``q_values`` (each >= 1) with radius ``mu``.
      horizons, k_values, widths: the T sweep, the K sweep (each K must divide the K sweep's T),
        the MLP widths; None takes the scale's.
      repeats: zeroth-order draws per point (error: root mean square over them).
    """
    check_scale(scale)
    sizes = dict(SIZES[scale])
    for name, value in (("horizons", horizons), ("k_values", k_values), ("widths", widths)):
        if value:
            sizes[name] = tuple(value)
    repeats = check_count("repeats", sizes["repeats"] if repeats is None else repeats, minimum=1)
    check_positive("mu", mu)
    check_count("seed", seed)
    for family in families:
        check_choice("family", family, FAMILIES)
    built = variants(estimators, greedy_horizons, q_values)
    for T in sizes["horizons"]:
        check_windows(T, sizes["base_k"])
    for K in sizes["k_values"]:
        check_windows(sizes["k_horizon"], K)
    for width in sizes["widths"]:
        check_count("width", width, minimum=1)
    torch_device = resolve_device(device)
    if torch_device.type == "cpu":
        exact_cpu_memory()
    plan = [(f, *p) for f in families for p in sweep_points(f, sizes)]
    rows, skipped = [], {}
    with progress_bar(total=len(plan) * len(built), desc="measurements", disable=not progress) as bar:
        data = {}
        for number, (family, axis, T, K, width) in enumerate(plan):
            if family not in data:  # the first run of a process also pays for warming up: not measured
                data[family] = family_data(family, scale, torch_device)
                make_estimator("reverse")(*setting(family, data[family], scale, T, check_windows(T, K), width), seed)
            task, hyper = setting(family, data[family], scale, T, check_windows(T, K), width)
            reference = make_estimator("reverse")(task, hyper, seed)
            exact = reference.grad
            point = {"family": family, "axis": axis, "T": T, "K": int(hyper.pack().numel()),
                     "D": int(task.init(seed).numel())}
            for label, name, settings in built:
                bar.set_postfix_str(f"{family} {axis}: T={T}, K={point['K']}, {label}", refresh=False)
                reason = applies(label, name, settings, family, T)
                if reason:
                    skipped[(family, label, reason)] = skipped.get((family, label, reason), 0) + 1
                else:
                    rows.append({**point, **measure(task, hyper, label, name, settings, exact, seed, mu, repeats,
                                                    reference, point=number)})
                bar.update()
    measurements = pd.DataFrame(rows)
    skipped_table = pd.DataFrame([{"family": f, "estimator": e, "points skipped": n, "why": why}
                                  for (f, e, why), n in skipped.items()],
                                 columns=["family", "estimator", "points skipped", "why"])
    parameters = {"scale": scale, "families": list(families), "estimators": list(estimators),
                  "greedy_horizons": list(greedy_horizons), "q_values": list(q_values), "mu": mu, "seed": seed,
                  "sizes": sizes, "repeats": repeats, "device": str(torch_device),
                  "variants": [label for label, _, _ in built]}
    result = AtlasResult(histories(measurements), pd.DataFrame(), parameters, measurements, skipped_table)
    result.summary = slopes(result)
    return result


def histories(measurements: pd.DataFrame) -> list[History]:
    """One History per (family, sweep, estimator): a row per point (``iteration`` the swept value,
    ``objective`` the relative error), so the study's files have the common tidy form."""
    built = []
    if measurements.empty:
        return built
    for (family, axis, label), part in measurements.groupby(["family", "axis", "estimator"], sort=False):
        x = part[axis].to_numpy()
        frame = pd.DataFrame({"step": np.arange(len(part)), "iteration": x, "objective": part["error"].to_numpy(),
                              "best_objective": running_best(part["error"]).to_numpy(),
                              "wall_time": part["seconds"].to_numpy(), "memory_mib": part["memory"].to_numpy(),
                              "T": part["T"].to_numpy(), "K": part["K"].to_numpy(), "D": part["D"].to_numpy()})
        built.append(History(frame, label, label, f"{family} ({axis} sweep)", 0, config={"axis": axis}))
    return built
