"""Study 12: Self-Tuning Networks' best-response approximation (MacKay et al., ICLR 2019).

Two settings (the method is :mod:`hpolab.methods.stn`):

* **Ridge regression**, where the best response is known: L_train(w, lambda) =
  (|X w - y|^2 + lambda |w|^2) / (2 n), so w*(lambda) = (X^T X + lambda I)^-1 X^T y and
  d w* / d log lambda = -lambda (X^T X + lambda I)^-1 w*. STN tunes h = log lambda with the
  plain linear response w0 + W1 (h - c); the study records, at every tuning step, the fitted
  response against the exact one (value and Jacobian), the hypergradient through the fitted
  response against the exact one, and snapshots of the response for the figures. The
  minimizer of STN's training objective E_delta L_train(w0 + W1 delta, h + delta) has a closed
  form here (:func:`ridge_stn_optimum`), which shows how sigma biases the fitted Jacobian.
* **An MLP on real MNIST** (a small training set, so regularization matters) with
  lambda = (log weight decay, logit dropout) and the paper's structured response in every
  layer, against a grid of fixed (weight decay, dropout) trained for the same number of steps
  with the same initialization, best by validation loss.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from torch.nn import functional as F

from hpolab.devices import resolve_device
from hpolab.history import COLUMNS, History
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


def run_ridge(data: Regression, log_lambda0: float = -4.0, sigma: float = 0.3, lr: float = 0.01,
              hyper_lr: float = 0.05, cycles: int = 400, train_steps: int = 10, tune_steps: int = 1,
              warmup: int = 1000, snapshots: int = 4, seed: int = 0, limits=(-12.0, 12.0),
              callback: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None) -> RidgeRun:
    """STN on ridge regression, tuning log lambda from ``log_lambda0`` (full-batch training and
    validation losses). One history row per tuning step (row 0: after the warm-up)."""
    check_count("cycles", cycles, minimum=1)
    check_count("warmup", warmup)
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
                     "response_error": relative_error(w0, exact_w), "jacobian_error": relative_error(w1, exact_j)})
        if state.tune_steps in snap_at:
            kept.append({"tune_step": state.tune_steps, "center": h, "w0": w0.clone(), "w1": w1.clone()})
        if callback is not None:
            callback(rows[-1])

    record(state, "warm-up")
    for cycle in range(cycles):
        state = method.update(state, lambda: data.train, lambda: data.val, generator)
        record(state, "cycle")
        if not math.isfinite(rows[-1]["objective"]):
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


@dataclass(frozen=True)
class Split:
    """Flattened, standardized MNIST: train, validation (both from MNIST's training set,
    disjoint) and test (MNIST's test set)."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


@functools.lru_cache(maxsize=4)
def mnist_split(n_train: int, n_val: int, n_test: int | None, seed: int = 0, device: str = "cpu") -> Split:
    """``n_train`` + ``n_val`` images drawn without overlap from MNIST's training set by a seeded
    permutation, the first ``n_test`` test images; pixels standardized by the training mean and
    standard deviation."""
    from hpolab.data import as_tensors, load_mnist

    x, y = as_tensors(load_mnist(train=True))
    x_test, y_test = as_tensors(load_mnist(train=False), limit=n_test)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    train_idx, val_idx = order[:n_train], order[n_train:n_train + n_val]
    x, x_test = x.reshape(len(x), -1), x_test.reshape(len(x_test), -1)
    mean, std = x[train_idx].mean(), x[train_idx].std()

    def part(images, labels):
        return ((images - mean) / std).to(device), labels.to(device)

    return Split(part(x[train_idx], y[train_idx]), part(x[val_idx], y[val_idx]), part(x_test, y_test))


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


@dataclass(frozen=True)
class NetworkSetting:
    """One network run: ``method`` "stn" tunes from (weight_decay, dropout); "fixed" keeps them."""

    method: str
    weight_decay: float
    dropout: float
    hidden: tuple[int, ...] = (400, 400)
    steps: int = 1000  # training steps (phi or weights); STN adds one tuning step per train_steps
    batch_size: int = 128
    val_batch_size: int = 512  # STN: validation examples per tuning step
    lr: float = 1e-3
    sigma: float = 0.5
    hyper_lr: float = 0.1
    train_steps: int = 5
    tune_steps: int = 1
    warmup: int = 200  # STN: training steps before the first tuning step
    decay_range: tuple[float, float] = DECAY_RANGE  # STN's box on the weight decay
    dropout_range: tuple[float, float] = DROPOUT_RANGE  # and on the dropout rate
    evaluations: int = 20

    @property
    def label(self) -> str:
        if self.method == "stn":
            return "STN"
        return f"wd={self.weight_decay:g}, p={self.dropout:g}"


def run_network(setting: NetworkSetting, data: Split, seed: int = 0, callback: Callable[[dict], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> History:
    """Train the MLP with fixed hyperparameters or tune them with STN; one history row per
    evaluation (validation loss as the objective, test loss and accuracy, the hyperparameters).

    Both start from the same elementary weights for a seed and see the same training batches.
    STN's validation loss, test loss and accuracy are those of the response at the current
    lambda (no perturbation, no dropout).
    """
    check_choice("method", setting.method, ("stn", "fixed"))
    check_count("steps", setting.steps, minimum=1)
    x_train, y_train = data.train
    sizes = (x_train.shape[1], *setting.hidden, 10)
    device = x_train.device
    init_generator, generator = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    train_batches = minibatches(data.train, setting.batch_size, generator)
    every = max(1, setting.steps // setting.evaluations)
    rows, running, count, status, message = [], 0.0, 0, "finished", ""
    start = time.perf_counter()
    if setting.method == "stn":
        stn = self_tuning(mlp_response(), setting.sigma, lr=setting.lr, hyper_lr=setting.hyper_lr,
                          train_steps=setting.train_steps, tune_steps=setting.tune_steps,
                          limits=network_limits(setting.decay_range, setting.dropout_range))
        state = stn.init(structured_init(sizes, len(NAMES), init_generator, device=device),
                         to_lambda(setting.weight_decay, setting.dropout))
        val_batches = minibatches(data.val, setting.val_batch_size, generator)
    else:
        params = tuple(p.requires_grad_() for p in mlp_init(sizes, init_generator, device=device))
        optimizer = adam(setting.lr)
        opt_state = optimizer.init(params)
        keep = torch.tensor(1 - setting.dropout, device=device) if setting.dropout > 0 else None

    def current():
        if setting.method == "stn":
            weights = structured_weights(state.phi, torch.zeros(len(NAMES), dtype=state.phi[0].dtype, device=device))
            h = state.hyper.double().cpu()
            return weights, float(h[0].exp()), float(torch.sigmoid(h[1])), state.tune_steps
        return params, setting.weight_decay, setting.dropout, 0

    def record(step):
        weights, decay, dropout, tuned = current()
        val_loss, val_acc = evaluate(lambda x: mlp_logits(weights, x), *data.val)
        test_loss, test_acc = evaluate(lambda x: mlp_logits(weights, x), *data.test)
        rows.append({"step": step, "iteration": step + tuned, "gradient_evaluations": step + tuned,
                     "function_evaluations": 0, "hvp_evaluations": 0, "wall_time": time.perf_counter() - start,
                     "objective": val_loss, "kind": "evaluation", "train_loss": running / count if count else math.nan,
                     "val_accuracy": val_acc, "test_loss": test_loss, "test_accuracy": test_acc, "tune_step": tuned,
                     "weight_decay": decay, "dropout": dropout, "log_weight_decay": math.log(decay),
                     "logit_dropout": math.log(dropout / (1 - dropout)) if 0 < dropout < 1 else math.nan})
        if callback is not None:
            callback(rows[-1])

    record(0)
    for step in range(1, setting.steps + 1):
        if setting.method == "stn":
            state = stn.train(state, next(train_batches), generator)
            loss = state.train_loss
            if step >= setting.warmup and (step - setting.warmup) % setting.train_steps == 0:
                for _ in range(setting.tune_steps):
                    state = stn.tune(state, next(val_batches))
        else:
            x, y = next(train_batches)
            objective = F.cross_entropy(mlp_logits(params, x, keep=keep, generator=generator), y)
            if setting.weight_decay > 0:
                objective = objective + 0.5 * setting.weight_decay * sum((w * w).sum() for w in params[::2])
            grads = torch.autograd.grad(objective, params)
            params, opt_state = optimizer.update(grads, opt_state, tuple(p.detach() for p in params))
            params = tuple(p.requires_grad_() for p in params)
            loss = float(objective.detach())
        running, count = running + loss, count + 1
        if not math.isfinite(loss):
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
        config.update(sigma=setting.sigma, hyper_lr=setting.hyper_lr, val_batch_size=setting.val_batch_size,
                      train_steps=setting.train_steps,
                      tune_steps=setting.tune_steps, warmup=setting.warmup, decay_range=list(setting.decay_range),
                      dropout_range=list(setting.dropout_range))
    return History(_frame(rows), setting.method, setting.label, "mnist-mlp", seed, config,
                   ["weight_decay", "dropout"], status, message)


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


def run_study(scale: str = "cpu", sigma: float = 0.5, hyper_lr: float = 0.1, weight_decay: float = 1e-4,
              dropout: float = 0.1, weight_decays: Sequence[float] | None = None,
              dropouts: Sequence[float] | None = None, steps: int | None = None, train_steps: int = 5,
              val_batch_size: int = 512, warmup: float = 0.2, seeds: int | None = None, ridge_sigma: float = 0.3,
              ridge_log_lambda0: float = -4.0, device: str = "cpu", progress: bool = True) -> STNResult:
    """Study 12: STN on ridge regression, then on the MNIST MLP against the fixed grid.

    Args:
      sigma, hyper_lr, train_steps, val_batch_size: STN's perturbation scale, step size on
        lambda, T_train and validation examples per tuning step on the MLP.
      warmup: the fraction of the steps STN trains phi before its first tuning step, in [0, 1).
      weight_decay, dropout: where STN starts on the MLP.
      weight_decays, dropouts: the grid (default: the scale's); every pair is one run per seed.
      steps: training steps of every MLP run (default: the scale's).
      seeds: MLP runs per setting, seeds 0, 1, ... (initialization, batches, dropout and
        perturbations; the data split is the same); default: the scale's.
      ridge_sigma, ridge_log_lambda0: STN's sigma and starting log lambda on ridge regression.
    """
    check_scale(scale)
    torch_device = resolve_device(device)
    if not 0 <= warmup < 1:
        raise ValueError(f"warmup must lie in [0, 1) (a fraction of the steps), got {warmup!r}")
    n_train, n_val, n_test, features, ridge_warmup, cycles = RIDGE_SIZES[scale]
    ridge = run_ridge(ridge_data(n_train, n_val, n_test, features), log_lambda0=ridge_log_lambda0,
                      sigma=ridge_sigma, cycles=cycles, warmup=ridge_warmup)
    sweep = ridge_sigma_sweep(ridge.data, [ridge_log_lambda0, ridge.optimum], SIGMA_SWEEP)
    n_train, n_val, n_test, hidden, default_steps, evaluations, default_seeds = NETWORK_SIZES[scale]
    steps = check_count("steps", steps if steps is not None else default_steps, minimum=1)
    seeds = check_count("seeds", seeds if seeds is not None else default_seeds, minimum=1)
    grid_decays, grid_dropouts = GRIDS[scale]
    grid = [(wd, p) for wd in (weight_decays or grid_decays) for p in (dropouts or grid_dropouts)]
    common = {"hidden": tuple(hidden), "steps": steps, "evaluations": evaluations}
    plan = [NetworkSetting("stn", weight_decay, dropout, sigma=sigma, hyper_lr=hyper_lr, train_steps=train_steps,
                           val_batch_size=val_batch_size, warmup=max(1, round(warmup * steps)), **common)]
    plan += [NetworkSetting("fixed", wd, p, **common) for wd, p in grid]
    data = mnist_split(n_train, n_val, n_test, device=str(torch_device))
    histories = []
    with progress_bar(total=len(plan) * seeds, desc="runs", disable=not progress) as bar:
        for seed in range(seeds):
            for setting in plan:
                bar.set_postfix_str(f"{setting.label}, seed {seed}", refresh=False)
                histories.append(run_network(setting, data, seed=seed))
                bar.update()
    histories.append(ridge.history)
    parameters = {"scale": scale, "sigma": sigma, "hyper_lr": hyper_lr, "weight_decay": weight_decay,
                  "dropout": dropout, "grid": grid, "steps": steps, "train_steps": train_steps,
                  "val_batch_size": val_batch_size, "warmup": warmup, "seeds": seeds, "ridge_sigma": ridge_sigma,
                  "ridge_log_lambda0": ridge_log_lambda0, "device": str(torch_device)}
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
    loss and accuracy, the cost per run in training and validation minibatch steps, and the
    number of runs. Ridge: STN's run and the exact optimum."""
    rows, groups = [], {}
    for h in histories:
        groups.setdefault((h.problem, h.label), []).append(h)
    for (problem, label), runs in groups.items():
        last = [h.frame.iloc[-1] for h in runs]
        val, val_ci = mean_interval([row["objective"] for row in last])
        if problem == "ridge":
            decay, drop, accuracy = math.exp(float(np.mean([row["log_lambda"] for row in last]))), math.nan, math.nan
        else:
            decay = math.exp(float(np.mean([math.log(row["weight_decay"]) for row in last])))
            drop = float(np.mean([row["dropout"] for row in last]))
            accuracy = float(np.mean([row["test_accuracy"] for row in last]))
        rows.append({"task": problem, "method": label, "weight decay": decay, "dropout": drop, "val loss": val,
                     "val ±95%": val_ci, "test loss": float(np.mean([row["test_loss"] for row in last])),
                     "test acc": accuracy, "train steps": int(last[0]["step"]), "val steps": int(last[0]["tune_step"]),
                     "runs": len(runs)})
    if ridge is not None:
        w = ridge_best_response(*ridge.data.train, ridge.optimum)
        rows.append({"task": "ridge", "method": "exact optimum", "weight decay": math.exp(ridge.optimum),
                     "dropout": math.nan, "val loss": float(squared_loss(w, ridge.data.val)), "val ±95%": 0.0,
                     "test loss": float(squared_loss(w, ridge.data.test)), "test acc": math.nan,
                     "train steps": 0, "val steps": 0, "runs": 0})
    return pd.DataFrame(rows)


def best_fixed(result: StudyResult) -> pd.Series:
    """The grid setting with the lowest mean final validation loss."""
    table = result.summary[(result.summary["task"] == "mnist-mlp") & (result.summary["method"] != "STN")]
    return table.loc[table["val loss"].idxmin()]


def per_seed(result: StudyResult) -> pd.DataFrame:
    """Per seed: STN's final validation loss and the best fixed setting's of that seed."""
    rows = []
    for seed in sorted({h.seed for h in result.histories if h.problem == "mnist-mlp"}):
        runs = [h for h in result.histories if h.problem == "mnist-mlp" and h.seed == seed]
        stn_runs = [h for h in runs if h.method == "stn"]
        fixed = [h for h in runs if h.method == "fixed"]
        if not stn_runs or not fixed:
            continue
        best = min(fixed, key=lambda h: h.final_objective)
        rows.append({"seed": seed, "STN": stn_runs[0].final_objective, "best fixed": best.final_objective,
                     "best setting": best.label})
    return pd.DataFrame(rows)


def _fmt(value: float) -> str:
    from hpolab.tables import significant

    return f"{significant(float(value)):g}"


def findings(result: STNResult) -> list[str]:
    """STN's claims checked on this run: (1) the linear best response is accurate locally
    (ridge: fitted against exact response, Jacobian and hypergradient; sigma's bias); (2) the
    schedule STN finds reaches a validation loss comparable to or better than the best fixed
    hyperparameters of the grid, at about the cost of one training run."""
    lines = []
    ridge = result.ridge
    if ridge is not None:
        frame = ridge.history.frame
        late = frame.iloc[len(frame) // 2:]
        near = frame.index[(frame["log_lambda"] - ridge.optimum).abs() < 0.1]
        reached = (f"within 0.1 after {int(frame.loc[near[0], 'tune_step'])} tuning steps" if len(near)
                   else "never within 0.1")
        lines.append(f"ridge: STN moved log lambda from {_fmt(frame['log_lambda'].iloc[0])} to "
                     f"{_fmt(frame['log_lambda'].iloc[-1])} (exact optimum {_fmt(ridge.optimum)}; {reached}); "
                     f"validation loss {_fmt(frame['objective'].iloc[-1])} vs "
                     f"{_fmt(ridge_validation_curve(ridge.data, [ridge.optimum])[0])} at the optimum")
        agree = float((np.sign(frame["hypergradient"]) == np.sign(frame["exact_hypergradient"])).mean())
        lines.append(f"ridge: fitted response vs exact over the second half of the run: median relative error "
                     f"{_fmt(late['response_error'].median())} (w0 vs w*), {_fmt(late['jacobian_error'].median())} "
                     f"(W1 vs dw*/dlog lambda); hypergradient sign agrees with the exact one at "
                     f"{100 * agree:.0f}% of the tuning steps")
        sweep = result.sweep
        if len(sweep):
            at = sweep[sweep["log lambda"] == sweep["log lambda"].iloc[-1]]
            lines.append("ridge: Jacobian error of the exact minimizer of STN's objective at the optimum, by sigma: "
                         + ", ".join(f"{_fmt(s)}: {_fmt(e)}" for s, e in zip(at["sigma"], at["Jacobian error"])))
    mlp = result.summary[result.summary["task"] == "mnist-mlp"]
    if len(mlp) and (mlp["method"] == "STN").any() and (mlp["method"] != "STN").any():
        stn_row = mlp[mlp["method"] == "STN"].iloc[0]
        best = best_fixed(result)
        grid_rows = mlp[mlp["method"] != "STN"]
        verdict = "better than" if stn_row["val loss"] < best["val loss"] else (
            "comparable to (within 5 % of)" if stn_row["val loss"] <= 1.05 * best["val loss"] else "worse than")
        rank = int((grid_rows["val loss"] < stn_row["val loss"]).sum()) + 1
        lines.append(f"mnist-mlp: STN's final validation loss {_fmt(stn_row['val loss'])} ± {_fmt(stn_row['val ±95%'])} "
                     f"(mean over {int(stn_row['runs'])} seed{'s' if stn_row['runs'] > 1 else ''}) is {verdict} "
                     f"the best of {len(grid_rows)} fixed "
                     f"settings ({best['method']}: {_fmt(best['val loss'])} ± {_fmt(best['val ±95%'])}; STN ranks "
                     f"{rank} of {len(grid_rows) + 1}); test loss {_fmt(stn_row['test loss'])} vs "
                     f"{_fmt(best['test loss'])}, test accuracy {_fmt(stn_row['test acc'])} vs {_fmt(best['test acc'])}")
        seeds = per_seed(result)
        wins = int((seeds["STN"] < seeds["best fixed"]).sum())
        lines.append("mnist-mlp: per seed, STN's validation loss against that seed's best fixed setting: " + "; ".join(
            f"seed {r['seed']}: {_fmt(r['STN'])} vs {_fmt(r['best fixed'])} ({r['best setting']})"
            for r in seeds.to_dict("records"))
            + f" (STN lower in {wins} of {len(seeds)})")
        stn_runs = [h for h in result.histories if h.problem == "mnist-mlp" and h.method == "stn"]
        grid_runs = [h for h in result.histories if h.problem == "mnist-mlp" and h.method == "fixed"]
        stn_time = float(np.mean([h.frame["wall_time"].iloc[-1] for h in stn_runs]))
        fixed_time = float(np.mean([h.frame["wall_time"].iloc[-1] for h in grid_runs]))
        lines.append(f"mnist-mlp: cost per seed: STN {int(stn_row['train steps'])} training + "
                     f"{int(stn_row['val steps'])} validation steps, {_fmt(stn_time)} s ({_fmt(stn_time / fixed_time)} "
                     f"fixed runs); the grid {len(grid_rows)} x {int(best['train steps'])} training steps, "
                     f"{_fmt(fixed_time * len(grid_rows))} s")
        lines.append("mnist-mlp: STN's schedules (weight decay, dropout) start -> end: " + "; ".join(
            f"seed {h.seed}: ({_fmt(h.frame['weight_decay'].iloc[0])}, {_fmt(h.frame['dropout'].iloc[0])}) -> "
            f"({_fmt(h.frame['weight_decay'].iloc[-1])}, {_fmt(h.frame['dropout'].iloc[-1])})" for h in stn_runs))
    return lines


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
    grid = result.summary[(result.summary["task"] == "mnist-mlp") & (result.summary["method"] != "STN")]
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
    """STN's weight decay and dropout per training step (the schedule it found), one line per seed."""
    from plotly.subplots import make_subplots

    figure = make_subplots(1, 2, subplot_titles=("weight decay", "dropout"))
    runs = [h for h in result.histories if h.problem == "mnist-mlp" and h.method == "stn"]
    for i, h in enumerate(runs):
        color = PALETTE[(i + 3) % len(PALETTE)]
        figure.add_trace(go.Scatter(x=h.frame["step"], y=h.frame["weight_decay"], name=f"seed {h.seed}",
                                    legendgroup=str(h.seed), line={"color": color}), 1, 1)
        figure.add_trace(go.Scatter(x=h.frame["step"], y=h.frame["dropout"], name=f"seed {h.seed}", showlegend=False,
                                    legendgroup=str(h.seed), line={"color": color}), 1, 2)
    figure.update_yaxes(type="log", row=1, col=1)
    figure.update_xaxes(title_text="training step")
    figure.update_layout(template="plotly_white", height=360, title="STN's hyperparameter schedule")
    return figure


# --- the widget panel ---------------------------------------------------------------------------


def run_one(method: str = "stn", scale: str = "cpu", weight_decay: float = 1e-4, dropout: float = 0.1,
            sigma: float = 0.5, hyper_lr: float = 0.1, steps: int = 1000, seed: int = 0, device: str = "cpu",
            callback=None, should_stop=None) -> History:
    """One MLP run at the scale's data size (what the panel's Run button calls)."""
    n_train, n_val, n_test, hidden, _, evaluations, _ = NETWORK_SIZES[check_scale(scale)]
    data = mnist_split(n_train, n_val, n_test, device=str(resolve_device(device)))
    setting = NetworkSetting(method, weight_decay, dropout, hidden=tuple(hidden), steps=steps, sigma=sigma,
                             hyper_lr=hyper_lr, val_batch_size=512, warmup=max(1, steps // 5),
                             evaluations=evaluations)
    return run_network(setting, data, seed=seed, callback=callback, should_stop=should_stop)


def panel(values: dict | None = None, **overrides):
    """Study 12's widget panel, from the notebook's parameters (``globals()``) and ``overrides``:
    STN or fixed hyperparameters, scale, seed, device, the starting (or fixed) weight decay and
    dropout, sigma, the hyper step size, steps; draws the validation loss."""
    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    steps = values.get("steps") or NETWORK_SIZES[check_scale(values.get("scale") or "cpu")][4]
    extra = {
        "weight_decay": w.FloatLogSlider(value=values.get("weight_decay") or 1e-4, base=10, min=-7, max=-0.5,
                                         step=0.25, description="weight decay", readout_format=".1e"),
        "dropout": w.FloatSlider(value=values.get("dropout") or 0.1, min=0.01, max=0.9, step=0.01,
                                 description="dropout", continuous_update=False),
        "sigma": w.FloatLogSlider(value=values.get("sigma") or 0.5, base=10, min=-2, max=0.5, step=0.1,
                                  description="sigma", readout_format=".2f"),
        "hyper_lr": w.FloatLogSlider(value=values.get("hyper_lr") or 0.1, base=10, min=-4, max=0, step=0.25,
                                     description="hyper lr", readout_format=".0e"),
        "steps": w.BoundedIntText(value=steps, min=10, max=1_000_000, description="steps"),
    }
    uses = {"stn": {"sigma", "hyper_lr"}, "fixed": set()}
    return panel_for(run_one, {"STN": "stn", "fixed": "fixed"}, uses, values, extra, x="step", y="objective",
                     total=lambda s: s["steps"])
