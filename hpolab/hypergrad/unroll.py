"""The inner training loop, written once and transformed by each estimator.

One step is a pure function ``sgd_step(theta, velocity, h, t) -> (theta', velocity', loss)``
of the weights, the velocity and the flat learned hyperparameters h. Estimators wrap it:
forward mode in ``vmap(jvp(...))`` over tangents, the zeroth-order estimator in ``vmap``
over q + 1 stacked runs, reverse mode under autograd. The Python loop over steps stays
outside every transform, so a diverging run is seen (and stopped) at the step it diverges.

The step follows the task's inner optimizer: SGD with momentum (``task.optimizer`` None),
where ``velocity`` is the momentum buffer, or :class:`~hpolab.hypergrad.task.Adam`, where it
holds Adam's two moments stacked, shape (2, D). Adam's first step ignores the state it is
given (m_0 = v_0 = 0), so every loop may start, as for SGD, from ``zeros_like(theta)``.
A task with ``grad_clip`` clamps the training gradient before either update
(:meth:`~hpolab.hypergrad.task.InnerTask.clip`); the transforms differentiate the clamp too.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch.func import grad_and_value

from hpolab import divergence
from hpolab.hypergrad.hyperparameters import SCHEDULES, Hyperparameters
from hpolab.hypergrad.task import InnerTask



def step_function(task: InnerTask, hyper: Hyperparameters, dtype: torch.dtype, transformable: bool = True,
                  differentiable: bool = False) -> Callable:
    """``sgd_step(theta, velocity, h, t, batch)`` for these hyperparameters.

    h holds the learned values (packed as by ``hyper.pack``); the others are constants.
    The step is the training gradient, clamped if the task says so (``task.grad_clip``),
    followed by :func:`update_function`'s update (SGD or Adam). ``transformable=False`` takes
    the gradient by plain autograd (:func:`autograd_gradient`): the same numbers, bit for bit,
    at half the overhead per step, for a step no transform (vmap, jvp, grad) wraps; with
    ``differentiable=True`` as well, the gradient keeps its graph (``create_graph``), so that
    autograd can differentiate the whole unrolled run afterwards (reverse mode).
    """
    values_of = _values(task, hyper, dtype, memoize=not transformable)
    gradient = (grad_and_value(task.train_loss) if transformable
                else autograd_gradient(task.train_loss, create_graph=differentiable))
    update = update_function(task, hyper, dtype, values_of)

    def sgd_step(theta, velocity, h, t, batch):
        grad, loss = gradient(theta, batch, loss_terms(values_of(h)))
        theta, velocity = update(theta, velocity, task.clip(grad), h, t)
        return theta, velocity, loss

    return sgd_step


def batched_step_function(task: InnerTask, hyper: Hyperparameters, dtype: torch.dtype) -> Callable:
    """``sgd_step(theta, velocity, h, t, batch)`` for n runs at once, all tensors but the batch
    stacked on a first axis of length n: the training losses of the n runs under ``vmap``, their
    gradients by one plain backward pass of the losses' sum (run i's loss depends on run i's
    weights only), and the update under ``vmap``. The same numbers, bit for bit, as
    ``vmap(step_function(...))``, at 0.90-0.95 of its time (9 runs of the benchmark MLPs):
    ``vmap`` of ``grad_and_value`` wraps every backward operation as well. Not differentiable
    in h."""
    values_of = _values(task, hyper, dtype)
    update = update_function(task, hyper, dtype, values_of)

    def loss(theta, h, batch):
        return task.train_loss(theta, batch, loss_terms(values_of(h)))

    def clipped_update(theta, velocity, grad, h, t):
        return update(theta, velocity, task.clip(grad), h, t)

    losses_of = torch.func.vmap(loss, in_dims=(0, 0, None))
    updates = torch.func.vmap(clipped_update, in_dims=(0, 0, 0, 0, None))

    def sgd_step(theta, velocity, h, t, batch):
        with torch.enable_grad():
            leaf = theta.detach().requires_grad_()
            losses = losses_of(leaf, h, batch)
            (grad,) = torch.autograd.grad(losses.sum(), leaf)
        theta, velocity = updates(theta, velocity, grad, h, t)
        return theta, velocity, losses.detach()

    return sgd_step


def autograd_gradient(loss: Callable, create_graph: bool = False) -> Callable:
    """``(theta, *args) -> (grad, loss)`` of ``loss`` with respect to theta by plain autograd:
    what ``torch.func.grad_and_value`` computes, without its per-call transform set-up (about
    1 ms a step on a small model, measured by benchmarks/hypergrad.py against a plain loop).
    Not usable inside a torch.func transform. Without ``create_graph`` it is not differentiable
    (theta is detached); with it, the gradient and the loss keep their graphs to theta and
    *args, as reverse mode needs."""

    def gradient(theta, *args):
        with torch.enable_grad():
            leaf = theta if create_graph and theta.requires_grad else theta.detach().requires_grad_()
            value = loss(leaf, *args)
            (grad,) = torch.autograd.grad(value, leaf, create_graph=create_graph)
        return grad, value if create_graph else value.detach()

    return gradient


def _constants(task: InnerTask, hyper: Hyperparameters, dtype: torch.dtype) -> dict:
    constants = {name: value.to(dtype) for name, value in hyper.values.items() if name not in hyper.learn}
    return {name: value.to(task.data[0].device) for name, value in constants.items()}


def _values(task: InnerTask, hyper: Hyperparameters, dtype: torch.dtype, memoize: bool = False) -> Callable:
    """``h -> {name: values}``: the constants and h's learned values. With ``memoize`` the values
    of the last h are kept while the same h comes back, as it does at every step of one run
    outside a transform: unpacked once, not at every step (reverse mode records one split of h
    per run instead of two per step; the same numbers, about 3 % of a 57k MLP's reverse step)."""
    constants = _constants(task, hyper, dtype)
    last: list = [None, None]

    def values_of(h: torch.Tensor) -> dict:
        if memoize and last[0] is h:
            return last[1]
        values = {**constants, **hyper.unpack(h)}
        if memoize:
            last[:] = [h, values]
        return values

    return values_of


def loss_terms(values: dict) -> dict:
    """The hyperparameters that enter the training loss (every one but the optimizer's schedules)."""
    return {name: value for name, value in values.items() if name not in SCHEDULES}


def loss_terms_of(task: InnerTask, hyper: Hyperparameters, dtype: torch.dtype) -> Callable:
    """``h -> {name: value}``: the hyperparameters that enter ``task``'s training loss, the
    constants and h's learned ones (a tuner that differentiates the loss itself, such as STN)."""
    values_of = _values(task, hyper, dtype)
    return lambda h: loss_terms(values_of(h))


def update_function(task: InnerTask, hyper: Hyperparameters, dtype: torch.dtype,
                    values_of: Callable | None = None) -> Callable:
    """The task's optimizer update ``(theta, state, grad, h, t) -> (theta', state')`` given the
    training gradient at theta (already clamped, where the task clamps it): SGD with momentum and weight decay, or Adam. An elementwise
    function of its tensors, so its ``jvp`` is cheap (see :mod:`hpolab.hypergrad.unrolled_forward`).
    ``values_of`` (default: :func:`_values` without memoizing) maps h to every hyperparameter's values."""
    values_of = values_of or _values(task, hyper, dtype)
    adam = getattr(task, "optimizer", None)
    if adam is not None:
        return _adam_update(adam, hyper, values_of)

    def sgd_update(theta, velocity, grad, h, t):
        values = values_of(h)
        lr, momentum, decay = (values[name][hyper.window_index(name, t)] for name in SCHEDULES)
        velocity = momentum * velocity + grad + decay * theta
        return theta - lr * velocity, velocity

    return sgd_update


def _adam_update(adam, hyper: Hyperparameters, values_of: Callable) -> Callable:
    """Adam's update (see :class:`~hpolab.hypergrad.task.Adam`), differentiable in h and in the state.

    sqrt is taken of v clamped below at the smallest normal number: its derivative at 0 is
    infinite, and a coordinate whose gradient is exactly 0 (a feature absent from the training
    data) would otherwise put 0 / 0 into forward- and reverse-mode tangents (its true tangent
    there is 0, which the clamp gives). The clamp moves the denominator by ~1e-154 (float64),
    nothing next to eps; ``torch.where`` would do the same but its forward-mode rule runs in
    Python, measured 4x slower per step.
    """
    momentum = hyper.values["momentum"]
    if "momentum" in hyper.learn or bool((momentum != 0).any()):
        raise ValueError("momentum must be 0 (and not learned) with the Adam inner optimizer, whose moments use "
                         f"its betas ({adam.beta1}, {adam.beta2}); got momentum {momentum.tolist()}")

    def adam_update(theta, state, grad, h, t):
        values = values_of(h)
        lr, decay = (values[name][hyper.window_index(name, t)] for name in ("lr", "weight_decay"))
        grad = grad + decay * theta
        if t == 0:
            m, v = (1 - adam.beta1) * grad, (1 - adam.beta2) * grad**2
        else:
            m = adam.beta1 * state[0] + (1 - adam.beta1) * grad
            v = adam.beta2 * state[1] + (1 - adam.beta2) * grad**2
        step = t + 1
        root = v.clamp_min(torch.finfo(v.dtype).tiny).sqrt()  # see the docstring
        denominator = root / (1 - adam.beta2**step) ** 0.5 + adam.eps
        theta = theta - (lr / (1 - adam.beta1**step)) * m / denominator
        return theta, torch.stack([m, v])

    return adam_update


class Watch:
    """Tells, step by step, whether training has diverged (loss NaN, inf or exploding)."""

    def __init__(self):
        self.first = None
        self.message = ""

    def diverged(self, loss: torch.Tensor, step: int) -> bool:
        loss = loss.detach()
        worst = float(loss.max()) if loss.dim() else float(loss)
        if self.first is None and worst == worst:
            self.first = worst
        if divergence.diverged(worst, 1.0 if self.first is None else self.first):
            self.message = f"training diverged at step {step}: the training loss reached {worst:.4g}"
            return True
        return False


class Trained(NamedTuple):
    theta: torch.Tensor
    steps: int
    diverged: bool
    message: str


def train(task: InnerTask, hyper: Hyperparameters, seed: int, h: torch.Tensor | None = None,
          meter=None, on_step: Callable[[int, torch.Tensor], bool] | None = None) -> Trained:
    """Train with hyperparameters ``hyper`` (or its learned part replaced by h), no hypergradient.

    With h of shape (n, K), runs n trainings at once with ``vmap`` from the same start and
    data order (the seed), returning weights of shape (n, D).

    Args:
      on_step: optional ``(t, theta) -> stop``, called after each step t (0-based) that did
        not diverge, with the weights after it (shape (D,), or (n, D) for batched runs, where
        stopping stops all n); returning True ends training there, with ``steps = t + 1``,
        ``diverged=False`` and a message saying it was stopped. It must not modify theta.
        Early stopping such as Hyperband's pruning (see ``hpolab.methods.blackbox``) lives
        here; None (the default) adds no work to the loop.
    """
    theta = task.init(seed)
    dtype = theta.dtype
    h = (hyper.pack() if h is None else h).to(device=theta.device, dtype=dtype)
    if h.dim() == 2:
        if h.requires_grad:
            raise ValueError("batched runs (h of shape (n, K)) are not differentiable in h; pass h.detach()")
        theta = theta.expand(h.shape[0], -1).clone()
        step = batched_step_function(task, hyper, dtype)
    else:
        step = step_function(task, hyper, dtype, transformable=h.requires_grad)
    velocity = torch.zeros_like(theta)
    batches = task.batches(seed, hyper.horizon)
    watch = Watch()
    for t in range(hyper.horizon):
        theta, velocity, loss = step(theta, velocity, h, t, task.batch(batches[t]))
        if meter is not None:
            meter.gradient_evaluations += theta.shape[0] if theta.dim() == 2 else 1
        if watch.diverged(loss, t):
            return Trained(theta, t + 1, True, watch.message)
        if on_step is not None and on_step(t, theta):
            return Trained(theta, t + 1, False, f"stopped by on_step after {t + 1} of {hyper.horizon} steps")
    return Trained(theta, hyper.horizon, False, "")
