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

import ctypes
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from torch import nn

from hpolab.data import as_tensors, load_mnist
from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.hypergrad import make_estimator, schedule
from hpolab.hypergrad.cost import Meter
from hpolab.hypergrad.result import Hypergradient
from hpolab.hypergrad.task import classification_task, logistic_regression_task
from hpolab.hypergrad.zeroth_order import validation_losses
from hpolab.plots import PALETTE
from hpolab.progress import progress_bar
from hpolab.recorder import running_best
from hpolab.studies.common import StudyResult, check_scale
from hpolab.studies.estimator_atlas_claims import (  # noqa: F401
    CLAIMS,
    EXACT,
    FAMILIES,
    NOTEBOOK,
    growth_rate,
    slope,
)
from hpolab.splits import libsvm_split
from hpolab.validation import check_choice, check_count, check_positive

ESTIMATORS = ("finite-differences", "forward", "greedy", "reverse", "unrolled-forward", "implicit", "zeroth-order")
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

    def save(self, directory: str | Path) -> dict[str, Path]:
        """The common files (``summary.csv`` holds the growth rates) and ``measurements.csv``."""
        paths = super().save(directory)
        paths["measurements"] = Path(directory) / "measurements.csv"
        self.measurements.to_csv(paths["measurements"], index=False, float_format="%.8g")
        return paths


def variants(estimators: Sequence[str], greedy_horizons: Sequence[int], q_values: Sequence[int]) -> list[tuple]:
    """(label, estimator name, settings) of every variant measured."""
    built = []
    for name in estimators:
        check_choice("estimator", name, ESTIMATORS)
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
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, width), nn.Tanh(), nn.Linear(width, 10))
        task = classification_task(model, data["train"], data["val"], sizes["batch"], name=f"mlp-{width}",
                                   dtype=torch.float64, device=data["train"][0].device)
        return task, schedule(horizon, lr=MLP_LR, momentum=MLP_MOMENTUM, windows={"lr": W})
    task = logistic_regression_task(data["train"], data["val"], name="logreg-a9a", device=data["train"][0].device)
    hyper = schedule(horizon, lr=1.0 / (1.0 + 2 * math.exp(LOG_L2)), momentum=LOGREG_MOMENTUM, windows={"lr": W},
                     learn=("lr", "log_l2"), log_l2=LOG_L2)
    return task, hyper


def exact_cpu_memory() -> None:
    """glibc: every allocation of 16 KiB or more from its own mapping, returned when freed (the
    threshold no longer rises after frees), so the Meter's resident-set growth counts what a run
    holds rather than what the allocator kept from earlier runs. Process-wide; no-op elsewhere."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 16 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def finite_differences(task, hyper, seed: int, step: float = 1e-5) -> Hypergradient:
    """Central differences, one pair of trainings per hyperparameter (all 2K + 1 batched),
    each entry moved by ``step * max(|h_k|, 1)``."""
    theta = task.init(seed)
    with Meter(theta.device) as meter:
        h = hyper.pack()
        steps = step * h.abs().clamp_min(1.0)
        moves = torch.diag(steps)
        points = torch.cat([h[None], h + moves, h - moves])
        losses = validation_losses(task, hyper, points, seed, True, meter).losses
        K = len(h)
        grad = (losses[1:K + 1] - losses[K + 1:]) / (2 * steps)
    return Hypergradient(float(losses[0]), grad, meter.cost())


def applies(label: str, name: str, settings: dict, family: str, horizon: int) -> str:
    """Why the variant does not apply here ("" when it does)."""
    if name == "implicit" and family != "logreg":
        return ("learning rates do not move a minimizer of the training loss: implicit differentiation "
                "needs training-loss hyperparameters (logreg's log_l2)")
    if name == "greedy" and settings["horizon"] >= horizon:
        return f"H = {settings['horizon']} >= T = {horizon}: one chunk, i.e. forward mode"
    return ""


def measure(task, hyper, label: str, name: str, settings: dict, exact: torch.Tensor, seed: int, mu: float,
            repeats: int, reference: Hypergradient | None = None) -> dict:
    """One variant at one point: relative error against ``exact``, seconds, peak MiB, evaluations."""
    def relative(grad, truth):
        return float((grad - truth).norm() / truth.norm()) if grad is not None else math.nan

    if name == "reverse" and reference is not None:
        runs = [(reference, 0.0)]
    elif name == "finite-differences":
        result = finite_differences(task, hyper, seed)
        runs = [(result, relative(result.grad, exact))]
    elif name == "implicit":
        implicit_hyper = schedule(hyper.horizon, lr=hyper.values["lr"], momentum=hyper.values["momentum"],
                                  windows=hyper.windows, learn=("log_l2",), log_l2=hyper.values["log_l2"])
        result = make_estimator("implicit")(task, implicit_hyper, seed)
        truth = hyper.unpack(exact)["log_l2"].reshape(-1)
        runs = [(result, relative(result.grad, truth))]
    elif name == "zeroth-order":
        estimator = make_estimator(name, q=settings["q"], mu=mu)
        runs = []
        for r in range(repeats):
            generator = torch.Generator().manual_seed(10_000 * r + settings["q"])
            result = estimator(task, hyper, seed, generator=generator)
            runs.append((result, relative(result.grad, exact)))
    else:
        result = make_estimator(name, **settings)(task, hyper, seed)
        runs = [(result, relative(result.grad, exact))]
    errors = [e for _, e in runs]
    costs = [r.cost for r, _ in runs]
    return {"estimator": label, "error": math.sqrt(sum(e * e for e in errors) / len(errors)),
            "seconds": sum(c.wall_time for c in costs) / len(costs),
            "memory": max(c.peak_memory for c in costs) / 2**20,
            "evaluations": sum(c.evaluations + c.hvp_evaluations for c in costs) // len(costs),
            "diverged": any(r.diverged for r, _ in runs)}


def sweep_points(family: str, sizes: dict) -> list[tuple]:
    """(axis, T, K, width) of every point the family is measured at (``sizes``: a row of ``SIZES``)."""
    points = [("T", T, sizes["base_k"], None) for T in sizes["horizons"]]
    points += [("K", sizes["k_horizon"], K, None) for K in sizes["k_values"]]
    if family == "mlp":
        points += [("D", sizes["width_horizon"], sizes["base_k"], width) for width in sizes["widths"]]
    return points


def run_study(scale: str = "cpu", families: Sequence[str] = FAMILIES, estimators: Sequence[str] = ESTIMATORS,
              greedy_horizons: Sequence[int] = (1, 10), q_values: Sequence[int] = (1, 5, 20), mu: float = 1e-3,
              horizons: Sequence[int] | None = None, k_values: Sequence[int] | None = None,
              widths: Sequence[int] | None = None, repeats: int | None = None, seed: int = 0,
              device: str = "cpu", progress: bool = True) -> AtlasResult:
    """Measure every estimator variant at every point of every family's sweeps.

    Args:
      scale: ``smoke``, ``cpu`` or ``paper``; sets the data, the sweeps and ``repeats`` (``SIZES``).
      families: among ``"mlp"`` (MNIST) and ``"logreg"`` (a9a).
      estimators: among :data:`ESTIMATORS`; ``greedy`` runs once per H in ``greedy_horizons``,
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
        for family, axis, T, K, width in plan:
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
                                                    reference)})
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


