"""Study 02: Joint Descent tunes an MLP's learning rate and activation while it trains
(section 4.2 and Figure 3 of the JD paper).

A 784-30-10 MLP on real MNIST with the activation ``leaky_relu(z, alpha) + b * elu(z)``;
y = (eta, alpha, b) is tuned by JD's gradientless steps while its gradient steps train the
weights x, on f(x, y) = L(x - eta grad L(x)) (see :mod:`hpolab.problems.mlp`). alpha starts
at 1, a linear network. Two references train with y fixed, gradient steps only: a ReLU
network (alpha = 0, b = 0) and a linear one (alpha = 1, b = 0).

Setup (the paper gives the model, the activation, the objective and alpha0 = 1; the rest is
ours and is a parameter):

* Minibatches of 128 from all 60 000 training images, a fresh one per step, shared by all
  the evaluations of a step (the paper mentions a batch size, "not tuned"). f on 2 000
  images takes 18 ms on one thread here, so full-batch f ~0.5 s per evaluation (3000
  iterations x 5 runs: two hours); on 128 images, 1.5 ms.
* The gradient step x -= grad_x f / beta_x with 1 / beta_x = 0.1, and eta0 = 0.1. The sphere
  study uses the exact smoothness; here the top eigenvalue of grad_x^2 f at the start is
  ~1.3 (power iteration on a batch). The fixed ReLU network trains with 1 / 1.3 = 0.77, but
  JD with 0.5 blew up after the tuner had raised b (training loss 2e5 at the end), and JD
  with 0.75 and eta0 = 0.75 within 5 gradient steps; 0.1 is the usual SGD rate.
* The box eta, alpha, b in [0, 1] (f = +inf outside, so no step leaves it). Without it, with
  JD's default radii (2^-3 ... 2) the tuner drove eta to 1.2 and alpha to 2.3 and training
  diverged; with small radii it pushed alpha to 1.8 and b to 2.2.
* Search radii 2^-7 ... 2^-3 (5 tries per gradientless step). With radii up to 2^-1 one of
  two seeds diverged within 24 steps (eta jumped to 0.55 and b to 0.93 at once).

Each run records, at every step, the training accuracy and plain loss L of the network x on
a fixed random sample of the training images (``monitor``), and the three hyperparameters.

On the CPU the runs use one torch thread: the minibatch operations are too small to gain
from more, and on this 2-core machine shared with other jobs the cpu-scale study took 682 s
with 2 threads against 209 s with 1 (torch's idle threads spin for cores they do not get).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple, Sequence

import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from hpolab.data import as_tensors, load_mnist
from hpolab import devices
from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.methods import joint_descent
from hpolab.plots import PALETTE, curves
from hpolab.problems.mlp import HYPERPARAMETERS, MinibatchStream, activation_mlp, on_minibatches
from hpolab.progress import progress_bar
from hpolab.protocol import Method
from hpolab.runner import run
from hpolab.studies.common import StudyResult, check_scale
from hpolab.tables import significant
from hpolab.validation import check_choice, check_count, check_open_unit, check_positive

DEFAULTS = {  # per scale: iterations per run, training images (None: all 60 000), monitor sample, seeds
    "smoke": {"iterations": 60, "train": 2000, "monitor": 500, "seeds": 1},
    "cpu": {"iterations": 3000, "train": None, "monitor": 2000, "seeds": 2},
    "paper": {"iterations": 3000, "train": None, "monitor": None, "seeds": 5},
}
REFERENCES = {"relu": (0.0, 0.0), "linear": (1.0, 0.0)}  # (alpha, b) of the fixed networks
REFERENCE_LABELS = {"relu": "ReLU (fixed)", "linear": "linear (fixed)"}
LR = 0.1
BATCH_SIZE = 128
BOX = ((0.0, 1.0), (0.0, 1.0), (0.0, 1.0))
RADII = (2**-8, 2**-3)  # r, R: tries at radii 2^-7 ... 2^-3
MONITOR_SEED = 12345  # which training images the accuracy is measured on (the same for every run)
ALPHA_NEAR_ZERO = 0.1
CPU_THREADS = 1


def cpu_threads(device: torch.device, threads: int = CPU_THREADS):
    """Run the block with ``threads`` torch threads when on the CPU (restored afterwards)."""
    return devices.cpu_threads(threads if device.type == "cpu" else None)


class FixedState(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor
    kind: str


def fixed_hyperparameters(reference: str) -> Method:
    """The reference: every iteration a gradient step ``x -= grad_x f / beta_x``, y never
    changes (JD's gradient step without its gradientless ones)."""
    check_choice("reference", reference, REFERENCES)

    def init(x0, y0, oracle, generator):
        return FixedState(x0, y0, "start")

    def update(state, oracle, generator):
        _, grad = oracle.value_and_grad_x(state.x, state.y)
        return FixedState(state.x - grad / oracle.problem.beta_x, state.y, "gradient")

    return Method("fixed", init, update, {"reference": reference}, REFERENCE_LABELS[reference])


@functools.lru_cache(maxsize=2)
def mnist_rows(n_train: int | None, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n_train`` MNIST training images (all if None) as rows of 784 pixels in [0, 1]."""
    images, labels = as_tensors(load_mnist(train=True), limit=n_train, device=device)
    return images.reshape(len(labels), -1), labels


def monitor_sample(images: torch.Tensor, labels: torch.Tensor, size: int | None):
    """A fixed random sample of ``size`` training images (all of them if None or larger)."""
    if size is None or size >= len(labels):
        return images, labels
    index = torch.randperm(len(labels), generator=torch.Generator().manual_seed(MONITOR_SEED))[:size]
    index = index.to(labels.device)
    return images[index], labels[index]


class Setup(NamedTuple):
    """What every run of a study shares."""

    images: torch.Tensor
    labels: torch.Tensor
    monitor: tuple[torch.Tensor, torch.Tensor]
    lr: float
    eta0: float
    batch_size: int
    box: tuple | None


def make_setup(scale: str, device: torch.device, lr: float = LR, eta0: float | None = None,
               batch_size: int = BATCH_SIZE, box: Sequence | None = BOX, monitor: int | None = None) -> Setup:
    check_scale(scale)
    check_positive("lr", lr)
    eta0 = lr if eta0 is None else eta0
    if not (isinstance(eta0, (int, float)) and math.isfinite(eta0) and eta0 >= 0):
        raise ValueError(f"eta0 must be a finite number >= 0, got {eta0!r}")
    check_count("batch_size", batch_size, minimum=1)
    images, labels = mnist_rows(DEFAULTS[scale]["train"], device)
    size = DEFAULTS[scale]["monitor"] if monitor is None else check_count("monitor", monitor, minimum=1)
    box = tuple(tuple(float(v) for v in pair) for pair in box) if box else None
    return Setup(images, labels, monitor_sample(images, labels, size), lr, float(eta0), batch_size, box)


def configure(setup: Setup, method: str, p: float = 0.5, r: float = RADII[0], R: float = RADII[1]):
    """(method, problem) of one run: ``"jd"`` (with p, r, R) or a reference (``"relu"``,
    ``"linear"``), each on its own minibatch stream."""
    check_choice("method", method, ("jd", *REFERENCES))
    stream = MinibatchStream(setup.images, setup.labels, setup.batch_size)
    if method == "jd":
        y0 = (setup.eta0, 1.0, 0.0)
        built = joint_descent(p=p, r=r, R=R)
    else:
        y0 = (setup.eta0, *REFERENCES[method])
        built = fixed_hyperparameters(method)
    box = setup.box if method == "jd" else None
    problem = activation_mlp(stream, setup.monitor, lr=setup.lr, y0=y0, box=box)
    return on_minibatches(built, stream), problem


def run_study(
    scale: str = "cpu",
    p_values: Sequence[float] = (0.3, 0.5, 0.7),
    references: Sequence[str] = ("relu", "linear"),
    iterations: int | None = None,
    seeds: int | None = None,
    lr: float = LR,
    eta0: float | None = None,
    batch_size: int = BATCH_SIZE,
    box: Sequence | None = BOX,
    r: float = RADII[0],
    R: float = RADII[1],
    monitor: int | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> StudyResult:
    """JD for each p and the fixed references, each seed from the same initial weights.

    Args:
      scale: ``smoke``, ``cpu`` or ``paper``; sets ``iterations``, ``seeds``, the training
        images and the monitor sample (see ``DEFAULTS``).
      p_values: JD's gradient-step probabilities, each in (0, 1).
      references: among ``"relu"`` and ``"linear"``; they take ``iterations`` gradient steps
        (the same iteration budget: each of their iterations is one gradient evaluation).
      iterations: gradient plus function evaluations per run.
      seeds: seeds 0 .. seeds - 1; seed s draws the initial weights, the batches and JD's coins.
      lr: the gradient step 1 / beta_x, > 0.
      eta0: the starting eta (None: ``lr``).
      batch_size: minibatch size.
      box: (low, high) for eta, alpha and b; JD never leaves it. Empty or None: no box.
      r, R: JD's smallest and largest search radius.
      monitor: training images the accuracy is measured on (None: the scale's default).
      device: ``auto``, ``cpu``, ``cuda:N`` or ``mps``.
      progress: show a progress bar over the runs.
    """
    check_scale(scale)
    iterations = check_count("iterations", DEFAULTS[scale]["iterations"] if iterations is None else iterations)
    seeds = check_count("seeds", DEFAULTS[scale]["seeds"] if seeds is None else seeds, minimum=1)
    for p in p_values:
        check_open_unit("p", p)
    for reference in references:
        check_choice("reference", reference, REFERENCES)
    joint_descent(r=r, R=R)  # checks the radii before any data is loaded
    torch_device = resolve_device(device)
    setup = make_setup(scale, torch_device, lr, eta0, batch_size, box, monitor)
    plan = [("jd", p) for p in p_values] + [(name, None) for name in references]
    histories: list[History] = []
    with progress_bar(total=len(plan) * seeds, desc="runs", disable=not progress) as bar, cpu_threads(torch_device):
        for seed in range(seeds):
            for method, p in plan:
                built, problem = configure(setup, method, p if p is not None else 0.5, r, R)
                bar.set_postfix_str(f"{built.label}, seed {seed}", refresh=False)
                histories.append(run(built, problem, iterations, seed=seed))
                bar.update()
    parameters = {"scale": scale, "p_values": list(p_values), "references": list(references),
                  "iterations": iterations, "seeds": seeds, "lr": lr, "eta0": setup.eta0,
                  "batch_size": batch_size, "box": [list(pair) for pair in setup.box] if setup.box else None,
                  "r": r, "R": R, "training_images": len(setup.labels), "monitor": len(setup.monitor[1]),
                  "device": str(torch_device)}
    return StudyResult(histories, summarize(histories), parameters)


def first_iteration(history: History, column: str, threshold: float) -> float:
    """The first iteration at which ``column`` is at most ``threshold`` (NaN if never)."""
    frame = history.frame
    hits = frame.loc[frame[column] <= threshold, "iteration"]
    return float(hits.iloc[0]) if len(hits) else math.nan


def at_iteration(history: History, column: str, iteration: int) -> float:
    """``column`` after the last step taken at or before ``iteration``."""
    frame = history.frame
    return float(frame.loc[frame["iteration"] <= iteration, column].iloc[-1])


def summarize(histories: Sequence[History]) -> pd.DataFrame:
    """Per method and p: the mean over seeds of the gradient steps taken, the final training
    accuracy and loss (on the monitor sample), the final hyperparameters and the lowest alpha
    of the run."""
    rows = []
    for h in histories:
        last = h.frame.iloc[-1]
        rows.append({
            "method": "JD" if h.method == "jd" else h.label,
            "p": h.config.get("p"),
            "gradient steps": float(last["gradient_evaluations"]),
            "train acc": float(last["train_accuracy"]),
            "train loss": float(last["train_loss"]),
            **{name: float(last[name]) for name in HYPERPARAMETERS},
            "lowest alpha": float(h.frame["alpha"].min()),
            "diverged": h.status == "diverged",
        })
    frame = pd.DataFrame(rows)
    grouped = frame.groupby(["method", "p"], dropna=False, sort=False)
    summary = grouped.agg(**{column: (column, "mean") for column in frame.columns if column not in ("method", "p", "diverged")},
                          runs=("train acc", "size"), diverged=("diverged", "sum"))
    return summary.reset_index()


def _fmt(value: float) -> str:
    return f"{significant(value):g}"


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else math.nan


def findings(result: StudyResult) -> list[str]:
    """The paper's three claims checked on this study's histories, one sentence each.

    1. JD reaches ~96 % training accuracy in one run, matching the ReLU network;
    2. alpha falls near 0 within ~500 iterations;
    3. eta shrinks near convergence.
    """
    jd = [h for h in result.histories if h.method == "jd"]
    references = {ref: [h for h in result.histories if h.config.get("reference") == ref] for ref in REFERENCES}
    lines = []
    for p in dict.fromkeys(h.config["p"] for h in jd):
        runs = [h for h in jd if h.config["p"] == p]
        steps = _mean(h.frame["gradient_evaluations"].iloc[-1] for h in runs)
        text = (f"JD p={p:g}: train accuracy {_fmt(_mean(h.frame['train_accuracy'].iloc[-1] for h in runs))} after "
                f"{runs[0].iterations} iterations ({steps:.0f} gradient steps)")
        for ref, ref_runs in references.items():
            if ref_runs:
                matched = _mean(at_iteration(r, "train_accuracy", round(steps)) for r in ref_runs)
                text += f"; {REFERENCE_LABELS[ref]} {_fmt(matched)} after as many gradient steps"
        lines.append(text)
    for ref, ref_runs in references.items():
        if ref_runs:
            lines.append(f"{REFERENCE_LABELS[ref]}: train accuracy "
                         f"{_fmt(_mean(h.frame['train_accuracy'].iloc[-1] for h in ref_runs))} after "
                         f"{ref_runs[0].iterations} gradient steps")
    for p in dict.fromkeys(h.config["p"] for h in jd):
        runs = [h for h in jd if h.config["p"] == p]
        near = [first_iteration(h, "alpha", ALPHA_NEAR_ZERO) for h in runs]
        reached = [n for n in near if not math.isnan(n)]
        mark = min(500, result.parameters.get("iterations", runs[0].iterations))  # the paper: within ~500
        lines.append(
            f"JD p={p:g}, alpha: {_fmt(_mean(at_iteration(h, 'alpha', mark) for h in runs))} at iteration {mark}, "
            f"lowest {_fmt(_mean(h.frame['alpha'].min() for h in runs))}, final "
            f"{_fmt(_mean(h.frame['alpha'].iloc[-1] for h in runs))}; within {ALPHA_NEAR_ZERO:g} of 0 in "
            f"{len(reached)} of {len(runs)} runs" + (f" (first at iteration {min(reached):.0f})" if reached else "")
            + f"; final b {_fmt(_mean(h.frame['b'].iloc[-1] for h in runs))}")
        thirds = " / ".join(_fmt(_mean(window_mean(h, "eta", k / 3, (k + 1) / 3) for h in runs)) for k in range(3))
        lines.append(
            f"JD p={p:g}, eta: starts {_fmt(float(runs[0].frame['eta'].iloc[0]))}, highest "
            f"{_fmt(_mean(h.frame['eta'].max() for h in runs))}, final {_fmt(_mean(h.frame['eta'].iloc[-1] for h in runs))}; "
            f"mean over the first / middle / last third of the iterations {thirds}")
    return lines


def window_mean(history: History, column: str, start: float, end: float) -> float:
    """Mean of ``column`` over the steps whose iteration lies in [start, end) of the run's
    iterations (fractions; the last window includes the end)."""
    frame = history.frame
    total = float(frame["iteration"].iloc[-1])
    inside = (frame["iteration"] >= start * total) & ((frame["iteration"] < end * total) | (end >= 1))
    return float(frame.loc[inside, column].mean())


def accuracy_figure(histories: Sequence[History], x: str = "iteration", title: str | None = None,
                    x_max: float | None = None) -> go.Figure:
    """Training accuracy against ``x``, one line per label: the mean over seeds, the band from
    the worst to the best seed; the y axis spans the final accuracies (zoom out for the start)."""
    mean = curves(histories, x=x, y="train_accuracy", band="ci95")
    spread = curves(histories, x=x, y="train_accuracy", band="range")
    figure = go.Figure()
    for i, (label, line) in enumerate(mean.groupby("label", sort=False)):
        color = PALETTE[i % len(PALETTE)]
        if line["runs"].max() > 1:
            band = spread[spread["label"] == label]
            figure.add_trace(go.Scatter(x=list(band["x"]) + list(band["x"][::-1]),
                                        y=list(band["high"]) + list(band["low"][::-1]), fill="toself",
                                        fillcolor=color, opacity=0.15, line={"width": 0}, hoverinfo="skip",
                                        showlegend=False, legendgroup=label))
        figure.add_trace(go.Scatter(x=line["x"], y=line["mean"], name=label, mode="lines", line={"color": color},
                                    legendgroup=label))
    finals = [float(h.frame["train_accuracy"].iloc[-1]) for h in histories]
    figure.update_layout(title=title, template="plotly_white", yaxis_title="training accuracy",
                         xaxis_title="iteration (gradient + function evaluations)" if x == "iteration" else x,
                         yaxis_range=[max(0.0, min(finals) - 0.08), min(1.0, max(finals) + 0.02)])
    if x_max is not None:
        figure.update_xaxes(range=[0, x_max])
    return figure


def hyperparameter_figure(histories: Sequence[History], x: str = "iteration", title: str | None = None) -> go.Figure:
    """eta, alpha and b against ``x``, one panel each, one line per label (mean over seeds)."""
    figure = make_subplots(rows=1, cols=3, subplot_titles=("eta (learning rate)", "alpha (ReLU slope)",
                                                           "b (ELU coefficient)"))
    labels: dict[str, str] = {}
    for column, name in enumerate(HYPERPARAMETERS, start=1):
        data = curves(histories, x=x, y=name, band="ci95")
        for label, line in data.groupby("label", sort=False):
            color = labels.setdefault(label, PALETTE[len(labels) % len(PALETTE)])
            figure.add_trace(go.Scatter(x=line["x"], y=line["mean"], name=label, legendgroup=label, mode="lines",
                                        line={"color": color}, showlegend=column == 1), row=1, col=column)
    figure.update_xaxes(title_text="iteration (gradient + function evaluations)" if x == "iteration" else x)
    figure.update_layout(title=title, template="plotly_white", height=380)
    return figure


def run_one(method: str = "jd", p: float = 0.5, lr: float = LR, eta0: float = LR, batch_size: int = BATCH_SIZE,
            iterations: int = 3000, seed: int = 0, scale: str = "cpu", device: str = "cpu",
            callback=None, should_stop=None) -> History:
    """One run of the study (what the widget panel's Run button calls)."""
    torch_device = resolve_device(device)
    setup = make_setup(scale, torch_device, lr, eta0, batch_size)
    built, problem = configure(setup, method, p)
    with cpu_threads(torch_device):
        return run(built, problem, check_count("iterations", iterations), seed=seed, callback=callback,
                   should_stop=should_stop)


def panel(values: dict | None = None, **overrides):
    """The study's widget panel, built from the notebook's parameters (``globals()``) and
    ``overrides``: method (JD or a fixed reference), p, iterations, scale, seed, device, step,
    eta0, batch size; draws the training accuracy live."""
    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    lr = float(values.get("lr") or LR)
    extra = {
        "lr": w.FloatLogSlider(value=lr, base=10, min=-3, max=0, step=0.125, description="step 1/beta_x",
                               readout_format=".3g"),
        "eta0": w.BoundedFloatText(value=float(values.get("eta0") or lr), min=0.0, max=1.0, step=0.05,
                                   description="eta0"),
        "batch_size": w.Dropdown(options=[32, 64, 128, 256, 512, 1000], value=values.get("batch_size") or BATCH_SIZE,
                                 description="batch"),
    }
    methods = {"JD": "jd", "ReLU (fixed)": "relu", "linear (fixed)": "linear"}
    return panel_for(run_one, methods, {"jd": {"p"}, "relu": set(), "linear": set()}, values, extra,
                     y="train_accuracy", log_y=False)
