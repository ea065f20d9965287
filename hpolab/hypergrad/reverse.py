"""Reverse-mode hypergradients through the unrolled training run (RFHO's reverse method).

The whole run is recorded by autograd (each inner gradient with its own graph, so the
backward pass is a Hessian-vector product per step) and ``L_val(theta_T)`` is
back-propagated to h. Exact like forward mode, cheap in the number of hyperparameters,
but its memory grows linearly with T.
"""

from __future__ import annotations

import torch

from hpolab.hypergrad.cost import Meter
from hpolab.hypergrad.result import Estimator, Hypergradient, diverged_result
from hpolab.hypergrad.unroll import Watch, step_function


def reverse_hypergradient(task, hyper, seed) -> Hypergradient:
    theta = task.init(seed)
    with Meter(theta.device) as meter:
        h = hyper.pack().to(theta).requires_grad_()
        step = step_function(task, hyper, theta.dtype, transformable=False, differentiable=True)
        velocity = torch.zeros_like(theta)
        batches = task.batches(seed, hyper.horizon)
        watch = Watch()
        for t in range(hyper.horizon):
            theta, velocity, loss = step(theta, velocity, h, t, task.batch(batches[t]))
            meter.gradient_evaluations += 1
            if watch.diverged(loss.detach(), t):
                return diverged_result(watch.message, meter, theta.detach())
        val_loss = task.val_loss(theta)
        (hypergrad,) = torch.autograd.grad(val_loss, h)
        meter.gradient_evaluations += 1  # the validation loss and its gradient
        meter.hvp_evaluations += hyper.horizon
    if not torch.isfinite(hypergrad).all() or not torch.isfinite(val_loss):
        return diverged_result("the validation loss or its hypergradient is not finite", meter, theta.detach())
    return Hypergradient(float(val_loss.detach()), hypergrad.double().cpu(), meter.cost(), theta=theta.detach())


def reverse_mode() -> Estimator:
    """Reverse-mode hypergradients (backpropagation through the T unrolled steps)."""
    def estimate(task, hyper, seed):
        return reverse_hypergradient(task, hyper, seed)

    return estimate
