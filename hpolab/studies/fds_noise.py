"""Study 08: how noisy non-greedy hypergradients are, how biased greedy ones are, and what
sharing a learning rate over W steps does to the error (the FDS paper's section 5.1).

At one fixed learning-rate schedule ("initialized to small values" in the paper; cosine
annealing from 0.01 over the T steps, momentum 0.9, no weight decay, batch 128 and 2000
validation images in the authors' script for this figure), each seed (its own initialization and data order)
gives T per-step hypergradients g_t = dL_val(theta_T)/d alpha_t: non-greedy (through the
whole run) and greedy (H = 1: L_val(theta_t) with theta_{t-1} held fixed). Sharing one
value over a window of W steps makes its hypergradient the *sum* of the window's g_t (the
identity FDS rests on; tests/test_fds.py checks it against forward mode with windows), so
the shared estimate of every g_t is the window's mean and, with mu the ensemble mean over
seeds,

    MSE_W = mean over seeds and steps of (window mean of g - mu_t)^2.

Theorem 4.1 bounds it by (1 + c (W - 1)) / W * MSE_1 + eps^2 (W^2 - 1) / 12, with
MSE_1 = mean_t Sigma_tt, c the largest absolute correlation between two steps and
eps = max |mu_{t+1} - mu_t|, all measured here from the same seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from hpolab.cache import StudyCache
from hpolab.devices import resolve_device
from hpolab.hypergrad import greedy, reverse_mode, schedule
from hpolab.progress import progress_bar
from hpolab.studies.common import check_scale, saves_results
from hpolab.studies.fds import GRAD_CLIP_FIGURE2, image_data, image_task
from hpolab.studies.fds_claims import NOISE_CLAIMS as CLAIMS
from hpolab.studies.fds_claims import greedy_error as _greedy_error
from hpolab.studies.fds_claims import shared_mse
from hpolab.validation import check_choice, check_count, check_positive

STUDY = "08_fds_hypergradient_noise"
# train images, validation images, T, batch, seeds. paper: T = 250, batch 128, 100 seeds, 2000
# validation images (the authors' script); every training image but those held out for validation.
SIZES = {"smoke": (512, 128, 12, 64, 4), "cpu": (32_000, 1000, 250, 128, 20), "paper": (58_000, 2_000, 250, 128, 100)}
SHAPES = ("cosine", "constant")  # the fixed schedule: cosine annealing from lr (the authors' default) or lr throughout


def windows_for_horizon(horizon: int) -> list[int]:
    """The divisors of T: windows that tile the run exactly."""
    return [w for w in range(1, horizon + 1) if horizon % w == 0]


def window_means(g: np.ndarray, window: int) -> np.ndarray:
    """Each step's shared estimate: the mean of g over its window of ``window`` contiguous
    steps (the last window may be shorter). ``g`` has shape (seeds, T)."""
    T = g.shape[1]
    out = np.empty_like(g)
    for start in range(0, T, window):
        out[:, start:start + window] = g[:, start:start + window].mean(axis=1, keepdims=True)
    return out


def mse_by_window(g: np.ndarray, windows: list[int], mu: np.ndarray | None = None) -> np.ndarray:
    """MSE_W of the shared estimates against ``mu`` (default: the ensemble mean of ``g``)."""
    return np.array([shared_mse(g, w, mu) for w in windows])


@dataclass(frozen=True)
class TheoremTerms:
    """What Theorem 4.1's bound is computed from, measured over the seeds."""

    mse1: float  # mean_t Sigma_tt
    c: float  # max_{t != t'} |corr(g_t, g_t')|
    epsilon: float  # max_t |mu_{t+1} - mu_t|

    def bound(self, window: int) -> float:
        return self.noise(window) + self.bias(window)

    def noise(self, window: int) -> float:
        return (1 + self.c * (window - 1)) / window * self.mse1

    def bias(self, window: int) -> float:
        return self.epsilon**2 * (window**2 - 1) / 12


