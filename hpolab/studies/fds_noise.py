"""Study 08: how noisy non-greedy hypergradients are, how biased greedy ones are, and what
sharing a learning rate over W steps does to the error (the FDS paper's section 5.1).

At one fixed learning-rate schedule, each seed (its own initialization and data order)
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
from hpolab.studies.common import check_scale
from hpolab.studies.fds import image_data, image_task
from hpolab.validation import check_count, check_positive

STUDY = "08_fds_hypergradient_noise"
# train images, validation images, T, batch, seeds
SIZES = {"smoke": (512, 128, 12, 64, 4), "cpu": (32_000, 1000, 250, 128, 20), "paper": (32_000, 10_000, 250, 128, 100)}


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
    mu = g.mean(axis=0) if mu is None else mu
    return np.array([float(((window_means(g, w) - mu) ** 2).mean()) for w in windows])


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


def setting(scale: str, dataset: str, lr: float, momentum: float, device):
    """(task, hyperparameters, note): LeNet on the scale's images, one learning rate per step,
    all equal to ``lr`` (``note`` as :func:`hpolab.studies.fds.image_data`'s)."""
    n_train, n_val, horizon, batch, _ = SIZES[scale]
    split, note = image_data(dataset, n_train, n_val, 0, device)
    task = image_task(split, "lenet", batch, device, name=f"lenet-{'mnist' if note else dataset}")
    hyper = schedule(horizon, lr=lr, momentum=momentum, windows={"lr": 1}, dtype=torch.float32)
    return task, hyper, note


def run_noise_study(scale: str = "cpu", dataset: str = "mnist", lr: float = 0.01, momentum: float = 0.9,
                    seeds: int | None = None, windows: list[int] | None = None, device: str = "cpu",
                    cache: bool = True, progress: bool = True) -> NoiseResult:
    """Hypergradients of a per-step learning rate at ``lr`` (momentum ``momentum``) on LeNet for
    ``seeds`` seeds, non-greedy and greedy, then MSE_W and Theorem 4.1's bound for each W.

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
    torch_device = resolve_device(device)
    task, hyper, note = setting(scale, dataset, lr, momentum, torch_device)
    used = "mnist" if note else dataset
    parameters = {"scale": scale, "dataset": used, "lr": lr, "momentum": momentum, "seeds": seeds,
                  "horizon": horizon, "batch": batch, "n_train": n_train, "n_val": n_val, "device": str(torch_device)}
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
    g, g_greedy = np.stack(nongreedy_rows), np.stack(greedy_rows)
    terms = theorem_terms(g)
    measured = mse_by_window(g, windows)
    table = pd.DataFrame({
        "W": windows, "values learned": [-(-horizon // w) for w in windows], "measured MSE": measured,
        "bound": [terms.bound(w) for w in windows], "noise term": [terms.noise(w) for w in windows],
        "bias term": [terms.bias(w) for w in windows],
    })
    parameters["windows"] = windows
    return NoiseResult(g, g_greedy, table, terms, parameters, note)


def greedy_error(result: NoiseResult) -> dict:
    """Greedy hypergradients against the non-greedy ensemble mean mu: their MSE, split into
    bias^2 (mean over t of (E[greedy_t] - mu_t)^2) and variance, and how often their mean
    has mu's sign."""
    mu = result.nongreedy.mean(axis=0)
    mean = result.greedy.mean(axis=0)
    return {
        "mse": float(((result.greedy - mu) ** 2).mean()),
        "bias2": float(((mean - mu) ** 2).mean()),
        "variance": float(result.greedy.var(axis=0).mean()),
        "same_sign": float((np.sign(mean) == np.sign(mu)).mean()),
        "mean_ratio": float(mean.sum() / mu.sum()),
    }


def findings(result: NoiseResult) -> list[str]:
    """The paper's two claims of section 5.1 on this run, with the numbers."""
    table = result.table
    mse1 = float(table.loc[table["W"] == 1, "measured MSE"].iloc[0])
    best = table.loc[table["measured MSE"].idxmin()]
    T = result.nongreedy.shape[1]
    e = greedy_error(result)
    lines = [
        f"greedy hypergradients are biased: against the non-greedy ensemble mean their MSE is {e['mse']:.3g}, "
        f"of which bias^2 {e['bias2']:.3g} and variance {e['variance']:.3g}; the non-greedy MSE_1 is {mse1:.3g}. "
        f"Their mean has the sign of the non-greedy mean at {e['same_sign']:.0%} of the steps, and summed over "
        f"the run it is {e['mean_ratio']:.3g} times the non-greedy sum.",
    ]
    interior = 1 < int(best["W"]) < T
    lines.append(
        f"sharing lowers the MSE {'with an interior best W' if interior else 'but the best W is at an end'}: "
        f"MSE_1 = {mse1:.3g}, best MSE_{int(best['W'])} = {best['measured MSE']:.3g} "
        f"({mse1 / best['measured MSE']:.3g}x lower); at W = T = {T} it is "
        f"{float(table['measured MSE'].iloc[-1]):.3g}.")
    holds = bool((table["bound"] >= table["measured MSE"]).all())
    lines.append(
        f"Theorem 4.1's bound (MSE_1 {result.terms.mse1:.3g}, c {result.terms.c:.3g}, epsilon {result.terms.epsilon:.3g}) "
        f"{'holds at every W' if holds else 'is violated at some W'}; its minimum is at W = "
        f"{int(table.loc[table['bound'].idxmin(), 'W'])}, the measured minimum at W = {int(best['W'])}.")
    return lines


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
