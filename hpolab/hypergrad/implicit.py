"""Implicit-differentiation hypergradients (HOAG, Pedregosa 2016) for training-loss hyperparameters.

At a minimizer theta*(h) of the full-batch training loss, grad_theta L_train(theta*, h) = 0;
differentiating that identity gives

    dL_val/dh = - (d^2 L_train / dh dtheta) q,   where  H q = grad L_val(theta*),  H = d^2 L_train / dtheta^2.

theta* comes from L-BFGS to a gradient-norm tolerance, q from conjugate gradient on
Hessian-vector products (forward-over-reverse ``jvp``), and the mixed term from one
gradient of ``<grad_theta L_train(theta*, h), q>`` with respect to h. It applies only to
hyperparameters of the training loss: an optimizer's learning rate or momentum does not
move the minimizer.
"""

from __future__ import annotations

import torch
from torch.func import grad, jvp

from hpolab.hypergrad.cost import Meter
from hpolab.hypergrad.hyperparameters import SCHEDULES
from hpolab.hypergrad.result import Estimator, Hypergradient, diverged_result, validation_gradient
from hpolab.validation import check_count, check_positive


def conjugate_gradient(hvp, b: torch.Tensor, tolerance: float, max_iterations: int) -> tuple[torch.Tensor, int]:
    """Solve H x = b for symmetric positive definite H given as ``hvp(v) = H v``."""
    x = torch.zeros_like(b)
    r = b.clone()
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


def implicit_hypergradient(task, hyper, seed, tolerance=1e-10, max_iterations=2000, cg_tolerance=1e-12,
                           cg_iterations=500) -> Hypergradient:
    schedules = [name for name in hyper.learn if name in SCHEDULES]
    if schedules:
        raise ValueError(
            f"implicit differentiation applies to hyperparameters of the training loss, not to the optimizer's "
            f"{schedules}: learn only loss terms (e.g. log_l2) or use the forward or reverse estimator")
    theta0 = task.init(seed)
    with Meter(theta0.device) as meter:
        h = hyper.pack().to(theta0)
        constants = {k: v.to(theta0) for k, v in hyper.values.items() if k not in SCHEDULES and k not in hyper.learn}
        full = task.batch(torch.arange(len(task.data[1]), device=theta0.device))

        def train_loss(theta, flat):
            return task.train_loss(theta, full, {**constants, **hyper.unpack(flat)})

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