def theorem_terms(g: np.ndarray) -> TheoremTerms:
    """Sigma, c and epsilon of Theorem 4.1 from per-seed hypergradients ``g`` (seeds, T)."""
    sigma = np.cov(g, rowvar=False)
    sd = np.sqrt(np.diag(sigma))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = sigma / np.outer(sd, sd)
    np.fill_diagonal(corr, 0.0)
    mu = g.mean(axis=0)
    return TheoremTerms(float(np.diag(sigma).mean()), float(np.nanmax(np.abs(corr))), float(np.abs(np.diff(mu)).max()))


@dataclass
class NoiseResult:
    """Per-seed hypergradients of every step, non-greedy and greedy, and the table by W."""

    nongreedy: np.ndarray  # (seeds, T)
    greedy: np.ndarray  # (seeds, T)
    table: pd.DataFrame  # W, measured MSE, bound and its two terms
    terms: TheoremTerms
    parameters: dict = field(default_factory=dict)
    note: str = ""

    @property
    def summary(self) -> pd.DataFrame:
        return self.table

    def save(self, directory: str | Path) -> dict[str, Path]:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {"summary": directory / "summary.csv", "hypergradients": directory / "hypergradients.csv"}
        self.table.to_csv(paths["summary"], index=False)
        frames = [pd.DataFrame({"kind": kind, "seed": s, "step": np.arange(g.shape[1]), "hypergradient": g[s]})
                  for kind, g in (("non-greedy", self.nongreedy), ("greedy", self.greedy)) for s in range(g.shape[0])]
        pd.concat(frames).to_csv(paths["hypergradients"], index=False, float_format="%.8g")
        return paths


def fixed_schedule(horizon: int, lr: float, shape: str = "cosine") -> torch.Tensor:
    """The learning rate of every step at which the hypergradients are taken: cosine annealing
    from ``lr`` to 0 over the T steps (PyTorch's ``CosineAnnealingLR``, the authors' default
    for this figure), or ``lr`` at every step."""
    check_choice("shape", shape, SHAPES)
    if shape == "constant":
        return torch.full((horizon,), float(lr), dtype=torch.float64)
    steps = torch.arange(horizon, dtype=torch.float64)
    return lr * 0.5 * (1 + torch.cos(torch.pi * steps / horizon))


def setting(scale: str, dataset: str, lr: float, momentum: float, device, shape: str = "cosine",
            grad_clip: float | None = GRAD_CLIP_FIGURE2):
    """(task, hyperparameters, note): LeNet on the scale's images, one learning rate per step,
    from :func:`fixed_schedule` (``note`` as :func:`hpolab.studies.fds.image_data`'s); each
    coordinate of the training gradient clamped to [-grad_clip, grad_clip] (the authors'
    script for Figure 2: 1)."""
    n_train, n_val, horizon, batch, _ = SIZES[scale]
    split, note = image_data(dataset, n_train, n_val, 0, device)
    task = image_task(split, "lenet", batch, device, name=f"lenet-{'mnist' if note else dataset}",
                      grad_clip=grad_clip)
    hyper = schedule(horizon, lr=fixed_schedule(horizon, lr, shape), momentum=momentum, windows={"lr": 1},
                     dtype=torch.float32)
    return task, hyper, note


