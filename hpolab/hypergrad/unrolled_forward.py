"""Forward-mode hypergradients through any inner optimizer the unrolled loop knows (SGD, Adam).

:mod:`hpolab.hypergrad.forward` hand-derives the tangent recursion of SGD with momentum. This
module differentiates the optimizer's update itself, so it follows whatever optimizer the task
names. A step is the training gradient g_t = grad L_train(theta_{t-1}, h) followed by the
elementwise update ``(theta_t, s_t) = U(theta_{t-1}, s_{t-1}, g_t, h, t)``
(:func:`~hpolab.hypergrad.unroll.update_function`; s is the velocity, or Adam's moments). With
Z = d theta / d h and C = d s / d h (one row per learned value, K in all) and e_k the k-th
basis vector,

    dg_t = H Z_{t-1} + (d g / d h) e_k                        (one batched double-backward)
    (Z_t, C_t) = J_U (Z_{t-1}, C_{t-1}, dg_t, e_k)             (cheap: U is elementwise)

and at the end ``dL_val / dh_k = <grad L_val(theta_T), Z_T[k]>``. Memory is O(K D) whatever T
(RFHO's forward method, Franceschi et al. 2017); each step costs a gradient with its graph and
one double-backward for all K rows, as in :mod:`~hpolab.hypergrad.forward` (``jvp`` through
the gradient itself, forward-over-reverse, measured 4-6x slower here on logistic regression),
and two reverse passes over the update for its Jacobian-vector products.
"""

from __future__ import annotations

import torch

from hpolab.hypergrad.cost import Meter
from hpolab.hypergrad.forward import grad_rows
from hpolab.hypergrad.hyperparameters import SCHEDULES, Hyperparameters
from hpolab.hypergrad.result import Estimator, Hypergradient, diverged_result, validation_gradient
from hpolab.hypergrad.task import InnerTask
from hpolab.hypergrad.unroll import Watch, loss_terms, update_function


def unrolled_forward_hypergradient(task: InnerTask, hyper: Hyperparameters, seed: int) -> Hypergradient:
    """d L_val(theta_T) / d h by forward mode through the task's own inner optimizer."""
    theta = task.init(seed)
    with Meter(theta.device) as meter:
        dtype, device = theta.dtype, theta.device
        h = hyper.pack().to(theta)
        K = h.numel()
        basis = torch.eye(K, dtype=dtype, device=device)
        constants = {k: v.to(device=device, dtype=dtype) for k, v in hyper.values.items()
                     if k not in SCHEDULES and k not in hyper.learn}
        update = update_function(task, hyper, dtype)
        state = torch.zeros_like(theta)
        Z = torch.zeros(K, theta.numel(), dtype=dtype, device=device)
        C = torch.zeros_like(Z)
        batches = task.batches(seed, hyper.horizon)
        watch = Watch()
        for t in range(hyper.horizon):
            grad, dgrad, loss = _gradient_and_tangents(task, hyper, theta, h, constants, task.batch(batches[t]),
                                                       Z, basis)
            meter.gradient_evaluations += 1
            meter.hvp_evaluations += K

            (theta, state), (Z, C) = _update_and_tangents(update, t, (theta, state, grad, h), (Z, C, dgrad, basis))
            if watch.diverged(loss, t):
                return diverged_result(watch.message, meter, theta)
        grad_val, val_loss = validation_gradient(task, theta, meter)
        hypergrad = Z @ grad_val
    if not torch.isfinite(hypergrad).all() or val_loss != val_loss:
        return diverged_result("the validation loss or its hypergradient is not finite", meter, theta)
    return Hypergradient(val_loss, hypergrad.double().cpu(), meter.cost(), theta=theta.detach())


def _update_and_tangents(update, t: int, primals: tuple, tangents: tuple):
    """``update(*primals, t)`` and its Jacobian times each row of ``tangents`` (K rows per input).

    The Jacobian-vector products come from two reverse passes over the (small, elementwise)
    update, J v = d/du <J^T u, v>: torch's forward-mode rules for ``mul`` and ``add`` with
    0-d tensors run through Python decompositions, measured 3x slower than this per step.
    """
    inputs = [p.detach().requires_grad_() for p in primals]
    with torch.enable_grad():
        outputs = update(*inputs, t)
        dummies = [torch.zeros_like(o, requires_grad=True) for o in outputs]
        pullbacks = torch.autograd.grad(outputs, inputs, grad_outputs=dummies, create_graph=True, allow_unused=True)
        used = [(g, v) for g, v in zip(pullbacks, tangents) if g is not None and g.requires_grad]
        products = grad_rows([g for g, _ in used], dummies, [v for _, v in used])
    return tuple(o.detach() for o in outputs), tuple(d.detach() for d in products)


def _gradient_and_tangents(task, hyper, theta, h, constants, batch, Z, basis):
    """(g, dg = H Z + (dg/dh) e for every row, loss): one gradient with its graph, one batched
    double-backward; the mixed term rides in it as d/dtheta (dL/dh . e) = (dg/dh) e. With the
    task's clamp, g is clamped and dg zeroed where it clamps (``task.clip_with_tangents``)."""
    theta = theta.detach().requires_grad_()
    flat = h.detach().requires_grad_()
    with torch.enable_grad():
        values = {**constants, **hyper.unpack(flat)}
        loss = task.train_loss(theta, batch, loss_terms(values))
        grad, grad_h = torch.autograd.grad(loss, [theta, flat], create_graph=True, allow_unused=True)
        outputs, tangents = [grad], [Z]
        if grad_h is not None and grad_h.requires_grad:
            outputs.append(grad_h)
            tangents.append(basis)
        (dgrad,) = grad_rows(outputs, [theta], tangents)
    grad, dgrad = task.clip_with_tangents(grad.detach(), dgrad.detach())
    return grad, dgrad, loss.detach()


def unrolled_forward() -> Estimator:
    """Forward-mode hypergradients through the task's inner optimizer (SGD or Adam): RFHO's
    forward method for any optimizer :func:`~hpolab.hypergrad.unroll.update_function` knows."""

    def estimate(task, hyper, seed):
        return unrolled_forward_hypergradient(task, hyper, seed)

    return estimate
