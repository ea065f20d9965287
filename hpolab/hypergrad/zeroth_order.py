"""Zeroth-order hypergradients (HOZOG, Eq. 3 of the HOZOG paper).

The training run is a black box f(h) = L_val(theta_T(h)). With q random directions u_i,

    g = s / (mu q) * sum_i (f(h + mu u_i) - f(h)) u_i,

with u_i ~ N(0, I) and s = 1 (``directions="gaussian"``: unbiased for the gradient of the
Gaussian-smoothed f_mu(h) = E f(h + mu u)), or u_i uniform on the unit sphere and s = K,
the number of hyperparameters (``"sphere"``, the paper's normalization: unbiased for the
gradient of f averaged over the ball of radius mu). The q + 1 trainings share the seed's
initialization and data order (common random numbers) and run together: each inner step
is one ``vmap`` over the stacked weights and hyperparameters, not a Python loop of runs.

The directions u_1..u_q are fresh at every call (Algorithm 1 of the HOZOG paper draws them
at every meta-iteration) and independent of the training seed: they come from the caller's
generator when it passes one (``estimate(task, hyper, seed, generator=g)``; hypergradient
descent passes its run's, so a seeded run repeats bit for bit and another run seed draws
other directions), else from a stream the estimator owns, seeded by ``direction_seed``,
which advances at every call.

Given a box, each run trains at the box projection of its point: the estimate is then for
f(P(h)), which equals f inside the box and never asks for a training the box forbids (a
negative learning rate, say, when h sits near 0).
"""

from __future__ import annotations

from concurrent.futures import Executor, ThreadPoolExecutor
from types import SimpleNamespace
from typing import NamedTuple, Sequence

import torch
from torch.func import vmap

from hpolab.hypergrad.cost import Meter
from hpolab.hypergrad.hyperparameters import Hyperparameters
from hpolab.hypergrad.result import Estimator, Hypergradient, diverged_result
from hpolab.hypergrad.task import InnerTask
from hpolab.hypergrad.unroll import train
from hpolab.smoothing import smoothed_gradient
from hpolab.validation import check_choice, check_count, check_positive

DIRECTIONS = ("gaussian", "sphere")


class Evaluated(NamedTuple):
    losses: torch.Tensor  # L_val of each run, float64 on the CPU
    thetas: torch.Tensor  # final weights, one row per run
    diverged: bool
    message: str


def spread_validation_losses(replicas: Sequence[InnerTask], hyper: Hyperparameters, points: torch.Tensor,
                             seed: int, batched: bool = True, meter: Meter | None = None,
                             executor: Executor | None = None) -> Evaluated:
    """:func:`validation_losses` with the rows of ``points`` split into one contiguous share per
    replica, the shares trained at once. Losses come back in the order of ``points``, weights on
    the first replica's device.

    Without ``executor``, ``replicas`` is the same task built on each device and each share runs
    in a thread of its own. With one (a ``concurrent.futures`` executor, e.g. a Dask cluster's
    ``client.get_executor()``), every share is submitted to it: with a cluster, the replicas
    (they may all be the same task) travel to the workers, which train and send back the losses
    and final weights."""
    shares = [share for share in torch.tensor_split(points, len(replicas)) if len(share)]
    own_pool = executor is None
    pool = ThreadPoolExecutor(len(shares)) if own_pool else executor
    try:
        futures = [pool.submit(_evaluate_share, task, hyper, share, seed, batched)
                   for task, share in zip(replicas, shares)]
        results = [future.result() for future in futures]
    finally:
        if own_pool:
            pool.shutdown()
    parts = [part for part, _ in results]
    if meter is not None:
        meter.gradient_evaluations += sum(c["gradient_evaluations"] for _, c in results)
        meter.function_evaluations += sum(c["function_evaluations"] for _, c in results)
    thetas = torch.cat([part.thetas.to(parts[0].thetas.device) for part in parts])
    failed = [part.message for part in parts if part.diverged]
    return Evaluated(torch.cat([part.losses for part in parts]), thetas, bool(failed), failed[0] if failed else "")


def _evaluate_share(task: InnerTask, hyper: Hyperparameters, share: torch.Tensor, seed: int,
                    batched: bool) -> tuple[Evaluated, dict]:
    """One share's :func:`validation_losses` and its counts (a plain dict: it may cross processes)."""
    counter = SimpleNamespace(gradient_evaluations=0, function_evaluations=0)
    evaluated = validation_losses(task, hyper, share, seed, batched, counter)
    return evaluated, vars(counter)