@saves_results
def run_study(scale: str = "cpu", dataset: str = "mnist", lr: float = 0.01, momentum: float = 0.9,
                    seeds: int | None = None, windows: list[int] | None = None, device: str = "cpu",
                    cache: bool = True, progress: bool = True, shape: str = "cosine",
                    grad_clip: float | None = GRAD_CLIP_FIGURE2) -> NoiseResult:
    """Hypergradients of a per-step learning rate (:func:`fixed_schedule` from ``lr``, momentum
    ``momentum``) on LeNet for ``seeds`` seeds, non-greedy and greedy, then MSE_W and Theorem
    4.1's bound for each W.

    Each seed's pair of runs is cached under ``runs/cache/08_fds_hypergradient_noise/``: an
    interrupted study resumes at the first seed not finished."""
    n_train, n_val, horizon, batch, default_seeds = SIZES[check_scale(scale)]
    check_positive("lr", lr)
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    seeds = default_seeds if seeds is None else check_count("seeds", seeds, minimum=3)
    windows = windows_for_horizon(horizon) if windows is None else list(windows)
    bad = [w for w in windows if not (isinstance(w, int) and 1 <= w <= horizon)]
    if bad:
        raise ValueError(f"windows W must be integers in [1, T] = [1, {horizon}], got {bad}")
    check_choice("shape", shape, SHAPES)
    torch_device = resolve_device(device)
    task, hyper, note = setting(scale, dataset, lr, momentum, torch_device, shape, grad_clip)
    used = "mnist" if note else dataset
    parameters = {"scale": scale, "dataset": used, "lr": lr, "shape": shape, "momentum": momentum, "seeds": seeds,
                  "horizon": horizon, "batch": batch, "n_train": n_train, "n_val": n_val, "init": "xavier",
                  "grad_clip": grad_clip, "device": str(torch_device)}
    store = StudyCache(STUDY, {k: v for k, v in parameters.items() if k not in ("device", "seeds")}, enabled=cache)
    nongreedy_rows, greedy_rows = [], []
    exact, one_step = reverse_mode(), greedy(1)
    with progress_bar(total=seeds, desc="seeds", disable=not progress) as bar:
        for seed in range(seeds):
            pair = store.get_or_compute(f"seed{seed}", lambda: (exact(task, hyper, seed).grad.numpy(),
                                                                one_step(task, hyper, seed).grad.numpy()))
            nongreedy_rows.append(pair[0])
            greedy_rows.append(pair[1])
            bar.update()
    parameters["windows"] = windows
    return noise_result(np.stack(nongreedy_rows), np.stack(greedy_rows), windows, parameters, note)


def noise_result(g: np.ndarray, g_greedy: np.ndarray, windows: list[int], parameters: dict | None = None,
                 note: str = "") -> NoiseResult:
    """The study's result from per-seed hypergradients (seeds, T): MSE_W, Theorem 4.1's terms
    and its bound for each W."""
    horizon = g.shape[1]
    terms = theorem_terms(g)
    table = pd.DataFrame({
        "W": windows, "values learned": [-(-horizon // w) for w in windows], "measured MSE": mse_by_window(g, windows),
        "bound": [terms.bound(w) for w in windows], "noise term": [terms.noise(w) for w in windows],
        "bias term": [terms.bias(w) for w in windows],
    })
    return NoiseResult(g, g_greedy, table, terms, dict(parameters or {}), note)


def greedy_error(result: NoiseResult) -> dict:
    """Greedy hypergradients against the non-greedy ensemble mean mu: MSE, bias^2, variance
    and how often their mean has mu's sign (:func:`hpolab.studies.fds_claims.greedy_error`)."""
    return _greedy_error(result.nongreedy, result.greedy)


def hypergradient_figure(result: NoiseResult, shown: int = 20) -> go.Figure:
    """Per-step hypergradients of ``shown`` seeds, non-greedy (left) and greedy (right), with
    the non-greedy ensemble mean dotted on both (the paper's Figure 2, left and middle)."""
    mu = result.nongreedy.mean(axis=0)
    steps = np.arange(len(mu))
    figure = make_subplots(1, 2, shared_yaxes=True, subplot_titles=("non-greedy", "greedy (H = 1)"))
    for column, g in ((1, result.nongreedy), (2, result.greedy)):
        for s in range(min(shown, g.shape[0])):
            figure.add_trace(go.Scatter(x=steps, y=g[s], mode="lines", line={"width": 1}, opacity=0.35,
                                        name=f"seed {s}", legendgroup=f"seed {s}", showlegend=column == 1), 1, column)
        figure.add_trace(go.Scatter(x=steps, y=mu, mode="lines", line={"color": "black", "dash": "dot", "width": 2},
                                    name="ensemble mean (non-greedy)", showlegend=column == 1), 1, column)
    figure.update_xaxes(title_text="inner step t")
    figure.update_yaxes(title_text="dL_val / d alpha_t", col=1)
    figure.update_layout(title="Hypergradients of the learning rate of every step, one line per seed",
                         template="plotly_white", showlegend=False)
    return figure


def mse_figure(result: NoiseResult) -> go.Figure:
    """Measured MSE_W and Theorem 4.1's bound against W (the paper's Figure 2, right)."""
    table = result.table
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=table["W"], y=table["measured MSE"], mode="lines+markers", name="measured MSE_W"))
    figure.add_trace(go.Scatter(x=table["W"], y=table["bound"], mode="lines+markers", name="Theorem 4.1 bound",
                                line={"dash": "dash"}))
    figure.add_trace(go.Scatter(x=table["W"], y=table["noise term"], mode="lines", name="bound: noise term",
                                line={"dash": "dot", "width": 1}))
    figure.add_trace(go.Scatter(x=table["W"], y=table["bias term"].where(table["bias term"] > 0), mode="lines",
                                name="bound: bias term", line={"dash": "dot", "width": 1}))
    greedy_mse = greedy_error(result)["mse"]  # a trace, not add_hline: shapes on a log axis take log units
    figure.add_trace(go.Scatter(x=[table["W"].min(), table["W"].max()], y=[greedy_mse, greedy_mse], mode="lines",
                                name="greedy (H = 1) MSE", line={"dash": "dashdot", "color": "black"}))
    figure.update_xaxes(type="log", title_text="window W (steps sharing one learning rate)")
    figure.update_yaxes(type="log", title_text="MSE against the ensemble mean")
    figure.update_layout(title="Sharing: noise down by ~1/W, bias up by ~W^2", template="plotly_white")
    return figure


