"""Study 12: Self-Tuning Networks' best-response approximation (MacKay et al., ICLR 2019).

Three parts (the method is :mod:`hpolab.methods.stn`):

* **Ridge regression**, where the best response is known: L_train(w, lambda) =
  (|X w - y|^2 + lambda |w|^2) / (2 n), so w*(lambda) = (X^T X + lambda I)^-1 X^T y and
  d w* / d log lambda = -lambda (X^T X + lambda I)^-1 w*. STN tunes h = log lambda with the
  plain linear response w0 + W1 (h - c); the study records, at every tuning step, the fitted
  response against the exact one around c (value, Jacobian), the hypergradient through the
  fitted response against the exact one, and snapshots of the response for the figures. The
  minimizer of STN's training objective E_delta L_train(w0 + W1 delta, h + delta) has a closed
  form here (:func:`ridge_stn_optimum`), which shows how sigma biases the fitted Jacobian.
* **An MLP on real MNIST** (a small training set, so regularization matters) with
  lambda = (log weight decay, logit dropout) and the paper's structured response in every
  layer, against a grid of fixed (weight decay, dropout) trained for the same number of steps
  with the same initialization, best by validation loss.
* **The schedule replayed**: the plain MLP trained from scratch with the (weight decay,
  dropout) STN used at each step, against the same grid (the notes: "these schedules
  transferred ..., outperforming manually tuned constant schedules").

The notes (``../shared/papers/iclr-optimization-notes.txt``) give no settings. Where the
authors' code (github.com/asteroidhouse/self-tuning-networks, ``cnn/hypertrain.py``) has one,
the study takes it: perturbation scale sigma = 0.5 (learned there from 0.5 with an entropy
bonus; fixed here), T_train = 2 training steps per tuning step, validation batches of the
training batch size, 5 warm-up epochs before the first tuning step, a starting dropout of
0.05. The step size on lambda cannot be copied from a run 50 times longer: :func:`travel_lr`
sets it so that Adam can cross the box once over the run (1.8e-3 at paper scale against the
authors' 3e-3). ``docs/studies/12_stn_best_response.md`` lists every setting; :data:`CLAIMS`
are the claims each run checks.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from torch.nn import functional as F

from hpolab import claims
from hpolab.devices import resolve_device
from hpolab import divergence
from hpolab.history import COLUMNS, History
from hpolab.splits import Split, mnist_split
from hpolab.methods.stn import (
    ResponseModel,
    adam,
    hypergradient,
    linear_init,
    linear_response,
    minibatches,
    mlp_init,
    mlp_logits,
    mlp_response,
    self_tuning,
    structured_init,
    structured_weights,
)
from hpolab.plots import PALETTE
from hpolab.progress import progress_bar
from hpolab.studies.common import StudyResult, check_scale
from hpolab.validation import check_choice, check_count, check_positive

# --- ridge regression: the exact best response ----------------------------------------------


@dataclass(frozen=True)
class Regression:
    """Train, validation and test sets of a linear regression (float64)."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


def ridge_data(n_train: int = 60, n_val: int = 200, n_test: int = 1000, features: int = 40, noise: float = 1.0,
               seed: int = 0) -> Regression:
    """Synthetic regression: rows x ~ N(0, I), targets x . w_true + noise, w_true ~ N(0, I / d).

    With n_train close to the number of features the least-squares fit is poor, so the best
    validation loss sits at an interior lambda (near noise^2 d / |w_true|^2 for isotropic data).
    """
    check_count("features", features, minimum=1)
    generator = torch.Generator().manual_seed(seed)
    truth = torch.randn(features, generator=generator, dtype=torch.float64) / math.sqrt(features)

    def draw(n):
        x = torch.randn(n, features, generator=generator, dtype=torch.float64)
        return x, x @ truth + noise * torch.randn(n, generator=generator, dtype=torch.float64)

    return Regression(draw(check_count("n_train", n_train, 1)), draw(check_count("n_val", n_val, 1)),
                      draw(check_count("n_test", n_test, 1)))


def ridge_best_response(x: torch.Tensor, y: torch.Tensor, log_lambda: float) -> torch.Tensor:
    """w*(lambda) = (X^T X + lambda I)^-1 X^T y for lambda = exp(log_lambda)."""
    gram = x.T @ x + math.exp(log_lambda) * torch.eye(x.shape[1], dtype=x.dtype)
    return torch.linalg.solve(gram, x.T @ y)


def ridge_jacobian(x: torch.Tensor, y: torch.Tensor, log_lambda: float) -> torch.Tensor:
    """d w* / d log lambda = -lambda (X^T X + lambda I)^-1 w*(lambda), shape (d, 1)."""
    lam = math.exp(log_lambda)
    gram = x.T @ x + lam * torch.eye(x.shape[1], dtype=x.dtype)
    return (-lam * torch.linalg.solve(gram, ridge_best_response(x, y, log_lambda))).unsqueeze(1)


def squared_loss(w: torch.Tensor, batch) -> torch.Tensor:
    """Half the mean squared error of the linear model w on (x, y)."""
    x, y = batch
    return 0.5 * ((x @ w - y) ** 2).mean()


def ridge_model(n_train: int) -> ResponseModel:
    """Ridge regression as STN's linear response: example i of the (full) training batch is
    fitted at its own log lambda, and carries 1 / n of the penalty, so the loss averaged over
    the batch is (|X w - y|^2 + lambda |w|^2) / (2 n) when every example has the same lambda."""

    def train(w, hyper, batch):  # w (n, d), hyper (n, 1)
        x, y = batch
        return 0.5 * ((x * w).sum(1) - y) ** 2 + 0.5 * hyper[:, 0].exp() * (w * w).sum(1) / n_train

    return linear_response(train, squared_loss)


def ridge_validation_curve(data: Regression, log_lambdas) -> np.ndarray:
    """The exact validation loss L_val(w*(lambda)) at each log lambda."""
    return np.array([float(squared_loss(ridge_best_response(*data.train, float(h)), data.val)) for h in log_lambdas])


def ridge_optimum(data: Regression, low: float = -12.0, high: float = 12.0) -> float:
    """The log lambda minimizing the exact validation loss: a grid of 0.05, then golden section."""
    grid = np.arange(low, high + 1e-9, 0.05)
    best = int(np.argmin(ridge_validation_curve(data, grid)))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        fc, fd = ridge_validation_curve(data, [c, d])
        a, b = (a, d) if fc < fd else (c, b)
    return float((a + b) / 2)


def ridge_exact_hypergradient(data: Regression, log_lambda: float) -> float:
    """d L_val(w*(lambda)) / d log lambda = grad L_val(w*) . d w* / d log lambda."""
    x_val, y_val = data.val
    w = ridge_best_response(*data.train, log_lambda)
    grad = x_val.T @ (x_val @ w - y_val) / len(y_val)
    return float(grad @ ridge_jacobian(*data.train, log_lambda)[:, 0])


def ridge_stn_optimum(x: torch.Tensor, y: torch.Tensor, log_lambda: float, sigma: float):
    """The (w0, W1) minimizing STN's training objective E_delta L_train(w0 + W1 delta, h + delta),
    delta ~ N(0, sigma^2), in closed form.

    With v = W1, a = exp(h) and m_k = E[delta^k e^delta] (m0 = e^(s^2/2), m1 = s^2 m0,
    m2 = (s^2 + s^4) m0), the objective is (|X w0 - y|^2 + s^2 |X v|^2 + a (m0 |w0|^2 +
    2 m1 w0.v + m2 |v|^2)) / (2n); its stationarity conditions are one linear system.
    As sigma -> 0, w0 -> w*(h) and v -> d w*/d h.
    """
    d = x.shape[1]
    a, s2 = math.exp(log_lambda), sigma**2
    m0 = math.exp(s2 / 2)
    m1, m2 = s2 * m0, (s2 + s2 * s2) * m0
    gram, eye = x.T @ x, torch.eye(d, dtype=x.dtype)
    system = torch.cat([torch.cat([gram + a * m0 * eye, a * m1 * eye], 1),
                        torch.cat([a * m1 * eye, s2 * gram + a * m2 * eye], 1)])
    solution = torch.linalg.solve(system, torch.cat([x.T @ y, torch.zeros(d, dtype=x.dtype)]))
    return solution[:d], solution[d:].unsqueeze(1)