# ---------------------------------------------------------------------------------------------
# Growth rates, the recommendation table, figures

def slopes(result: AtlasResult) -> pd.DataFrame:
    """Per family, sweep and estimator: the growth rate of error, time and memory."""
    rows = []
    frame = result.measurements
    if frame.empty:
        return pd.DataFrame(columns=["family", "axis", "estimator", "points", *METRICS])
    for (family, axis, label), part in frame.groupby(["family", "axis", "estimator"], sort=False):
        row = {"family": family, "axis": axis, "estimator": label, "points": len(part)}
        for metric in METRICS:
            row[metric] = growth_rate(part[axis], part[metric], FLOORS[metric])
        rows.append(row)
    return pd.DataFrame(rows)

def error_table(result: AtlasResult) -> pd.DataFrame:
    """Per family and estimator: the median and largest relative error over every point, as
    text to one significant digit (below 1e-6: ``< 1e-6``, what float64 rounding leaves), and
    the points measured."""
    def text(value):
        return "< 1e-6" if value < EXACT else f"{value:.0e}"

    frame = result.measurements
    table = frame.groupby(["family", "estimator"], sort=False)["error"].agg(["median", "max", "size"]).reset_index()
    order = {label: i for i, label in enumerate(result.parameters.get("variants", []))}
    table = table.sort_values("estimator", key=lambda s: s.map(order), kind="stable")
    table = table.sort_values("family", key=lambda s: s.map({f: i for i, f in enumerate(FAMILIES)}), kind="stable")
    return pd.DataFrame({"family": table["family"], "estimator": table["estimator"],
                         "median error": table["median"].map(text), "largest error": table["max"].map(text),
                         "points": table["size"]})