PANEL_METHODS = {"non-greedy": "non-greedy", "greedy (H = 1)": "greedy"}


def run_one(method: str = "non-greedy", W: int = 1, lr: float = 0.01, seed: int = 0, scale: str = "smoke",
            device: str = "cpu", callback=None, should_stop=None):
    """One seed's hypergradient of every step's learning rate, shared over windows of W steps
    (the window's mean at each step), as a History (``step`` t, ``objective`` the estimate),
    for the widget panel."""
    from hpolab.history import History

    horizon = SIZES[check_scale(scale)][2]
    if not (isinstance(W, int) and 1 <= W <= horizon):
        raise ValueError(f"W must be an integer in [1, T] = [1, {horizon}], got {W!r}")
    task, hyper, _ = setting(scale, "mnist", check_positive("lr", lr), 0.9, resolve_device(device))
    estimator = greedy(1) if method == "greedy" else reverse_mode()
    g = window_means(estimator(task, hyper, seed).grad.numpy()[None, :], W)[0]
    frame = pd.DataFrame({"step": np.arange(horizon), "iteration": np.arange(horizon), "objective": g})
    for row in frame.to_dict("records"):
        if callback is not None:
            callback(row)
    label = f"{method}, W={W}, seed={seed}"
    return History(frame, method, label, task.name, seed, config={"W": W, "lr": lr})


def panel(values: dict | None = None, **overrides):
    """Study 08's widget panel: estimator, W, lr, seed, scale, device; each run draws one
    seed's shared hypergradients against the inner step."""
    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    extra = {"lr": w.FloatLogSlider(value=values.get("lr", 0.01), base=10, min=-4, max=0, step=0.1,
                                    description="lr", readout_format=".1e")}
    return panel_for(run_one, PANEL_METHODS, {"non-greedy": {"W"}, "greedy": {"W"}}, values, extra,
                     x="step", y="objective", log_y=False, total=lambda s: SIZES[s.get("scale", "smoke")][2])
