"""Study 14's setting: the estimators, sweeps and sizes per scale, the result
(:class:`AtlasResult`), the variants measured, the windows W = T / K, the two task families'
data and tasks (MLP on MNIST, logistic regression on a9a) and the points each family is
measured at. Kept apart from the run (:mod:`hpolab.studies.estimator_atlas`) so that the run,
its measurement, its tables, its figure and its widget panel all read one definition without
importing each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import pandas as pd
import torch
from torch import nn

from hpolab.data import as_tensors, load_mnist
from hpolab.hypergrad import schedule
from hpolab.hypergrad.task import classification_task, logistic_regression_task
from hpolab.models import mlp
from hpolab.studies.common import StudyResult, check_scale
from hpolab.studies.estimator_atlas_claims import FAMILIES
from hpolab.splits import libsvm_split
from hpolab.validation import check_choice, check_count

ATLAS_ESTIMATORS = ("finite-differences", "forward", "greedy", "reverse", "unrolled-forward", "implicit", "zeroth-order")
AXES = {"T": "horizon T", "K": "hyperparameters K", "D": "weights D"}
METRICS = {"error": "relative error", "seconds": "wall time (s)", "memory": "peak memory (MiB)"}
FLOORS = {"error": 1e-16, "seconds": 1e-4, "memory": 1.0}  # below these a log plot shows the floor
# per scale: examples (train, val), MLP batch and width, T sweep (at K = base_k), K sweep (at T = k_horizon),
# widths (at T = width_horizon, K = base_k), zeroth-order repeats
SIZES = {
    "smoke": {"n": (256, 256), "batch": 32, "width": 16, "horizons": (10, 20), "base_k": 2, "k_values": (1, 2, 5),
              "k_horizon": 20, "widths": (8, 16), "width_horizon": 20, "repeats": 2},
    "cpu": {"n": (2048, 512), "batch": 64, "width": 32, "horizons": (10, 20, 40, 80, 160), "base_k": 2,
            "k_values": (1, 2, 5, 10, 20, 40), "k_horizon": 40, "widths": (8, 16, 32, 64, 128), "width_horizon": 20,
            "repeats": 5},
    "paper": {"n": (8192, 2048), "batch": 128, "width": 64, "horizons": (10, 20, 40, 80, 160, 320, 640), "base_k": 4,
              "k_values": (1, 2, 4, 8, 16, 32, 64, 128), "k_horizon": 128, "widths": (16, 32, 64, 128, 256, 512),
              "width_horizon": 40, "repeats": 10},
}
MLP_LR, MLP_MOMENTUM, LOGREG_MOMENTUM, LOG_L2 = 0.05, 0.9, 0.5, -3.0


@dataclass
class AtlasResult(StudyResult):
    """``measurements``: one row per (family, sweep, point, estimator): T, K, D, relative error,
    seconds, peak memory (MiB), evaluations; ``skipped``: where an estimator did not apply, and why."""

    measurements: pd.DataFrame = field(default_factory=pd.DataFrame)
    skipped: pd.DataFrame = field(default_factory=pd.DataFrame)
    tables: ClassVar[dict[str, str]] = {"measurements": "measurements"}  # summary.csv holds the growth rates


def variants(estimators: Sequence[str], greedy_horizons: Sequence[int], q_values: Sequence[int]) -> list[tuple]:
    """(label, estimator name, settings) of every variant measured."""
    built = []
    for name in estimators:
        check_choice("estimator", name, ATLAS_ESTIMATORS)
        if name == "greedy":
            built += [(f"greedy H={H}", name, {"horizon": check_count("H", H, minimum=1)}) for H in greedy_horizons]
        elif name == "zeroth-order":
            built += [(f"zeroth-order q={q}", name, {"q": check_count("q", q, minimum=1)}) for q in q_values]
        else:
            built.append((name, name, {}))
    return built


def check_windows(horizon: int, K: int | None = None, W: int | None = None) -> int:
    """W = T / K, checked: the windows must tile T exactly. Returns W."""
    check_count("T", horizon, minimum=1)
    if K is not None:
        check_count("K", K, minimum=1)
        if horizon % K:
            raise ValueError(f"K must divide T = {horizon} (K windows of W = T / K steps), got K={K}")
        W = horizon // K
    if isinstance(W, bool) or not isinstance(W, int) or not 1 <= W <= horizon or horizon % W:
        raise ValueError(f"W must be an integer in [1, T] dividing T = {horizon}, got W={W!r}")
    return W


def family_data(family: str, scale: str, device) -> dict:
    """The family's data split, float64 on ``device``."""
    check_choice("family", family, FAMILIES)
    n_train, n_val = SIZES[check_scale(scale)]["n"]
    if family == "logreg":  # features scaled so that the summed logistic loss has curvature <= 1
        split = libsvm_split("a9a", limit=2 * (n_train + n_val), device=device)
        x = split.train[0][:n_train]
        scale_by = (0.25 * torch.linalg.eigvalsh(x.T @ x)[-1]).rsqrt()
        return {"train": (x * scale_by, split.train[1][:n_train]), "val": (split.val[0] * scale_by, split.val[1])}
    x, y = as_tensors(load_mnist(True, download=False), limit=n_train + n_val, dtype=torch.float64, device=device)
    return {"train": (x[:n_train], y[:n_train]), "val": (x[n_train:], y[n_train:])}


def setting(family: str, data: dict, scale: str, horizon: int, W: int, width: int | None = None):
    """(task, hyperparameters) at T = ``horizon``, the learning rate shared over windows of W steps."""
    sizes = SIZES[scale]
    if family == "mlp":
        width = width or sizes["width"]
        model = mlp((784, width, 10), activation=nn.Tanh, flatten=True)
        task = classification_task(model, data["train"], data["val"], sizes["batch"], name=f"mlp-{width}",
                                   dtype=torch.float64, device=data["train"][0].device)
        return task, schedule(horizon, lr=MLP_LR, momentum=MLP_MOMENTUM, windows={"lr": W})
    task = logistic_regression_task(data["train"], data["val"], name="logreg-a9a", device=data["train"][0].device)
    hyper = schedule(horizon, lr=1.0 / (1.0 + 2 * math.exp(LOG_L2)), momentum=LOGREG_MOMENTUM, windows={"lr": W},
                     learn=("lr", "log_l2"), log_l2=LOG_L2)
    return task, hyper


def sweep_points(family: str, sizes: dict) -> list[tuple]:
    """(axis, T, K, width) of every point the family is measured at (``sizes``: a row of ``SIZES``)."""
    points = [("T", T, sizes["base_k"], None) for T in sizes["horizons"]]
    points += [("K", sizes["k_horizon"], K, None) for K in sizes["k_values"]]
    if family == "mlp":
        points += [("D", sizes["width_horizon"], sizes["base_k"], width) for width in sizes["widths"]]
    return points
