"""Study 12, part 1: STN on ridge regression, where the best response and its Jacobian are
known in closed form (the study: :mod:`hpolab.studies.stn`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from hpolab.history import History
from hpolab.recorder import Recorder
from hpolab.methods.stn import ResponseModel, hypergradient, linear_init, linear_response, self_tuning
from hpolab.validation import check_count, check_positive




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
    recorder = Recorder(callback=callback, should_stop=should_stop)  # its clock counts the warm-up
    for _ in range(warmup):
        state = method.train(state, data.train, generator)
    optimum = ridge_optimum(data)
    snap_at = set(np.unique(np.linspace(0, cycles, snapshots).round().astype(int)).tolist()) if snapshots else set()
    kept = []
    model = ridge_model(len(y))

    def record(state, kind):
        h = float(state.hyper[0])
        w0, w1 = state.phi
        exact_w, exact_j = ridge_best_response(x, y, h), ridge_jacobian(x, y, h)
        _, grad = hypergradient(model, state.phi, data.val, 1)
        if state.tune_steps in snap_at:
            kept.append({"tune_step": state.tune_steps, "center": h, "w0": w0.clone(), "w1": w1.clone()})
        return recorder.record(
            state.train_steps, objective=float(squared_loss(w0, data.val)), kind=kind,
            gradient_evaluations=state.train_steps + state.tune_steps, tune_step=state.tune_steps,
            log_lambda=h, **{"lambda": math.exp(h)},
            exact_val_loss=float(squared_loss(exact_w, data.val)), test_loss=float(squared_loss(w0, data.test)),
            train_loss=float(squared_loss(w0, data.train) + 0.5 * math.exp(h) * (w0 @ w0) / len(y)),
            hypergradient=float(grad[0]), exact_hypergradient=ridge_exact_hypergradient(data, h),
            response_error=relative_error(w0, exact_w), jacobian_error=relative_error(w1, exact_j),
            **local_errors(x, y, w0, w1[:, 0], h, sigma))

    recorder.diverged(record(state, "warm-up")["objective"], "after the warm-up", "the validation loss")
    for cycle in range(cycles):
        if recorder.ended:
            break
        state = method.update(state, lambda: data.train, lambda: data.val, generator)
        at = f"at cycle {cycle + 1}"
        if recorder.diverged(record(state, "cycle")["objective"], at, "the validation loss") or recorder.stop_requested(at):
            break
    config = {"task": "ridge", "sigma": sigma, "lr": lr, "hyper_lr": hyper_lr, "train_steps": train_steps,
              "tune_steps": tune_steps, "warmup": warmup, "log_lambda0": log_lambda0}
    history = recorder.history("stn", "STN", "ridge", seed, config, ["log_lambda"])
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