def relative_error(estimate: torch.Tensor, exact: torch.Tensor) -> float:
    return float((estimate - exact).norm() / exact.norm().clamp_min(1e-300))


def ridge_sigma_sweep(data: Regression, log_lambdas: Sequence[float], sigmas: Sequence[float]) -> pd.DataFrame:
    """At each log lambda and sigma: how far the exact minimizer of STN's training objective is
    from the best response (relative error of w0 and of the Jacobian W1), and its hypergradient
    against the exact one."""
    x, y = data.train
    rows = []
    for log_lambda in log_lambdas:
        log_lambda = float(log_lambda)
        exact_w, exact_j = ridge_best_response(x, y, log_lambda), ridge_jacobian(x, y, log_lambda)
        exact_g = ridge_exact_hypergradient(data, log_lambda)
        for sigma in sigmas:
            w0, w1 = ridge_stn_optimum(x, y, log_lambda, sigma)
            _, grad = hypergradient(ridge_model(len(y)), (w0, w1), data.val, 1)
            rows.append({"log lambda": log_lambda, "sigma": float(sigma), "response error": relative_error(w0, exact_w),
                         "Jacobian error": relative_error(w1, exact_j), "hypergradient": float(grad[0]),
                         "exact hypergradient": exact_g})
    return pd.DataFrame(rows)


@dataclass
class RidgeRun:
    """An STN run on ridge regression: its history and snapshots of the fitted response."""

    history: History
    snapshots: list[dict]  # {"tune_step", "center", "w0", "w1"}
    optimum: float  # the exact best log lambda
    data: Regression


def travel_lr(limits: tuple[Sequence[float], Sequence[float]], tuning_steps: int) -> float:
    """The step size on lambda that lets Adam cross the widest side of the box once over the
    run: (high - low) / tuning steps (an Adam step moves a coordinate by about its step size).

    STN's authors use 3e-3 over ~50 000 tuning steps (their CNN code); the notes give no value.
    A fixed value would either freeze lambda in a short run or make a long one erratic; this
    rule gives 1.8e-3 at this study's paper scale and lets a short run span the box.
    """
    check_count("tuning_steps", tuning_steps, minimum=1)
    low, high = np.asarray(limits[0], dtype=float), np.asarray(limits[1], dtype=float)
    return float(np.max(high - low)) / tuning_steps


def run_ridge(data: Regression, log_lambda0: float = -4.0, sigma: float = 0.5, lr: float = 0.01,
              hyper_lr: float | None = None, cycles: int = 400, train_steps: int = 10, tune_steps: int = 1,
              warmup: int = 1000, snapshots: int = 4, seed: int = 0, limits=(-12.0, 12.0),
              callback: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None) -> RidgeRun:
    """STN on ridge regression, tuning log lambda from ``log_lambda0`` (full-batch training and
    validation losses). One history row per tuning step (row 0: after the warm-up).

    ``hyper_lr`` defaults to :func:`travel_lr` of the box over the ``cycles`` tuning steps.
    Each row also holds the fitted response's error against the exact one around the current
    log lambda c (``local_error``: mean over c + {-sigma, -sigma/2, sigma/2, sigma} of
    |w0 + W1 delta - w*(c + delta)| / |w*(c + delta)|) and the same error of the constant
    response w0 that ignores lambda (``constant_error``).
    """
    check_count("cycles", cycles, minimum=1)
    check_count("warmup", warmup)
    check_positive("sigma", sigma)
    hyper_lr = travel_lr(([limits[0]], [limits[1]]), cycles * tune_steps) if hyper_lr is None else hyper_lr
    x, y = data.train
    method = self_tuning(ridge_model(len(y)), sigma, lr=lr, hyper_lr=hyper_lr, train_steps=train_steps,
                         tune_steps=tune_steps, limits=([limits[0]], [limits[1]]), per_example=False)
    generator = torch.Generator().manual_seed(seed)
    state = method.init(linear_init(x.shape[1], 1), torch.tensor([float(log_lambda0)], dtype=torch.float64))
    start = time.perf_counter()
    for _ in range(warmup):
        state = method.train(state, data.train, generator)
    optimum = ridge_optimum(data)
    snap_at = set(np.unique(np.linspace(0, cycles, snapshots).round().astype(int)).tolist()) if snapshots else set()
    rows, kept, status, message = [], [], "finished", ""
    model = ridge_model(len(y))

    def record(state, kind):
        h = float(state.hyper[0])
        w0, w1 = state.phi
        exact_w, exact_j = ridge_best_response(x, y, h), ridge_jacobian(x, y, h)
        _, grad = hypergradient(model, state.phi, data.val, 1)
        evaluations = state.train_steps + state.tune_steps
        rows.append({"step": state.train_steps, "iteration": evaluations, "gradient_evaluations": evaluations,
                     "function_evaluations": 0, "hvp_evaluations": 0, "wall_time": time.perf_counter() - start,
                     "objective": float(squared_loss(w0, data.val)), "kind": kind, "tune_step": state.tune_steps,
                     "log_lambda": h, "lambda": math.exp(h),
                     "exact_val_loss": float(squared_loss(exact_w, data.val)),
                     "test_loss": float(squared_loss(w0, data.test)),
                     "train_loss": float(squared_loss(w0, data.train) + 0.5 * math.exp(h) * (w0 @ w0) / len(y)),
                     "hypergradient": float(grad[0]), "exact_hypergradient": ridge_exact_hypergradient(data, h),
                     "response_error": relative_error(w0, exact_w), "jacobian_error": relative_error(w1, exact_j),
                     **local_errors(x, y, w0, w1[:, 0], h, sigma)})
        if state.tune_steps in snap_at:
            kept.append({"tune_step": state.tune_steps, "center": h, "w0": w0.clone(), "w1": w1.clone()})
        if callback is not None:
            callback(rows[-1])

    record(state, "warm-up")
    for cycle in range(cycles):
        state = method.update(state, lambda: data.train, lambda: data.val, generator)
        record(state, "cycle")
        if divergence.diverged(rows[-1]["objective"], rows[0]["objective"]):
            status = "diverged"
            message = f"diverged at cycle {cycle + 1}: the validation loss became {rows[-1]['objective']}"
            break
        if should_stop is not None and should_stop():
            status, message = "stopped", f"stopped by request at cycle {cycle + 1}"
            break
    config = {"task": "ridge", "sigma": sigma, "lr": lr, "hyper_lr": hyper_lr, "train_steps": train_steps,
              "tune_steps": tune_steps, "warmup": warmup, "log_lambda0": log_lambda0}
    history = History(_frame(rows), "stn", "STN", "ridge", seed, config, ["log_lambda"], status, message)
    return RidgeRun(history, kept, optimum, data)