def validation_losses(task: InnerTask, hyper: Hyperparameters, points: torch.Tensor, seed: int,
                      batched: bool = True, meter: Meter | None = None) -> Evaluated:
    """L_val after training at each row of ``points`` (n, K): all n runs batched, or one by one.

    Every run starts from the seed's initialization and sees the seed's data order.
    """
    if batched:
        trained = train(task, hyper, seed, points, meter)
        thetas = trained.theta
        outcome = [(trained.diverged, trained.message)]
    else:  # one run at a time through the same kernels: agrees with the batched runs bit for bit
        runs = [train(task, hyper, seed, point[None], meter) for point in points]
        thetas = torch.cat([run.theta for run in runs])
        outcome = [(run.diverged, run.message) for run in runs]
    losses = vmap(task.val_loss)(thetas).detach().double().cpu()
    if meter is not None:
        meter.function_evaluations += len(points)
    messages = [message for diverged, message in outcome if diverged]
    if messages or not torch.isfinite(losses).all():
        return Evaluated(losses, thetas, True, messages[0] if messages else "a validation loss is not finite")
    return Evaluated(losses, thetas, False, "")


def draw_directions(generator: torch.Generator, q: int, size: int, directions: str) -> tuple[torch.Tensor, float]:
    """q directions in R^size (float64) and the estimate's scale s: N(0, I) with s = 1, or
    uniform on the unit sphere with s = size (see the module docstring)."""
    u = torch.randn(q, size, generator=generator, dtype=torch.float64, device=generator.device)
    if directions == "sphere":
        return u / u.norm(dim=1, keepdim=True), float(size)
    return u, 1.0


def zeroth_order_hypergradient(task, hyper, seed, q: int = 5, mu: float = 0.01, directions: str = "gaussian",
                               batched: bool = True, limits: tuple[torch.Tensor, torch.Tensor] | None = None,
                               replicas: Sequence[InnerTask] | None = None,
                               executor: Executor | None = None, *, generator: torch.Generator) -> Hypergradient:
    """Eq. 3 at ``hyper``'s learned values: q + 1 trainings from ``seed``, the directions drawn
    from ``generator`` (which this call advances)."""
    theta = task.init(seed)
    with Meter(theta.device) as meter:
        h = hyper.pack()
        u, scale = draw_directions(generator, q, h.numel(), directions)
        u = u.to(h.device)  # a generator on another device (e.g. CUDA) draws there
        points = torch.cat([h[None], h + mu * u])
        if limits is not None:
            points = torch.clamp(points, limits[0].to(points), limits[1].to(points))
        if executor is not None:  # one run per job, on the executor's workers
            evaluated = spread_validation_losses([task] * len(points), hyper, points, seed, batched, meter, executor)
        elif replicas and len(replicas) > 1:
            evaluated = spread_validation_losses(replicas, hyper, points, seed, batched, meter)
        else:
            evaluated = validation_losses(task, hyper, points, seed, batched, meter)
        if evaluated.diverged:
            return diverged_result(evaluated.message, meter, evaluated.thetas[0].to(theta.device))
        losses = evaluated.losses
        grad = smoothed_gradient(losses[0], losses[1:], u, mu, scale)
    return Hypergradient(float(losses[0]), grad, meter.cost(), theta=evaluated.thetas[0].to(theta.device))


def zeroth_order(q: int = 5, mu: float = 0.01, directions: str = "gaussian", batched: bool = True,
                 limits: tuple[torch.Tensor, torch.Tensor] | None = None,
                 replicas: Sequence[InnerTask] | None = None, executor: Executor | None = None,
                 direction_seed: int = 0) -> Estimator:
    """HOZOG's zeroth-order hypergradient from q + 1 trainings, fresh directions at every call.

    The estimator is ``estimate(task, hyper, seed, generator=None)``: ``seed`` fixes the
    trainings' initialization and data order (shared by the q + 1 runs), ``generator`` (the
    caller's, e.g. the tuning run's) supplies the directions; without it they come from the
    estimator's own stream (``direction_seed``), which every call advances.

    Args:
      q: number of random directions, >= 1.
      mu: smoothing radius, > 0.
      directions: ``"gaussian"`` or ``"sphere"`` (see the module docstring).
      batched: train the q + 1 runs together with ``vmap`` (else one after another; the
        results are identical, only the time differs).
      limits: ``(low, high)`` per hyperparameter (see :func:`~hpolab.hypergrad.box`): every run
        trains at its point projected onto this box.
      replicas: the task built once per device (e.g. every GPU): the q + 1 runs are split
        among them and trained at the same time (see :func:`spread_validation_losses`).
      executor: a ``concurrent.futures`` executor, e.g. ``hpolab.distributed.cluster(address)``'s
        (a Dask cluster): each of the q + 1 runs is one job on it. The estimate is the same
        as on one device (every run trains from the same seed).
      direction_seed: seeds the estimator's own direction stream, used by calls that pass no
        generator; an integer >= 0.
    """
    check_count("q", q, minimum=1)
    check_positive("mu", mu)
    check_choice("directions", directions, DIRECTIONS)
    check_count("direction_seed", direction_seed)
    stream = torch.Generator().manual_seed(direction_seed)

    def estimate(task, hyper, seed, generator: torch.Generator | None = None):
        return zeroth_order_hypergradient(task, hyper, seed, q, mu, directions, batched, limits, replicas, executor,
                                          generator=stream if generator is None else generator)

    return estimate
