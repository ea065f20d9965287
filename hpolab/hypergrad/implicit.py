"""Implicit-differentiation hypergradients (HOAG, Pedregosa 2016) for training-loss hyperparameters.

At a minimizer theta*(h) of the full-batch training loss, grad_theta L_train(theta*, h) = 0;
differentiating that identity gives

    dL_val/dh = - (d^2 L_train / dh dtheta) q,   where  H q = grad L_val(theta*),  H = d^2 L_train / dtheta^2.

theta* comes from L-BFGS to a gradient-norm tolerance, q from conjugate gradient on
Hessian-vector products (forward-over-reverse ``jvp``), and the mixed term from one
gradient of ``<grad_theta L_train(theta*, h), q>`` with respect to h. It applies only to
hyperparameters of the training loss: an optimizer's learning rate or momentum does not
move the minimizer.

HOAG proper (Pedregosa 2016, Algorithm 1) solves both problems only up to a tolerance
epsilon_k that decreases over its outer iterations, each warm started from the previous
solution: :func:`inexact_hypergradient` is one such iteration (the method is
:func:`hpolab.methods.hoag.hoag`). The ``implicit`` estimator solves to a fixed tight tolerance.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.func import grad, jvp

from hpolab.hypergrad.cost import Meter
from hpolab.hypergrad.hyperparameters import SCHEDULES
from hpolab.hypergrad.result import Estimator, Hypergradient, diverged_result, validation_gradient
from hpolab.validation import check_count, check_positive


def conjugate_gradient(hvp, b: torch.Tensor, tolerance: float, max_iterations: int,
                       start: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """Solve H x = b for symmetric positive definite H given as ``hvp(v) = H v``, until the
    residual is at most ``tolerance * |b|``; from ``start`` (a warm start) if given, else 0.
    Returns the solution and the iterations taken (0 when ``start`` already meets the tolerance)."""
    if start is None:
        x = torch.zeros_like(b)
        r = b.clone()
    else:
        x = start.clone()
        r = b - hvp(x)
        if r.norm() <= tolerance * b.norm():
            return x, 0
    p = r.clone()
    rr = r @ r
    for iteration in range(1, max_iterations + 1):
        Hp = hvp(p)
        step = rr / (p @ Hp)
        x = x + step * p
        r = r - step * Hp
        rr_next = r @ r
        if rr_next.sqrt() <= tolerance * b.norm():
            return x, iteration
        p = r + (rr_next / rr) * p
        rr = rr_next
    return x, max_iterations


def minimize_training_loss(loss, theta0: torch.Tensor, tolerance: float, max_iterations: int, meter,
                           restarts: int = 10) -> torch.Tensor:
    """Full-batch L-BFGS (strong Wolfe line search) until max |grad| <= tolerance.

    torch's L-BFGS also stops when rounding makes its direction stop descending; it is
    restarted (fresh curvature memory) up to ``restarts`` times while the tolerance is unmet.
    """
    theta = theta0.detach().clone().requires_grad_()
    for _ in range(restarts + 1):
        optimizer = torch.optim.LBFGS([theta], lr=1, max_iter=max_iterations, tolerance_grad=tolerance,
                                      tolerance_change=0.0, history_size=20, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            value = loss(theta)
            value.backward()
            meter.gradient_evaluations += 1
            return value

        optimizer.step(closure)
        if theta.grad is None or not theta.grad.abs().max() > tolerance:
            break
    return theta.detach()


class _Reached(Exception):
    """Raised from the L-BFGS closure at the first point whose gradient meets the tolerance."""


def minimize_to_tolerance(loss, theta0: torch.Tensor, tolerance: float, max_iterations: int, meter,
                          restarts: int = 10, history_size: int = 10) -> tuple[torch.Tensor, float]:
    """L-BFGS (strong Wolfe line search) from ``theta0`` until |grad|_2 <= ``tolerance``.

    As in HOAG's code, training stops at the first point L-BFGS evaluates whose gradient norm
    meets the tolerance (the closure raises there; torch leaves the weights at that point).
    When rounding stops L-BFGS first, it is restarted (fresh memory) up to ``restarts`` times.
    Returns the weights and their gradient norm.
    """
    theta = theta0.detach().clone().requires_grad_()
    norm = float("inf")
    optimizer = torch.optim.LBFGS([theta], lr=1, max_iter=max_iterations, max_eval=2 * max_iterations,
                                  tolerance_grad=0.0, tolerance_change=0.0, history_size=history_size,
                                  line_search_fn="strong_wolfe")

    def closure():
        nonlocal norm
        optimizer.zero_grad()
        value = loss(theta)
        value.backward()
        meter.gradient_evaluations += 1
        norm = float(theta.grad.norm())
        if not norm > tolerance:  # also stops on NaN
            raise _Reached
        return value

    try:
        for _ in range(restarts + 1):
            optimizer.step(closure)
            optimizer.state.clear()
    except _Reached:
        pass
    return theta.detach(), norm


class InexactSolution(NamedTuple):
    """One HOAG iteration: the hypergradient and what the next iteration warm starts from."""

    hypergradient: Hypergradient
    cg_solution: torch.Tensor | None  # q_k, the next CG's start
    train_gradient_norm: float  # |grad_theta L_train| at the returned weights
    val_gradient_norm: float  # |grad_theta L_val| there (HOAG scales the CG tolerance by its first value)


def inexact_hypergradient(task, hyper, theta0: torch.Tensor, tolerance: float, cg_tolerance: float,
                          cg_scale: float | None = None, cg_start: torch.Tensor | None = None,
                          max_iterations: int = 10_000, cg_iterations: int = 10_000) -> InexactSolution:
    """HOAG's steps (i)-(iii) at ``hyper``: L-BFGS from ``theta0`` until |grad L_train| <=
    ``tolerance``, conjugate gradient from ``cg_start`` until |H q - grad L_val| <=
    ``cg_tolerance * cg_scale`` (``cg_scale`` None: |grad L_val| at the solution), then the
    approximate hypergradient ``-(d^2 L_train / dh dtheta) q``."""
    check_loss_terms(hyper)
    with Meter(theta0.device) as meter:
        h = hyper.pack().to(theta0)
        train_loss = full_batch_loss(task, hyper, theta0)
        theta, train_norm = minimize_to_tolerance(lambda t: train_loss(t, h), theta0, tolerance, max_iterations,
                                                  meter)
        if not torch.isfinite(theta).all():
            return InexactSolution(diverged_result("L-BFGS produced non-finite weights", meter, theta), None,
                                   train_norm, float("nan"))
        grad_val, val_loss = validation_gradient(task, theta, meter)
        gradient_in_theta = grad(train_loss, argnums=0)

        hvp = _double_backward_hvp(lambda t: train_loss(t, h), theta, meter)
        b_norm = float(grad_val.norm())
        start = None if cg_start is None else cg_start.to(grad_val)
        relative = cg_tolerance if cg_scale is None else cg_tolerance * cg_scale / max(b_norm, 1e-300)
        q, _ = conjugate_gradient(hvp, grad_val, relative, cg_iterations, start)
        mixed = grad(lambda flat: gradient_in_theta(theta, flat) @ q)(h)
        meter.hvp_evaluations += 1
    hypergrad = -mixed
    if not torch.isfinite(hypergrad).all():
        return InexactSolution(diverged_result("the implicit hypergradient is not finite", meter, theta), None,
                               train_norm, b_norm)
    result = Hypergradient(val_loss, hypergrad.double().cpu(), meter.cost(), theta=theta)
    return InexactSolution(result, q.detach(), train_norm, b_norm)


def _double_backward_hvp(loss, theta: torch.Tensor, meter):
    """``v -> H v`` at theta by reverse-over-reverse: one gradient graph, one backward per product
    (``jvp`` of the gradient, forward-over-reverse, measured 4x slower here)."""
    point = theta.detach().requires_grad_()
    with torch.enable_grad():
        (gradient,) = torch.autograd.grad(loss(point), point, create_graph=True)

    def hvp(v):
        meter.hvp_evaluations += 1
        (product,) = torch.autograd.grad(gradient, point, grad_outputs=v, retain_graph=True)
        return product

    return hvp


def check_loss_terms(hyper) -> None:
    """Refuse an optimizer schedule among the learned hyperparameters: the implicit function
    theorem differentiates the training loss's minimizer, which the optimizer does not move."""
    schedules = [name for name in hyper.learn if name in SCHEDULES]
    if schedules:
        raise ValueError(
            f"implicit differentiation applies to hyperparameters of the training loss, not to the optimizer's "
            f"{schedules}: learn only loss terms (e.g. log_l2) or use the forward or reverse estimator")