def local_errors(x: torch.Tensor, y: torch.Tensor, w0: torch.Tensor, w1: torch.Tensor, center: float,
                 sigma: float) -> dict[str, float]:
    """How well the fitted line w0 + w1 delta follows w*(center + delta) for |delta| <= sigma
    (where the training phase fits it): the mean relative error at delta in {-sigma, -sigma/2,
    sigma/2, sigma} (``local_error``), and that of the constant w0 (``constant_error``)."""
    fitted, constant = [], []
    for delta in (-sigma, -sigma / 2, sigma / 2, sigma):
        exact = ridge_best_response(x, y, center + delta)
        fitted.append(relative_error(w0 + delta * w1, exact))
        constant.append(relative_error(w0, exact))
    return {"local_error": float(np.mean(fitted)), "constant_error": float(np.mean(constant))}


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["best_objective"] = frame["objective"].cummin()
    return frame[[*COLUMNS, *[c for c in frame.columns if c not in COLUMNS]]]


# --- an MLP on MNIST: weight decay and dropout ------------------------------------------------

NAMES = ("log_weight_decay", "logit_dropout")
DECAY_RANGE, DROPOUT_RANGE = (1e-7, 1.0), (0.01, 0.9)  # STN's box when none is given


def network_limits(decay_range=DECAY_RANGE, dropout_range=DROPOUT_RANGE) -> tuple[list[float], list[float]]:
    """STN's box on lambda = (log weight decay, logit dropout) from ranges of weight decay and dropout."""
    (d_low, d_high), (p_low, p_high) = decay_range, dropout_range
    if not 0 < d_low < d_high or not 0 < p_low < p_high < 1:
        raise ValueError(f"need 0 < weight decay low < high and 0 < dropout low < high < 1, got {decay_range!r}, "
                         f"{dropout_range!r}")
    return ([math.log(d_low), math.log(p_low / (1 - p_low))], [math.log(d_high), math.log(p_high / (1 - p_high))])


def to_lambda(weight_decay: float, dropout: float) -> torch.Tensor:
    """(log weight decay, logit dropout)."""
    check_positive("weight_decay", weight_decay)
    if not 0 < dropout < 1:
        raise ValueError(f"dropout must lie in the open interval (0, 1) for STN, got {dropout!r}")
    return torch.tensor([math.log(weight_decay), math.log(dropout / (1 - dropout))], dtype=torch.float64)


