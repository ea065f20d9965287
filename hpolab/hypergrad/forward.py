"""Forward-mode hypergradients (FDS, RFHO's forward method) and their greedy variant.

Forward mode carries the tangents Z_t = d theta_t / d h and C_t = d v_t / d h (one column
per learned hyperparameter value, K in all) along the training run (the paper's Eq. 3-4);
at the end ``dL_val/dh = Z_T^T grad L_val(theta_T)``. Memory is O(K D), whatever T.

Rather than one double-backward Hessian-vector product per column per step (the official
FDS code), each step is one ``vmap`` over the K columns of a ``jvp`` through the whole
SGD step (forward-over-reverse): the primal step is computed once and the K tangent
products batched. A column joins only from the first step that uses its value (before
that it is zero), so windows of a schedule cost nothing until they start.

Greedy (horizon H): every H steps the hypergradient of L_val(theta_t) with respect to the
values used in those H steps is accumulated and the tangents restart from zero, i.e. the
weights entering each chunk are treated as constants. H = 1 is hypergradient descent's
setting.
"""

from __future__ import annotations

import torch
from torch.func import jvp, vmap

from hpolab.hypergrad.cost import Meter
from hpolab.hypergrad.hyperparameters import SCHEDULES, Hyperparameters
from hpolab.hypergrad.result import Estimator, Hypergradient, diverged_result, validation_gradient
from hpolab.hypergrad.task import InnerTask
from hpolab.hypergrad.unroll import Watch, step_function
from hpolab.validation import check_count


def _last_step(hyper: Hyperparameters) -> torch.Tensor:
    """For each entry of h, the last inner step that uses it."""
    lasts = []
    for name in hyper.learn:
        n = hyper.values[name].numel()
        if name in SCHEDULES:
            lasts.append(torch.clamp((torch.arange(n) + 1) * hyper.windows[name] - 1, max=hyper.horizon - 1))
        else:
            lasts.append(torch.full((n,), hyper.horizon - 1))
    return torch.cat(lasts)


def forward_hypergradient(task: InnerTask, hyper: Hyperparameters, seed: int, horizon: int | None = None) -> Hypergradient:
    """The hypergradient by forward mode; greedy over chunks of ``horizon`` steps if given."""
    T = hyper.horizon
    chunk = T if horizon is None else horizon
    if isinstance(chunk, bool) or not isinstance(chunk, int) or not 1 <= chunk <= T:
        raise ValueError(f"H (the greedy horizon) must be an integer in [1, T] = [1, {T}], got {horizon!r}")
    theta = task.init(seed)
    with Meter(theta.device) as meter:
        h = hyper.pack().to(theta)
        K = h.numel()
        step = step_function(task, hyper, theta.dtype)
        first, last = hyper.first_step(), _last_step(hyper)
        velocity = torch.zeros_like(theta)
        Z_theta = torch.zeros(K, theta.numel(), dtype=theta.dtype, device=theta.device)
        Z_velocity = torch.zeros_like(Z_theta)
        basis = torch.eye(K, dtype=theta.dtype, device=theta.device)
        hypergrad = torch.zeros(K, dtype=theta.dtype, device=theta.device)
        batches = task.batches(seed, T)
        watch = Watch()
        start = 0
        for t in range(T):
            batch = task.batch(batches[t])
            active = torch.nonzero((first <= t) & (last >= start)).squeeze(1).to(theta.device)

            def tangent_step(z_theta, z_velocity, e):
                return jvp(lambda a, b, c: step(a, b, c, t, batch), (theta, velocity, h), (z_theta, z_velocity, e))

            (thetas, velocities, losses), (dz_theta, dz_velocity, _) = vmap(tangent_step)(
                Z_theta[active], Z_velocity[active], basis[active])
            theta, velocity, loss = thetas[0], velocities[0], losses[0]
            Z_theta[active], Z_velocity[active] = dz_theta, dz_velocity
            meter.gradient_evaluations += 1
            meter.hvp_evaluations += len(active)
            if watch.diverged(loss, t):
                return diverged_result(watch.message, meter, theta)
            if t + 1 - start == chunk or t == T - 1:
                grad_val, val_loss = validation_gradient(task, theta, meter)
                hypergrad += Z_theta @ grad_val
                if t < T - 1:
                    Z_theta.zero_()
                    Z_velocity.zero_()
                start = t + 1
    if not torch.isfinite(hypergrad).all() or val_loss != val_loss:
        return diverged_result("the validation loss or its hypergradient is not finite", meter, theta)
    return Hypergradient(val_loss, hypergrad.detach().double().cpu(), meter.cost(), theta=theta.detach())


def forward_mode() -> Estimator:
    """Non-greedy forward-mode hypergradients: FDS with the windows of ``hyper``, RFHO's
    forward method with W = 1."""
    def estimate(task, hyper, seed):
        return forward_hypergradient(task, hyper, seed)

    return estimate


def greedy(horizon: int = 1) -> Estimator:
    """Greedy forward-mode hypergradients over chunks of ``horizon`` steps (H = 1: HD's setting)."""
    check_count("H", horizon, minimum=1)

    def estimate(task, hyper, seed):
        return forward_hypergradient(task, hyper, seed, horizon)

    return estimate