def recommendations(result: AtlasResult) -> pd.DataFrame:
    """"Use X when ...", one row per estimator, each sentence chosen by the measured error and
    growth rates (time in T and K, memory in T on the MLP, else the first family measured)."""
    frame = result.measurements
    rows = []
    for label, part in frame.groupby("estimator", sort=False):
        family = "mlp" if (part["family"] == "mlp").any() else part["family"].iloc[0]
        mine = part[part["family"] == family]
        reverse = frame[(frame["family"] == family) & (frame["estimator"] == "reverse")]
        merged = mine.merge(reverse, on=["axis", "T", "K", "D"], suffixes=("", "_reverse"))
        ratio = float((merged["seconds"] / merged["seconds_reverse"]).median()) if len(merged) else math.nan
        error = float(mine["error"].median())
        time_T, time_K = slope(result, family, "T", label, "seconds"), slope(result, family, "K", label, "seconds")
        memory_T = slope(result, family, "T", label, "memory")
        exact = error < EXACT
        if label.startswith("implicit"):
            largest = mine[mine["T"] == mine["T"].max()]["error"].min()
            use = (f"training-loss hyperparameters with the inner problem solved to a minimizer (error {largest:.1g} "
                   f"against {int(mine['T'].max())} unrolled steps)")
        elif label.startswith("zeroth-order"):
            use = f"training is a black box (no derivatives through it) and K is small: error {error:.1g} here"
        elif label.startswith("finite"):
            use = f"checking another estimator at small K: 2K + 1 trainings (time x{ratio:.2g} of reverse)"
        elif not exact:
            use = f"a cheap biased direction suffices (online tuning): error {error:.1g} against the exact one"
        elif memory_T < 0.5:
            fast = merged[(merged["axis"] == "K") & (merged["seconds"] <= 1.5 * merged["seconds_reverse"])]
            k_max = f"K = {int(fast['K'].max())}" if len(fast) else "no K measured"
            tail = "few hyperparameters: time" if time_K >= 0.3 else "any K measured: time nearly flat,"
            use = (f"long horizons: memory flat in T (~ T^{memory_T:.1f}); {tail} ~ K^{time_K:.1f}, within 1.5x of "
                   f"reverse up to {k_max}")
        elif time_K < 0.3:
            use = f"many hyperparameters and a horizon whose run fits in memory: time flat in K, memory ~ T^{memory_T:.1f}"
        else:
            use = "exact, but its memory grows with T and its time with K here: prefer forward or reverse"
        rows.append({"estimator": label, "median error": error, "time / reverse": ratio, "time ~ T^": time_T,
                     "time ~ K^": time_K, "memory ~ T^": memory_T, "use when": use})
    return pd.DataFrame(rows)


def growth_figure(result: AtlasResult, family: str, axis: str, metric: str) -> go.Figure:
    """Log-log: ``metric`` against the swept value, a line per estimator, its fitted slope in the legend."""
    frame = result.measurements
    part = frame[(frame["family"] == family) & (frame["axis"] == axis)]
    figure = go.Figure()
    for i, (label, line) in enumerate(part.groupby("estimator", sort=False)):
        rate = growth_rate(line[axis], line[metric], FLOORS[metric])
        figure.add_trace(go.Scatter(x=line[axis], y=np.maximum(line[metric], FLOORS[metric]), mode="lines+markers",
                                    name=f"{label} (slope {rate:.2f})", line={"color": PALETTE[i % len(PALETTE)]}))
    figure.update_layout(title=f"{family}: {METRICS[metric]} against {AXES[axis]}", template="plotly_white",
                         xaxis_title=AXES[axis], yaxis_title=METRICS[metric], xaxis_type="log", yaxis_type="log")
    return figure


# ---------------------------------------------------------------------------------------------
# The panel


def run_one(estimator: str = "forward", q: int = 5, mu: float = 1e-3, H: int = 1, W: int = 5,
            family: str = "mlp", seed: int = 0, scale: str = "smoke", device: str = "cpu", callback=None,
            should_stop=None) -> History:
    """One measurement at the scale's K-sweep horizon T with windows of W steps: a row per
    hyperparameter (``objective``: the estimate's absolute error there); the label says the
    relative error and the time."""
    sizes = SIZES[check_scale(scale)]
    T = sizes["k_horizon"]
    check_windows(T, W=W)
    (label, name, settings), = variants([estimator], [H], [q])
    reason = applies(label, name, settings, family, T)
    if reason:
        raise ValueError(f"{label} does not apply to {family}: {reason}")
    task, hyper = setting(family, family_data(family, scale, resolve_device(device)), scale, T, W)
    reference = make_estimator("reverse")(task, hyper, seed)
    found = measure(task, hyper, label, name, settings, reference.grad, seed, check_positive("mu", mu), 1, reference)
    rows = [{"step": k, "iteration": k, "objective": found["error"], "error": found["error"]}
            for k in range(int(hyper.pack().numel()))]
    for row in rows:
        if callback is not None:
            callback(row)
    text = f"{label} on {family} (T={T}, W={W}): relative error {found['error']:.2g}, {found['seconds']:.3g} s"
    return History(pd.DataFrame(rows), name, text, family, seed, config={"W": W, **settings})


def panel(values: dict | None = None, **overrides):
    """Study 14's widget panel: estimator, q and mu (zeroth-order), H (greedy), W, family, seed,
    scale, device; each run measures one estimator and says its error and time."""
    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    families = values.get("families") or list(FAMILIES)
    extra = {"H": w.BoundedIntText(value=1, min=1, max=10_000, description="H"),
             "family": w.Dropdown(options=list(FAMILIES), value=families[0], description="family")}
    values.setdefault("estimator", "forward")
    values["q"] = (values.get("q_values") or [5])[0]
    if not values.get("W"):
        values["W"] = 5
    uses = {"zeroth-order": {"q", "mu"}, "greedy": {"H"}}
    return panel_for(run_one, list(ESTIMATORS), uses, values, extra, selector="estimator", x="step", y="error",
                     log_y=True, total=lambda s: 1)