@torch.no_grad()
def evaluate(logits: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
             batch_size: int = 2000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``logits`` on (x, y)."""
    loss = correct = 0.0
    for start in range(0, len(y), batch_size):
        out = logits(x[start:start + batch_size])
        loss += float(F.cross_entropy(out, y[start:start + batch_size], reduction="sum"))
        correct += float((out.argmax(1) == y[start:start + batch_size]).sum())
    return loss / len(y), correct / len(y)


WARMUP_EPOCHS = 5  # the authors' CNN code trains 5 epochs before its first tuning step
TRAIN_STEPS = 2  # T_train of the authors' code (CNN and LSTM): training steps per tuning step
SIGMA = 0.5  # the authors' CNN code's perturbation scale (there learned from 0.5; fixed here)


@dataclass(frozen=True)
class NetworkSetting:
    """One network run: ``method`` "stn" tunes from (weight_decay, dropout); "fixed" keeps
    them; "replay" trains the plain MLP with a schedule found by STN (``schedule``: (step,
    weight decay, dropout) rows, each in force from the training step after ``step``).

    ``val_batch_size`` None takes ``batch_size`` (the authors' code draws validation batches
    of the training batch size); ``warmup`` None is :data:`WARMUP_EPOCHS` epochs of the
    training set; ``hyper_lr`` None is :func:`travel_lr` over the tuning steps of the run.
    """

    method: str
    weight_decay: float
    dropout: float
    hidden: tuple[int, ...] = (400, 400)
    steps: int = 1000  # training steps (phi or weights); STN adds one tuning step per train_steps
    batch_size: int = 128
    val_batch_size: int | None = None  # STN: validation examples per tuning step
    lr: float = 1e-3
    sigma: float = SIGMA
    hyper_lr: float | None = None
    train_steps: int = TRAIN_STEPS
    tune_steps: int = 1
    warmup: int | None = None  # STN: training steps before the first tuning step
    decay_range: tuple[float, float] = DECAY_RANGE  # STN's box on the weight decay
    dropout_range: tuple[float, float] = DROPOUT_RANGE  # and on the dropout rate
    evaluations: int = 20
    schedule: tuple[tuple[int, float, float], ...] = ()  # replay: (step, weight decay, dropout)

    @property
    def label(self) -> str:
        if self.method == "stn":
            return "STN"
        if self.method == "replay":
            return REPLAY
        return f"wd={self.weight_decay:g}, p={self.dropout:g}"

    def warmup_steps(self, n_train: int) -> int:
        """STN's warm-up in training steps for a training set of ``n_train`` examples."""
        if self.warmup is not None:
            return check_count("warmup", self.warmup)
        return WARMUP_EPOCHS * max(1, n_train // self.batch_size)

    def tuning_steps(self, n_train: int) -> int:
        """How many tuning steps STN takes in the run."""
        warmup = self.warmup_steps(n_train)
        return max(1, (self.steps - warmup) // self.train_steps + 1) * self.tune_steps if warmup <= self.steps else 1


REPLAY = "STN schedule, replayed"


@dataclass
class STNHistory(History):
    """A network run's history and, for STN, every value its hyperparameters took
    (``schedule``: step, weight_decay, dropout; row 0 the start, then one row per tuning step)."""

    schedule: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def as_schedule(self) -> tuple[tuple[int, float, float], ...]:
        """The schedule as :class:`NetworkSetting`'s ``schedule`` rows."""
        return tuple((int(r.step), float(r.weight_decay), float(r.dropout)) for r in self.schedule.itertuples())


def scheduled(schedule: Sequence[tuple[int, float, float]], step: int) -> tuple[float, float]:
    """(weight decay, dropout) in force at training step ``step`` (1, 2, ...): the last row
    whose step is before it."""
    current = schedule[0]
    for row in schedule:
        if row[0] >= step:
            break
        current = row
    return current[1], current[2]


def run_network(setting: NetworkSetting, data: Split, seed: int = 0, callback: Callable[[dict], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> STNHistory:
    """Train the MLP with fixed hyperparameters, with a replayed schedule, or tune them with
    STN; one history row per evaluation (validation loss as the objective, test loss and
    accuracy, the hyperparameters).

    All three start from the same elementary weights for a seed and see the same training
    batches. STN's validation loss, test loss and accuracy are those of the response at the
    current lambda (no perturbation, no dropout).
    """
    check_choice("method", setting.method, ("stn", "fixed", "replay"))
    check_count("steps", setting.steps, minimum=1)
    if setting.method == "replay" and not setting.schedule:
        raise ValueError("schedule must hold at least one (step, weight decay, dropout) row to replay")
    x_train, y_train = data.train
    sizes = (x_train.shape[1], *setting.hidden, 10)
    device = x_train.device
    init_generator, generator = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    train_batches = minibatches(data.train, setting.batch_size, generator)
    every = max(1, setting.steps // setting.evaluations)
    rows, running, count, status, message = [], 0.0, 0, "finished", ""
    warmup = setting.warmup_steps(len(y_train))
    hyper_lr = setting.hyper_lr
    start = time.perf_counter()
    if setting.method == "stn":
        limits = network_limits(setting.decay_range, setting.dropout_range)
        hyper_lr = travel_lr(limits, setting.tuning_steps(len(y_train))) if hyper_lr is None else hyper_lr
        stn = self_tuning(mlp_response(), setting.sigma, lr=setting.lr, hyper_lr=hyper_lr,
                          train_steps=setting.train_steps, tune_steps=setting.tune_steps, limits=limits)
        state = stn.init(structured_init(sizes, len(NAMES), init_generator, device=device),
                         to_lambda(setting.weight_decay, setting.dropout))
        val_batches = minibatches(data.val, setting.val_batch_size or setting.batch_size, generator)
    else:
        params = tuple(p.requires_grad_() for p in mlp_init(sizes, init_generator, device=device))
        optimizer = adam(setting.lr)
        opt_state = optimizer.init(params)
    path = [(0, setting.weight_decay, setting.dropout)] if setting.method != "replay" else [setting.schedule[0]]

    def hyperparameters(step):
        """The weight decay and dropout of the plain network at training step ``step``."""
        if setting.method == "replay":
            return scheduled(setting.schedule, step)
        return setting.weight_decay, setting.dropout

    def current(step):
        if setting.method == "stn":
            weights = structured_weights(state.phi, torch.zeros(len(NAMES), dtype=state.phi[0].dtype, device=device))
            h = state.hyper.double().cpu()
            return weights, float(h[0].exp()), float(torch.sigmoid(h[1])), state.tune_steps
        return (params, *hyperparameters(max(step, 1)), 0)

    def passes(step, tuned):
        """Cost so far in passes (forward and backward) of the plain network over a training
        batch: the structured response computes two matrix products per layer, so each of its
        training or tuning steps counts 2 (a tuning step scaled by its batch size)."""
        if setting.method != "stn":
            return float(step)
        return 2.0 * (step + tuned * (setting.val_batch_size or setting.batch_size) / setting.batch_size)

    def record(step):
        weights, decay, dropout, tuned = current(step)
        val_loss, val_acc = evaluate(lambda x: mlp_logits(weights, x), *data.val)
        test_loss, test_acc = evaluate(lambda x: mlp_logits(weights, x), *data.test)
        rows.append({"step": step, "iteration": step + tuned, "gradient_evaluations": step + tuned,
                     "function_evaluations": 0, "hvp_evaluations": 0, "wall_time": time.perf_counter() - start,
                     "objective": val_loss, "kind": "evaluation", "train_loss": running / count if count else math.nan,
                     "val_accuracy": val_acc, "test_loss": test_loss, "test_accuracy": test_acc, "tune_step": tuned,
                     "passes": passes(step, tuned),
                     "weight_decay": decay, "dropout": dropout, "log_weight_decay": math.log(decay) if decay > 0 else math.nan,
                     "logit_dropout": math.log(dropout / (1 - dropout)) if 0 < dropout < 1 else math.nan})
        if callback is not None:
            callback(rows[-1])

    record(0)
    first_loss = None  # the first training loss: the divergence rule's reference
    for step in range(1, setting.steps + 1):
        if setting.method == "stn":
            state = stn.train(state, next(train_batches), generator)
            loss = state.train_loss
            if step >= warmup and (step - warmup) % setting.train_steps == 0:
                for _ in range(setting.tune_steps):
                    state = stn.tune(state, next(val_batches))
                h = state.hyper.double().cpu()
                path.append((step, float(h[0].exp()), float(torch.sigmoid(h[1]))))
        else:
            decay, dropout = hyperparameters(step)
            x, y = next(train_batches)
            keep = torch.tensor(1 - dropout, device=device) if dropout > 0 else None
            objective = F.cross_entropy(mlp_logits(params, x, keep=keep, generator=generator), y)
            if decay > 0:
                objective = objective + 0.5 * decay * sum((w * w).sum() for w in params[::2])
            grads = torch.autograd.grad(objective, params)
            params, opt_state = optimizer.update(grads, opt_state, tuple(p.detach() for p in params))
            params = tuple(p.requires_grad_() for p in params)
            loss = float(objective.detach())
        running, count = running + loss, count + 1
        first_loss = loss if first_loss is None else first_loss
        if divergence.diverged(loss, first_loss):
            status, message = "diverged", f"diverged at step {step}: the training loss became {loss}"
        if step % every == 0 or step == setting.steps or status != "finished":
            record(step)
            running, count = 0.0, 0
        if status != "finished":
            break
        if should_stop is not None and should_stop():
            status, message = "stopped", f"stopped by request at step {step}"
            break
    config = {"task": "mnist-mlp", "method": setting.method, "weight_decay0": setting.weight_decay,
              "dropout0": setting.dropout, "hidden": list(setting.hidden), "steps": setting.steps,
              "batch_size": setting.batch_size, "lr": setting.lr}
    if setting.method == "stn":
        config.update(sigma=setting.sigma, hyper_lr=hyper_lr,
                      val_batch_size=setting.val_batch_size or setting.batch_size, train_steps=setting.train_steps,
                      tune_steps=setting.tune_steps, warmup=warmup, decay_range=list(setting.decay_range),
                      dropout_range=list(setting.dropout_range))
    schedule = pd.DataFrame(path if setting.method == "stn" else list(setting.schedule) or path,
                            columns=["step", "weight_decay", "dropout"])
    return STNHistory(_frame(rows), setting.method, setting.label, "mnist-mlp", seed, config,
                      ["weight_decay", "dropout"], status, message, schedule=schedule)


# --- the study --------------------------------------------------------------------------------

# Per scale. Ridge: train / validation / test rows, features, warm-up steps, cycles.
RIDGE_SIZES = {"smoke": (40, 100, 200, 30, 500, 150), "cpu": (60, 200, 1000, 40, 1000, 300),
               "paper": (60, 200, 1000, 40, 2000, 1000)}
# MLP: train / validation / test images (None: all 10 000), hidden sizes, training steps, evaluations, seeds.
NETWORK_SIZES = {"smoke": (256, 256, 256, (32,), 60, 4, 1), "cpu": (2000, 2000, 5000, (256, 256), 1000, 20, 3),
                 "paper": (50_000, 10_000, None, (1000, 1000), 20_000, 50, 2)}
GRIDS = {  # (weight decays, dropouts) of the fixed-hyperparameter baseline
    "smoke": ([1e-4], [0.0, 0.5]),
    "cpu": ([1e-5, 1e-3, 1e-2], [0.0, 0.25, 0.5]),
    "paper": ([1e-6, 1e-5, 1e-4, 1e-3, 1e-2], [0.0, 0.2, 0.4, 0.6]),
}
SIGMA_SWEEP = (0.01, 0.03, 0.1, 0.3, 1.0, 2.0)


@dataclass
class STNResult(StudyResult):
    """The study's histories and summary, the ridge run and the sigma sweep of its closed form."""

    ridge: RidgeRun | None = None
    sweep: pd.DataFrame = field(default_factory=pd.DataFrame)

    def save(self, directory):
        paths = super().save(directory)
        paths["sigma_sweep"] = paths["summary"].parent / "sigma_sweep.csv"
        self.sweep.to_csv(paths["sigma_sweep"], index=False)
        return paths


def run_study(scale: str = "cpu", sigma: float = SIGMA, hyper_lr: float | None = None, weight_decay: float = 1e-4,
              dropout: float = 0.05, weight_decays: Sequence[float] | None = None,
              dropouts: Sequence[float] | None = None, steps: int | None = None, train_steps: int = TRAIN_STEPS,
              val_batch_size: int | None = None, warmup_epochs: float = WARMUP_EPOCHS, seeds: int | None = None,
              ridge_sigma: float = SIGMA, ridge_log_lambda0: float = -4.0, device: str = "cpu",
              progress: bool = True) -> STNResult:
    """Study 12: STN on ridge regression, then on the MNIST MLP against the fixed grid, and the
    schedule STN found replayed on the plain MLP from scratch.

    Args:
      sigma, hyper_lr, train_steps, val_batch_size: STN's perturbation scale, step size on
        lambda (None: :func:`travel_lr`), T_train and validation examples per tuning step on
        the MLP (None: the training batch size).
      warmup_epochs: epochs STN trains phi before its first tuning step, >= 0.
      weight_decay, dropout: where STN starts on the MLP.
      weight_decays, dropouts: the grid (default: the scale's); every pair is one run per seed.
      steps: training steps of every MLP run (default: the scale's).
      seeds: MLP runs per setting, seeds 0, 1, ... (initialization, batches, dropout and
        perturbations; the data split is the same); default: the scale's.
      ridge_sigma, ridge_log_lambda0: STN's sigma and starting log lambda on ridge regression.
    """
    check_scale(scale)
    torch_device = resolve_device(device)
    if not (isinstance(warmup_epochs, (int, float)) and 0 <= warmup_epochs < math.inf):
        raise ValueError(f"warmup_epochs must be a finite number >= 0, got {warmup_epochs!r}")
    n_train, n_val, n_test, features, ridge_warmup, cycles = RIDGE_SIZES[scale]
    ridge = run_ridge(ridge_data(n_train, n_val, n_test, features), log_lambda0=ridge_log_lambda0,
                      sigma=ridge_sigma, cycles=cycles, warmup=ridge_warmup)
    sweep = ridge_sigma_sweep(ridge.data, [ridge_log_lambda0, ridge.optimum], SIGMA_SWEEP)
    n_train, n_val, n_test, hidden, default_steps, evaluations, default_seeds = NETWORK_SIZES[scale]
    steps = check_count("steps", steps if steps is not None else default_steps, minimum=1)
    seeds = check_count("seeds", seeds if seeds is not None else default_seeds, minimum=1)
    batch_size = NetworkSetting("fixed", 0.0, 0.0).batch_size
    warmup = round(warmup_epochs * max(1, n_train // batch_size))
    grid_decays, grid_dropouts = GRIDS[scale]
    grid = [(wd, p) for wd in (weight_decays or grid_decays) for p in (dropouts or grid_dropouts)]
    common = {"hidden": tuple(hidden), "steps": steps, "evaluations": evaluations}
    tuner = NetworkSetting("stn", weight_decay, dropout, sigma=sigma, hyper_lr=hyper_lr, train_steps=train_steps,
                           val_batch_size=val_batch_size, warmup=warmup, **common)
    plan = [tuner, *[NetworkSetting("fixed", wd, p, **common) for wd, p in grid]]
    data = mnist_split(n_train, n_val, n_test, device=str(torch_device))
    histories = []
    with progress_bar(total=len(plan) * seeds + seeds, desc="runs", disable=not progress) as bar:
        for seed in range(seeds):
            for setting in plan:
                bar.set_postfix_str(f"{setting.label}, seed {seed}", refresh=False)
                histories.append(run_network(setting, data, seed=seed))
                bar.update()
            found = next(h for h in histories if h.method == "stn" and h.seed == seed)
            replay = NetworkSetting("replay", weight_decay, dropout, schedule=found.as_schedule(), **common)
            bar.set_postfix_str(f"{replay.label}, seed {seed}", refresh=False)
            histories.append(run_network(replay, data, seed=seed))
            bar.update()
    histories.append(ridge.history)
    stn_config = next(h.config for h in histories if h.method == "stn")
    parameters = {"scale": scale, "sigma": sigma, "hyper_lr": stn_config["hyper_lr"], "weight_decay": weight_decay,
                  "dropout": dropout, "grid": grid, "steps": steps, "train_steps": train_steps,
                  "val_batch_size": stn_config["val_batch_size"], "warmup_epochs": warmup_epochs,
                  "warmup_steps": warmup, "seeds": seeds, "ridge_sigma": ridge_sigma,
                  "ridge_hyper_lr": ridge.history.config["hyper_lr"], "ridge_log_lambda0": ridge_log_lambda0,
                  "device": str(torch_device)}
    return STNResult(histories, summarize(histories, ridge), parameters, ridge, sweep)


def mean_interval(values) -> tuple[float, float]:
    """Mean and half-width of the 95 % t-interval (0 for one value)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()), 0.0
    from scipy import stats

    return float(values.mean()), float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))


def summarize(histories: Sequence[History], ridge: RidgeRun | None = None) -> pd.DataFrame:
    """One row per setting: the final hyperparameters (geometric mean of the weight decay over
    seeds, mean dropout), the final validation loss (mean and 95 % half-width over seeds), test
    loss and accuracy, the cost per run in training and validation minibatch steps and in
    plain-network passes (``passes``, see :func:`run_network`; deterministic, unlike wall time,
    which the histories keep), and the number of runs. Ridge: STN's run and the exact optimum."""
    rows, groups = [], {}
    for h in histories:
        groups.setdefault((h.problem, h.label), []).append(h)
    for (problem, label), runs in groups.items():
        last = [h.frame.iloc[-1] for h in runs]
        val, val_ci = mean_interval([row["objective"] for row in last])
        if problem == "ridge":
            decay, drop, accuracy = math.exp(float(np.mean([row["log_lambda"] for row in last]))), math.nan, math.nan
        else:
            decay = math.exp(float(np.mean([math.log(max(row["weight_decay"], 1e-300)) for row in last])))
            drop = float(np.mean([row["dropout"] for row in last]))
            accuracy = float(np.mean([row["test_accuracy"] for row in last]))
        rows.append({"task": problem, "method": label, "weight decay": decay, "dropout": drop, "val loss": val,
                     "val ±95%": val_ci, "test loss": float(np.mean([row["test_loss"] for row in last])),
                     "test acc": accuracy, "train steps": int(last[0]["step"]), "val steps": int(last[0]["tune_step"]),
                     "passes": float(np.mean([row.get("passes", row["step"]) for row in last])), "runs": len(runs)})
    if ridge is not None:
        w = ridge_best_response(*ridge.data.train, ridge.optimum)
        rows.append({"task": "ridge", "method": "exact optimum", "weight decay": math.exp(ridge.optimum),
                     "dropout": math.nan, "val loss": float(squared_loss(w, ridge.data.val)), "val ±95%": 0.0,
                     "test loss": float(squared_loss(w, ridge.data.test)), "test acc": math.nan,
                     "train steps": 0, "val steps": 0, "passes": 0.0, "runs": 0})
    return pd.DataFrame(rows)


def is_fixed(label: str) -> bool:
    """Whether a summary row or history label is one of the grid's fixed settings."""
    return label.startswith("wd=")


def fixed_rows(result: StudyResult) -> pd.DataFrame:
    """The summary rows of the grid's fixed settings on the MLP."""
    table = result.summary
    return table[(table["task"] == "mnist-mlp") & table["method"].map(is_fixed)]


def best_fixed(result: StudyResult) -> pd.Series:
    """The grid setting with the lowest mean final validation loss."""
    table = fixed_rows(result)
    return table.loc[table["val loss"].idxmin()]


def per_seed(result: StudyResult) -> pd.DataFrame:
    """Per seed: the final validation loss of STN, of its replayed schedule, and of that seed's
    best fixed setting, and which setting that was."""
    rows = []
    for seed in sorted({h.seed for h in result.histories if h.problem == "mnist-mlp"}):
        runs = [h for h in result.histories if h.problem == "mnist-mlp" and h.seed == seed]
        stn_runs = [h for h in runs if h.method == "stn"]
        replays = [h for h in runs if h.method == "replay"]
        fixed = [h for h in runs if h.method == "fixed"]
        if not stn_runs or not fixed:
            continue
        best = min(fixed, key=lambda h: h.final_objective)
        rows.append({"seed": seed, "STN": stn_runs[0].final_objective,
                     "replayed": replays[0].final_objective if replays else math.nan,
                     "best fixed": best.final_objective, "best setting": best.label})
    return pd.DataFrame(rows, columns=["seed", "STN", "replayed", "best fixed", "best setting"])


# --- the claims ---------------------------------------------------------------------------------

LOCAL_TOLERANCE = 0.1  # "tracks": the fitted response within 10 % of w* over c +- sigma
OPTIMUM_TOLERANCE = 0.01  # "finds the optimum": exact validation loss within 1 % of its minimum
COMPARABLE = 0.05  # "comparable": mean final validation loss within 5 % of the best fixed setting's


def _fmt(value: float) -> str:
    from hpolab.tables import significant

    return f"{significant(float(value)):g}"


def _second_half(result) -> pd.DataFrame | None:
    ridge = getattr(result, "ridge", None)
    if ridge is None or "local_error" not in ridge.history.frame:
        return None
    frame = ridge.history.frame
    return frame.iloc[len(frame) // 2:]


def check_response_tracks(result) -> claims.Verdict:
    """Ridge: over the second half of the run, the median error of the fitted response around the
    current log lambda is within :data:`LOCAL_TOLERANCE` and below the constant response's."""
    late = _second_half(result)
    if late is None:
        return claims.untestable("needs the ridge run")
    fitted, constant = float(late["local_error"].median()), float(late["constant_error"].median())
    sigma = result.ridge.history.config["sigma"]
    return claims.verdict(fitted <= LOCAL_TOLERANCE and fitted < constant,
                          f"ridge, second half of the run, median relative error of the response over c +- {_fmt(sigma)}:"
                          f" fitted line {_fmt(fitted)}, constant w0 {_fmt(constant)}; W1 against dw*/dlog lambda "
                          f"{_fmt(late['jacobian_error'].median())} (tolerance {LOCAL_TOLERANCE:.0%})")


def check_finds_optimum(result) -> claims.Verdict:
    """Ridge: the exact validation loss at STN's final log lambda is within
    :data:`OPTIMUM_TOLERANCE` of its minimum."""
    ridge = getattr(result, "ridge", None)
    if ridge is None:
        return claims.untestable("needs the ridge run")
    frame = ridge.history.frame
    final = float(frame["log_lambda"].iloc[-1])
    reached, best = ridge_validation_curve(ridge.data, [final, ridge.optimum])
    start = float(frame["log_lambda"].iloc[0])
    return claims.verdict(reached <= (1 + OPTIMUM_TOLERANCE) * best,
                          f"ridge: log lambda {_fmt(start)} -> {_fmt(final)} (exact optimum {_fmt(ridge.optimum)}); "
                          f"exact validation loss there {_fmt(reached)} vs {_fmt(best)} at the optimum "
                          f"(tolerance {OPTIMUM_TOLERANCE:.0%})")


def _mlp(result) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series] | None:
    """(summary rows of the MLP, the grid's rows, STN's row) or None if a part is missing."""
    mlp = result.summary[result.summary["task"] == "mnist-mlp"]
    grid = mlp[mlp["method"].map(is_fixed)]
    if grid.empty or not (mlp["method"] == "STN").any():
        return None
    return mlp, grid, mlp[mlp["method"] == "STN"].iloc[0]


def check_comparable(result) -> claims.Verdict:
    """MLP: STN's mean final validation loss is at most (1 + :data:`COMPARABLE`) x the best
    fixed setting's."""
    parts = _mlp(result)
    if parts is None:
        return claims.untestable("needs STN and the fixed grid on the MLP")
    _, grid, stn = parts
    best = grid.loc[grid["val loss"].idxmin()]
    rank = int((grid["val loss"] < stn["val loss"]).sum()) + 1
    return claims.verdict(stn["val loss"] <= (1 + COMPARABLE) * best["val loss"],
                          f"MNIST MLP, final validation loss (mean over {int(stn['runs'])} seeds): STN "
                          f"{_fmt(stn['val loss'])} ± {_fmt(stn['val ±95%'])}, best of {len(grid)} fixed "
                          f"({best['method']}) {_fmt(best['val loss'])} ± {_fmt(best['val ±95%'])}; STN ranks {rank} "
                          f"of {len(grid) + 1} (comparable: within {COMPARABLE:.0%})")


def check_replay(result) -> claims.Verdict:
    """MLP: the plain network trained from scratch with STN's schedule ends with a lower mean
    validation loss than the best fixed setting."""
    parts = _mlp(result)
    mlp = result.summary[result.summary["task"] == "mnist-mlp"]
    if parts is None or not (mlp["method"] == REPLAY).any():
        return claims.untestable("needs STN's schedule replayed and the fixed grid on the MLP")
    _, grid, _ = parts
    replay = mlp[mlp["method"] == REPLAY].iloc[0]
    best = grid.loc[grid["val loss"].idxmin()]
    seeds = per_seed(result)
    wins = int((seeds["replayed"] < seeds["best fixed"]).sum())
    return claims.verdict(replay["val loss"] < best["val loss"],
                          f"MNIST MLP from scratch, final validation loss: STN's schedule {_fmt(replay['val loss'])} ± "
                          f"{_fmt(replay['val ±95%'])}, best fixed ({best['method']}) {_fmt(best['val loss'])} ± "
                          f"{_fmt(best['val ±95%'])}; lower than the seed's best fixed in {wins} of {len(seeds)} seeds")


def check_schedule_moves(result) -> claims.Verdict:
    """MLP: in every STN run some hyperparameter moved, in its unconstrained form, farther than
    the perturbation scale sigma from where it started (a schedule, not a constant)."""
    runs = [h for h in result.histories if h.problem == "mnist-mlp" and h.method == "stn"]
    if not runs or any(not len(getattr(h, "schedule", ())) for h in runs):
        return claims.untestable("needs STN runs on the MLP with their schedules")
    spans = []
    for h in runs:
        lam = np.column_stack([np.log(h.schedule["weight_decay"]),
                               np.log(h.schedule["dropout"] / (1 - h.schedule["dropout"]))])
        spans.append(np.abs(lam - lam[0]).max(axis=0))
    sigma = float(runs[0].config["sigma"])
    moved = [bool((span > sigma).any()) for span in spans]
    return claims.verdict(all(moved), "largest move from the start (log weight decay, logit dropout) per seed: "
                          + "; ".join(f"seed {h.seed}: ({_fmt(a)}, {_fmt(b)})" for h, (a, b) in zip(runs, spans))
                          + f" (sigma = {_fmt(sigma)})")


def check_cost(result) -> claims.Verdict:
    """MLP: one STN run costs fewer plain-network passes than the grid of fixed settings it is
    compared with (passes rather than seconds: the same on every machine)."""
    parts = _mlp(result)
    if parts is None:
        return claims.untestable("needs STN and the fixed grid on the MLP")
    _, grid, stn = parts
    grid_passes = float(grid["passes"].sum())
    return claims.verdict(stn["passes"] < grid_passes,
                          f"per seed, in passes of the plain network over a batch: STN {_fmt(stn['passes'])} "
                          f"({int(stn['train steps'])} training + {int(stn['val steps'])} tuning steps of the "
                          f"two-product response), the grid of {len(grid)} runs {_fmt(grid_passes)}: STN costs "
                          f"{_fmt(stn['passes'] / (grid_passes / len(grid)))} fixed runs")


NOTEBOOK = "12_stn_best_response"
SOURCE = "Self-Tuning Networks (MacKay et al., ICLR 2019), as summarized in the notes"
CLAIMS = [
    claims.Claim(
        "linear-response-tracks-ridge", NOTEBOOK,
        "The best response of a linear regression is a simple function of the weight decay; a function linear "
        "in the hyperparameter, fitted during training, approximates it near the current hyperparameter",
        SOURCE + "; PAPERS.md: show it where the best response is known (ridge regression)",
        check_response_tracks),
    claims.Claim(
        "hypergradient-through-response-finds-ridge-optimum", NOTEBOOK,
        "Gradient descent in hyperparameter space through the fitted best response finds a good hyperparameter "
        "(here the exact optimum of ridge's validation loss)",
        SOURCE, check_finds_optimum),
    claims.Claim(
        "stn-yields-a-schedule", NOTEBOOK,
        "Gradient descent in hyperparameter space through the fitted response gives a non-constant "
        "hyperparameter schedule",
        SOURCE, check_schedule_moves),
    claims.Claim(
        "stn-matches-best-fixed", NOTEBOOK,
        "STN's tuned weight decay and dropout reach a validation loss comparable to the best of a grid of fixed "
        "settings, in one training run",
        SOURCE + " (MNIST MLP stand-in)", check_comparable),
    claims.Claim(
        "stn-costs-less-than-the-grid", NOTEBOOK,
        "The best response is cheap: instead of running the optimization for each hyperparameter setting, one "
        "training run tunes them",
        SOURCE, check_cost),
    claims.Claim(
        "stn-schedule-beats-best-fixed-from-scratch", NOTEBOOK,
        "The schedules transferred between optimization tasks, outperforming manually tuned constant schedules "
        "(a network trained from scratch with STN's schedule beats the best fixed setting)",
        SOURCE + "; the authors' README: train from scratch following the STN schedule (Table 1)",
        check_replay),
]


# --- figures: the numbers first (tested), then the drawing ---------------------------------------


def ridge_response_curves(run: RidgeRun, span: float = 2.0, points: int = 41, coordinates: int = 3) -> pd.DataFrame:
    """For every snapshot: log lambda on [c - span, c + span], the exact and the fitted
    response's validation loss, and the first ``coordinates`` coordinates of w*(lambda) and of
    w0 + W1 (lambda - c). Columns: tune_step, center, log_lambda, kind ("exact" / "fitted"),
    val_loss, w0, w1, ..."""
    rows = []
    x, y = run.data.train
    for snap in run.snapshots:
        for h in np.linspace(snap["center"] - span, snap["center"] + span, points):
            exact = ridge_best_response(x, y, float(h))
            fitted = snap["w0"] + snap["w1"][:, 0] * (float(h) - snap["center"])
            for kind, w in (("exact", exact), ("fitted", fitted)):
                rows.append({"tune_step": snap["tune_step"], "center": snap["center"], "log_lambda": float(h),
                             "kind": kind, "val_loss": float(squared_loss(w, run.data.val)),
                             **{f"w{j}": float(w[j]) for j in range(min(coordinates, len(w)))}})
    return pd.DataFrame(rows)


def best_response_figure(run: RidgeRun, span: float = 2.0, coordinate: int = 0) -> go.Figure:
    """Left: the exact validation loss L_val(w*(lambda)) over log lambda and, at each snapshot of
    the run, the fitted response's L_val(w0 + W1 (lambda - c)) around its centre c. Right: one
    coordinate of w*(lambda) and of the fitted lines."""
    from plotly.subplots import make_subplots

    curves = ridge_response_curves(run, span, coordinates=coordinate + 1)
    low = min(run.history.frame["log_lambda"].min(), run.optimum) - span
    high = max(run.history.frame["log_lambda"].max(), run.optimum) + span
    grid = np.linspace(low, high, 121)
    exact_w = [float(ridge_best_response(*run.data.train, float(h))[coordinate]) for h in grid]
    figure = make_subplots(1, 2, subplot_titles=("validation loss", f"weight w[{coordinate}]"))
    figure.add_trace(go.Scatter(x=grid, y=ridge_validation_curve(run.data, grid), name="exact w*(lambda)",
                                line={"color": "black", "width": 3}, opacity=0.35, legendgroup="exact"), 1, 1)
    figure.add_trace(go.Scatter(x=grid, y=exact_w, name="exact", showlegend=False, line={"color": "black", "width": 3},
                                opacity=0.35, legendgroup="exact"), 1, 2)
    for i, (step, snap) in enumerate(curves[curves["kind"] == "fitted"].groupby("tune_step", sort=True)):
        color = PALETTE[i % len(PALETTE)]
        center = float(snap["center"].iloc[0])
        name = f"fitted at tuning step {step} (c = {center:.2f})"
        middle = snap.iloc[(snap["log_lambda"] - center).abs().argmin()]
        figure.add_trace(go.Scatter(x=snap["log_lambda"], y=snap["val_loss"], name=name, legendgroup=name,
                                    line={"color": color}), 1, 1)
        figure.add_trace(go.Scatter(x=[center], y=[middle["val_loss"]], mode="markers", marker={"color": color, "size": 9},
                                    showlegend=False, legendgroup=name), 1, 1)
        figure.add_trace(go.Scatter(x=snap["log_lambda"], y=snap[f"w{coordinate}"], showlegend=False, legendgroup=name,
                                    line={"color": color}), 1, 2)
    figure.add_vline(x=run.optimum, line_dash="dot", line_color="gray")
    figure.update_xaxes(title_text="log lambda")
    figure.update_layout(template="plotly_white", height=420, legend={"font": {"size": 11}},
                         title="Ridge: the fitted linear best response against the exact w*(lambda)")
    return figure


def ridge_trajectory_figure(run: RidgeRun) -> go.Figure:
    """Left: log lambda per tuning step with the exact optimum. Right: the hypergradient through
    the fitted response against the exact d L_val(w*(lambda)) / d log lambda."""
    from plotly.subplots import make_subplots

    frame = run.history.frame
    figure = make_subplots(1, 2, subplot_titles=("log lambda", "hypergradient"))
    figure.add_trace(go.Scatter(x=frame["tune_step"], y=frame["log_lambda"], name="STN", line={"color": PALETTE[0]}), 1, 1)
    figure.add_hline(y=run.optimum, line_dash="dot", line_color="gray", annotation_text="exact optimum", row=1, col=1)
    figure.add_trace(go.Scatter(x=frame["tune_step"], y=frame["hypergradient"], name="through the fitted response",
                                line={"color": PALETTE[1]}), 1, 2)
    figure.add_trace(go.Scatter(x=frame["tune_step"], y=frame["exact_hypergradient"], name="exact",
                                line={"color": "black", "dash": "dash"}), 1, 2)
    figure.update_xaxes(title_text="tuning step")
    figure.update_layout(template="plotly_white", height=380, title="Ridge: STN's hyperparameter and hypergradient")
    return figure


def sigma_figure(sweep: pd.DataFrame) -> go.Figure:
    """Relative error of the Jacobian (and of w0) of the exact minimizer of STN's objective, by sigma."""
    figure = go.Figure()
    for i, (h, part) in enumerate(sweep.groupby("log lambda", sort=False)):
        color = PALETTE[i % len(PALETTE)]
        figure.add_trace(go.Scatter(x=part["sigma"], y=part["Jacobian error"], mode="lines+markers",
                                    name=f"W1, log lambda = {h:.2f}", line={"color": color}))
        figure.add_trace(go.Scatter(x=part["sigma"], y=part["response error"], mode="lines+markers",
                                    name=f"w0, log lambda = {h:.2f}", line={"color": color, "dash": "dot"}))
    figure.update_layout(template="plotly_white", xaxis_type="log", yaxis_type="log", xaxis_title="sigma",
                         yaxis_title="relative error against the exact best response", height=380,
                         title="Ridge: what the perturbation scale costs the fitted response (closed form)")
    return figure


def validation_figure(result: StudyResult) -> go.Figure:
    """Validation loss per training step on the MNIST MLP: mean over seeds with its 95 % band,
    one line per setting, STN drawn thick (the first evaluation, at initialization, left out)."""
    from hpolab.plots import objective_figure

    runs = [History(h.frame.iloc[1:], h.method, h.label, h.problem, h.seed, h.config, h.hyperparameters, h.status,
                    h.message) for h in result.histories if h.problem == "mnist-mlp"]
    figure = objective_figure(runs, x="step", y="objective", band="ci95", x_title="training step",
                              title="validation loss, MNIST MLP (mean over seeds)")
    figure.update_traces(line={"width": 4, "color": "crimson"}, selector={"name": "STN"})
    figure.update_traces(fillcolor="crimson", selector={"legendgroup": "STN", "fill": "toself"})
    return figure.update_layout(yaxis_title="validation loss", height=460)


def grid_points(result: StudyResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the grid's mean final validation loss per (weight decay, dropout), STN's paths through
    that plane: one per seed, columns seed, step, weight_decay, dropout, objective)."""
    grid = fixed_rows(result)
    paths = [h.frame[["step", "weight_decay", "dropout", "objective"]].assign(seed=h.seed)
             for h in result.histories if h.problem == "mnist-mlp" and h.method == "stn"]
    path = pd.concat(paths, ignore_index=True)[["seed", "step", "weight_decay", "dropout", "objective"]] if paths \
        else pd.DataFrame(columns=["seed", "step", "weight_decay", "dropout", "objective"])
    return grid[["weight decay", "dropout", "val loss"]].reset_index(drop=True), path


def grid_figure(result: StudyResult) -> go.Figure:
    """The grid coloured by mean final validation loss, and STN's (weight decay, dropout) path per seed."""
    grid, paths = grid_points(result)
    low = min(grid["weight decay"].min(), paths["weight_decay"].min() if len(paths) else 1.0)
    high = max(grid["weight decay"].max(), paths["weight_decay"].max() if len(paths) else 1e-8)
    figure = go.Figure(go.Scatter(
        x=grid["weight decay"], y=grid["dropout"], mode="markers+text", name="fixed (final validation loss)",
        marker={"size": 22, "color": grid["val loss"], "colorscale": "Viridis_r", "showscale": True,
                "colorbar": {"title": "val loss"}},
        text=[f"{v:.3f}" for v in grid["val loss"]], textposition="top center"))
    for i, (seed, path) in enumerate(paths.groupby("seed")):
        color = PALETTE[(i + 3) % len(PALETTE)]
        figure.add_trace(go.Scatter(x=path["weight_decay"], y=path["dropout"], mode="lines+markers",
                                    name=f"STN seed {seed}", line={"color": color}, marker={"size": 4},
                                    legendgroup=str(seed),
                                    text=[f"step {s}, val {v:.3f}" for s, v in zip(path["step"], path["objective"])]))
        figure.add_trace(go.Scatter(x=path["weight_decay"].iloc[-1:], y=path["dropout"].iloc[-1:], mode="markers",
                                    name=f"end, val {path['objective'].iloc[-1]:.3f}", legendgroup=str(seed),
                                    marker={"color": color, "size": 14, "symbol": "star"}))
    figure.update_layout(template="plotly_white", xaxis_type="log", xaxis_title="weight decay", yaxis_title="dropout",
                         xaxis_range=[math.log10(max(low, 1e-9) / 3), math.log10(max(high, 1e-9) * 3)],
                         height=520, title="MNIST MLP: the fixed grid and STN's paths",
                         legend={"orientation": "h", "y": -0.2})
    return figure


def schedule_figure(result: StudyResult) -> go.Figure:
    """STN's weight decay and dropout per training step (the schedule it found, every tuning
    step), one line per seed; the replayed runs train with exactly these."""
    from plotly.subplots import make_subplots

    figure = make_subplots(1, 2, subplot_titles=("weight decay", "dropout"))
    runs = [h for h in result.histories if h.problem == "mnist-mlp" and h.method == "stn"]
    for i, h in enumerate(runs):
        color = PALETTE[(i + 3) % len(PALETTE)]
        path = h.schedule if len(getattr(h, "schedule", ())) else h.frame
        figure.add_trace(go.Scatter(x=path["step"], y=path["weight_decay"], name=f"seed {h.seed}", line_shape="hv",
                                    legendgroup=str(h.seed), line={"color": color}), 1, 1)
        figure.add_trace(go.Scatter(x=path["step"], y=path["dropout"], name=f"seed {h.seed}", showlegend=False,
                                    line_shape="hv", legendgroup=str(h.seed), line={"color": color}), 1, 2)
    figure.update_yaxes(type="log", row=1, col=1)
    figure.update_xaxes(title_text="training step")
    figure.update_layout(template="plotly_white", height=360, title="STN's hyperparameter schedule")
    return figure


# --- the widget panel ---------------------------------------------------------------------------


def run_one(method: str = "stn", scale: str = "cpu", weight_decay: float = 1e-4, dropout: float = 0.05,
            sigma: float = SIGMA, hyper_lr: float | None = None, steps: int = 1000, seed: int = 0, device: str = "cpu",
            callback=None, should_stop=None) -> History:
    """One MLP run at the scale's data size (what the panel's Run button calls), with the
    study's warm-up, T_train and validation batches; ``hyper_lr`` None: :func:`travel_lr`."""
    n_train, n_val, n_test, hidden, _, evaluations, _ = NETWORK_SIZES[check_scale(scale)]
    data = mnist_split(n_train, n_val, n_test, device=str(resolve_device(device)))
    setting = NetworkSetting(method, weight_decay, dropout, hidden=tuple(hidden), steps=steps, sigma=sigma,
                             hyper_lr=hyper_lr, evaluations=evaluations)
    return run_network(setting, data, seed=seed, callback=callback, should_stop=should_stop)


def default_hyper_lr(scale: str, steps: int) -> float:
    """:func:`travel_lr` of an STN run of ``steps`` steps at ``scale`` (the panel's start)."""
    n_train = NETWORK_SIZES[check_scale(scale)][0]
    setting = NetworkSetting("stn", 1e-4, 0.05, steps=steps)
    return travel_lr(network_limits(), setting.tuning_steps(n_train))


def panel(values: dict | None = None, **overrides):
    """Study 12's widget panel, from the notebook's parameters (``globals()``) and ``overrides``:
    STN or fixed hyperparameters, scale, seed, device, the starting (or fixed) weight decay and
    dropout, sigma, the hyper step size, steps; draws the validation loss."""
    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    scale = check_scale(values.get("scale") or "cpu")
    steps = values.get("steps") or NETWORK_SIZES[scale][4]
    extra = {
        "weight_decay": w.FloatLogSlider(value=values.get("weight_decay") or 1e-4, base=10, min=-7, max=-0.5,
                                         step=0.25, description="weight decay", readout_format=".1e"),
        "dropout": w.FloatSlider(value=values.get("dropout") or 0.05, min=0.01, max=0.9, step=0.01,
                                 description="dropout", continuous_update=False),
        "sigma": w.FloatLogSlider(value=values.get("sigma") or SIGMA, base=10, min=-2, max=0.5, step=0.1,
                                  description="sigma", readout_format=".2f"),
        "hyper_lr": w.FloatLogSlider(value=values.get("hyper_lr") or default_hyper_lr(scale, steps), base=10, min=-4, max=0, step=0.25,
                                     description="hyper lr", readout_format=".0e"),
        "steps": w.BoundedIntText(value=steps, min=10, max=1_000_000, description="steps"),
    }
    uses = {"stn": {"sigma", "hyper_lr"}, "fixed": set()}
    return panel_for(run_one, {"STN": "stn", "fixed": "fixed"}, uses, values, extra, x="step", y="objective",
                     total=lambda s: s["steps"])