def full_batch_loss(task, hyper, like: torch.Tensor):
    """``(theta, h) -> L_train`` over the whole training set, h the packed learned loss terms."""
    constants = {k: v.to(like) for k, v in hyper.values.items() if k not in SCHEDULES and k not in hyper.learn}
    full = task.batch(torch.arange(len(task.data[1]), device=like.device))

    def train_loss(theta, flat):
        return task.train_loss(theta, full, {**constants, **hyper.unpack(flat)})

    return train_loss


def implicit_hypergradient(task, hyper, seed, tolerance=1e-10, max_iterations=2000, cg_tolerance=1e-12,
                           cg_iterations=500) -> Hypergradient:
    check_loss_terms(hyper)
    theta0 = task.init(seed)
    with Meter(theta0.device) as meter:
        h = hyper.pack().to(theta0)
        train_loss = full_batch_loss(task, hyper, theta0)
        theta = minimize_training_loss(lambda t: train_loss(t, h), theta0, tolerance, max_iterations, meter)
        if not torch.isfinite(theta).all():
            return diverged_result("L-BFGS produced non-finite weights", meter, theta)
        grad_val, val_loss = validation_gradient(task, theta, meter)
        gradient_in_theta = grad(train_loss, argnums=0)

        def hvp(v):
            meter.hvp_evaluations += 1
            return jvp(lambda t: gradient_in_theta(t, h), (theta,), (v,))[1]

        q, _ = conjugate_gradient(hvp, grad_val, cg_tolerance, cg_iterations)
        mixed = grad(lambda flat: gradient_in_theta(theta, flat) @ q)(h)
        meter.hvp_evaluations += 1
    hypergrad = -mixed
    if not torch.isfinite(hypergrad).all():
        return diverged_result("the implicit hypergradient is not finite", meter, theta)
    return Hypergradient(val_loss, hypergrad.double().cpu(), meter.cost(), theta=theta)


def implicit(tolerance: float = 1e-10, max_iterations: int = 2000, cg_tolerance: float = 1e-12,
             cg_iterations: int = 500) -> Estimator:
    """HOAG-style implicit hypergradients of training-loss hyperparameters.

    Args:
      tolerance: L-BFGS stops when the training gradient's norm is below this.
      max_iterations: L-BFGS iterations at most.
      cg_tolerance: CG stops at this residual relative to |grad L_val|.
      cg_iterations: CG iterations at most.
    """
    check_positive("tolerance", tolerance)
    check_positive("cg_tolerance", cg_tolerance)
    check_count("max_iterations", max_iterations, minimum=1)
    check_count("cg_iterations", cg_iterations, minimum=1)

    def estimate(task, hyper, seed):
        return implicit_hypergradient(task, hyper, seed, tolerance, max_iterations, cg_tolerance, cg_iterations)

    return estimate
