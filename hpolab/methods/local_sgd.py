"""Local SGD, simulated: P workers take H local SGD steps between parameter averages.

Every worker starts a round from the same averaged weights, takes ``H`` plain SGD steps
(no momentum) on minibatches of its own shard, and then all weights are averaged: one
*communication round*. ``H = 1`` is mini-batch SGD with batch ``P * b``: averaging the
weights after one step from a common point averages the gradients (tested).

The workers run batched: their weights are stacked along a leading axis of size P
(``torch.func.stack_module_state``'s layout), one ``torch.func.vmap`` of ``functional_call``
runs every worker's minibatch through its own weights, and one backward pass gives all
their gradients; a test checks that this equals a Python loop over workers fed the same
minibatches.

Units. ``step`` counts *local steps per worker*: parallel steps, the wall-clock unit when
workers run side by side. The run processes ``P * step`` minibatch gradients
(``gradient_evaluations``) and ``P * b * step`` examples. ``round`` counts parameter
averages (communications). The history's ``objective`` is the training objective (data
loss plus the L2 term) of the *averaged* model, measured right after an average, so loss
against rounds is what a parameter server could actually know.

The communication period may change between rounds: a :class:`Schedule` maps the log of
completed rounds to the next period (:func:`constant`, :func:`growing`, :func:`plateau`).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.nn import functional as F

from hpolab.devices import cpu_threads
from hpolab import divergence
from hpolab.history import History
from hpolab.methods.local_sgd_schedules import Schedule, make_schedule
from hpolab.methods.local_sgd_schedules import growing, plateau  # noqa: F401  (re-exported: the studies use these)
from hpolab.recorder import Recorder
from hpolab.validation import check_count, check_positive

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------- losses


def classification_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean logistic loss for one output column (labels 0 / 1), else mean cross-entropy."""
    if logits.shape[-1] == 1:
        return F.binary_cross_entropy_with_logits(logits.squeeze(-1), y.to(logits.dtype))
    return F.cross_entropy(logits, y)


def correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Number of correct predictions (sign of the logit for one output column)."""
    predicted = (logits.squeeze(-1) > 0).long() if logits.shape[-1] == 1 else logits.argmax(-1)
    return (predicted == y.long()).sum()


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Shards:
    """Each worker's data: ``x`` of shape (P, m, ...) and ``y`` of shape (P, m)."""

    x: torch.Tensor
    y: torch.Tensor

    @property
    def workers(self) -> int:
        return self.x.shape[0]

    @property
    def size(self) -> int:
        return self.x.shape[1]

    def gather(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The minibatches of a (P, b) index tensor: x of shape (P, b, ...), y (P, b)."""
        rows = torch.arange(self.workers, device=index.device)[:, None]
        return self.x[rows, index], self.y[rows, index]


def iid_shards(x: torch.Tensor, y: torch.Tensor, workers: int, seed: int) -> Shards:
    """An iid split: a seeded permutation of the examples cut into ``workers`` equal shards
    (the ``n mod P`` examples left over are dropped)."""
    check_count("workers", workers, minimum=1)
    size = len(y) // workers
    if size < 1:
        raise ValueError(f"workers must be at most the number of examples ({len(y)}), got {workers}")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[: size * workers]
    order = order.to(y.device)
    return Shards(x[order].reshape(workers, size, *x.shape[1:]), y[order].reshape(workers, size))


class BatchStreams:
    """Seeded per-worker minibatch streams: worker p walks through epochs of shuffles of its
    own shard, drawn from its own generator (``SeedSequence([seed, p])``), dropping each
    epoch's last partial batch. ``next()`` returns the (P, b) indices of the next step.

    The streams do not depend on the communication period, so runs with different H
    from the same seed see the same minibatches in the same order.
    """

    def __init__(self, shard_size: int, workers: int, batch_size: int, seed: int, device="cpu"):
        check_count("batch_size", batch_size, minimum=1)
        if batch_size > shard_size:
            raise ValueError(f"batch_size must be at most the shard size ({shard_size}), got {batch_size}")
        self.shard_size, self.batch_size, self.device = shard_size, batch_size, device
        self.generators = [np.random.default_rng(np.random.SeedSequence([seed, p])) for p in range(workers)]
        self.per_epoch = shard_size // batch_size
        self._epoch = None
        self._position = self.per_epoch

    def next(self) -> torch.Tensor:
        if self._position == self.per_epoch:
            orders = np.stack([g.permutation(self.shard_size) for g in self.generators])
            self._epoch = torch.as_tensor(orders, device=self.device)
            self._position = 0
        start = self._position * self.batch_size
        self._position += 1
        return self._epoch[:, start:start + self.batch_size]


# --------------------------------------------------------------------------- workers


def stack_weights(model: nn.Module, workers: int) -> dict[str, torch.Tensor]:
    """The model's parameters repeated for every worker: tensors of shape (P, ...)."""
    return {name: p.detach().unsqueeze(0).repeat(workers, *[1] * p.ndim) for name, p in model.named_parameters()}


def average(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One communication: every worker gets the mean of the workers' weights."""
    return {name: w.mean(0, keepdim=True).expand_as(w) for name, w in weights.items()}


def make_local_step(model: nn.Module, loss: Loss = classification_loss, weight_decay: float = 0.0):
    """``step(weights, x, y, lr) -> (weights, losses)``: one SGD step of every worker at once.

    ``weights`` are stacked (P, ...), ``x`` (P, b, ...), ``y`` (P, b); ``losses`` (P,) are
    the minibatch objectives before the step. The forward pass is one ``vmap`` of
    ``functional_call`` over the workers' weights and minibatches; one backward pass of the
    sum of the P objectives then gives every worker its own gradient, since worker p's
    objective depends on its slice of the stack only. (``vmap(grad(...))`` computes the same
    numbers; it took 1.7-2.6x longer per step here on a CPU.) Buffers, if any, are shared, not averaged.
    """
    buffers = {name: b.detach() for name, b in model.named_buffers()}
    forward = vmap(lambda weights, x: functional_call(model, (weights, buffers), (x,)))
    per_worker = vmap(loss)

    def step(weights, x, y, lr: float):
        leaves = {name: w.detach().requires_grad_() for name, w in weights.items()}
        with torch.enable_grad():
            losses = per_worker(forward(leaves, x), y)
            if weight_decay:
                losses = losses + 0.5 * weight_decay * sum((w * w).flatten(1).sum(1) for w in leaves.values())
            grads = torch.autograd.grad(losses.sum(), list(leaves.values()))
        stepped = {name: w.detach() - lr * g for (name, w), g in zip(leaves.items(), grads)}
        return stepped, losses.detach()

    return step


@torch.no_grad()
def evaluate(model: nn.Module, weights: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
             loss: Loss = classification_loss, weight_decay: float = 0.0,
             batch_size: int = 8192) -> tuple[float, float]:
    """(objective, accuracy) of one set of weights (not stacked) on (x, y); the objective
    adds the L2 term ``weight_decay / 2 |w|^2`` to the mean loss."""
    total = hits = 0.0
    for start in range(0, len(y), batch_size):
        logits = functional_call(model, weights, (x[start:start + batch_size],))
        total += float(loss(logits, y[start:start + batch_size])) * len(logits)
        hits += float(correct(logits, y[start:start + batch_size]))
    penalty = 0.5 * weight_decay * sum(float((w * w).sum()) for w in weights.values()) if weight_decay else 0.0
    return total / len(y) + penalty, hits / len(y)


def evaluation_steps(steps: int, evaluations: int) -> np.ndarray:
    """Where to measure: ``evaluations`` evenly spaced steps and as many log-spaced ones
    (so that the first rounds show on a log axis), ending at ``steps``."""
    linear = np.linspace(0, steps, evaluations + 1)
    geometric = np.geomspace(1, max(steps, 1), evaluations // 2 + 1)
    return np.unique(np.concatenate([linear, geometric]).round().astype(int))


# --------------------------------------------------------------------------- the run


@dataclass
class LocalSGDHistory(History):
    """A :class:`~hpolab.history.History` of a local SGD run, with the final averaged weights."""

    weights: dict = field(default_factory=dict, repr=False)


def run_local_sgd(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    *,
    workers: int,
    period: int | str | Schedule,
    steps: int,
    lr: float,
    batch_size: int,
    lr_decay: float = 0.0,
    seed: int = 0,
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    loss: Loss = classification_loss,
    weight_decay: float = 0.0,
    evaluations: int = 50,
    evaluate_on: tuple[torch.Tensor, torch.Tensor] | None = None,
    measure_rounds: Sequence[int] = (),
    optimum: float | None = None,
    label: str | None = None,
    problem: str = "",
    config: dict | None = None,
    callback: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    divergence_factor: float = divergence.FACTOR,
    threads: int | None = 1,
) -> LocalSGDHistory:
    """Simulate local SGD for ``steps`` local steps per worker and record it.

    Args:
      model: the network; its current parameters are every worker's start. Any
        ``nn.Module`` ``functional_call`` can run under ``vmap`` (no train-mode BatchNorm).
      train: (x, y) on the device to compute on; split iid into ``workers`` shards by ``seed``.
      workers: P.
      period: the communication period H, an int, or a schedule (see :func:`make_schedule`).
        The last round is cut short so that the run ends with an average at ``steps``.
      steps: local steps per worker (parallel steps).
      lr: the SGD step size, gamma_0.
      batch_size: b, each worker's minibatch.
      lr_decay: alpha >= 0: local step t (1, 2, ...) uses ``gamma_t = gamma_0 t^-alpha``, the
        decaying large steps of Patel & Dieuleveut (alpha in (1/2, 1)); 0 keeps gamma_0.
      seed: the shard split and the per-worker minibatch streams (not the initialization:
        seed the model before building it).
      test: (x, y) for the test loss and accuracy, if given.
      loss: ``loss(logits, y)``, a mean over the batch.
      weight_decay: L2 coefficient lambda; the objective is loss + lambda / 2 |w|^2.
      evaluations: about how many times to measure the averaged model (after the first
        average at or after each point of :func:`evaluation_steps`).
      evaluate_on: (x, y) for the training objective (default: ``train``).
      measure_rounds: also measure right after these numbers of rounds, so that runs with
        different periods can be compared at the same number of communications.
      optimum: the objective's minimum, if known: adds a ``suboptimality`` column.
      callback, should_stop: called with each row; polled after each round.
      divergence_factor: an objective above this multiple of its start (or NaN) ends the
        run as ``"diverged"``.
      threads: torch's intra-op CPU threads during the run (restored after; None leaves
        them). The workers' tensors are small: one thread skips OpenMP synchronization that
        costs more than it saves (a smoke study took 27 s with 2 threads on a busy 2-core
        machine, 6 s with one).

    Returns:
      A :class:`LocalSGDHistory` whose frame has one row per measurement: ``step``,
      ``round``, ``H`` (the last round's period), ``gradient_evaluations`` (P x step),
      ``examples`` (P x b x step), ``objective`` (of the averaged model), ``local_loss``
      (the workers' mean minibatch loss since the last row), ``train_accuracy``,
      ``test_loss``, ``test_accuracy`` and ``suboptimality`` where known; ``weights`` holds
      the final averaged parameters.
    """
    check_count("steps", steps)
    check_positive("lr", lr)
    if not (isinstance(lr_decay, (int, float)) and 0 <= lr_decay <= 1):
        raise ValueError(f"lr_decay must lie in [0, 1], got {lr_decay!r}")
    with cpu_threads(threads):
        schedule = make_schedule(period)
        shards = iid_shards(*train, workers, seed)
        streams = BatchStreams(shards.size, workers, batch_size, seed, device=train[1].device)
        step = make_local_step(model, loss, weight_decay)
        weights = stack_weights(model, workers)
        recorder = Recorder(callback=callback, should_stop=should_stop, divergence_factor=divergence_factor)
        measure = _Measure(model, evaluate_on if evaluate_on is not None else train, test, loss, weight_decay,
                           optimum, workers, batch_size, recorder)
        marks = [int(m) for m in evaluation_steps(steps, evaluations)[1:]]
        at_rounds = {check_count("measure_rounds", r, minimum=1) for r in measure_rounds}
        rounds: list[tuple[int, float]] = []
        recorder.diverged(measure(weights, 0, rounds)["objective"], "at step 0")
        done = 0
        while done < steps and not recorder.ended:
            h = check_count("period", min(schedule(rounds), steps - done), minimum=1)
            round_loss = 0.0
            for t in range(done + 1, done + h + 1):
                xb, yb = shards.gather(streams.next())
                weights, losses = step(weights, xb, yb, lr * t ** -lr_decay if lr_decay else lr)
                round_loss += float(losses.mean())
            weights, done = average(weights), done + h
            rounds.append((h, round_loss / h))
            measure.add_local(round_loss, h)
            passed = bisect_right(marks, done) > bisect_right(marks, done - h)  # a measuring point
            if (passed or len(rounds) in at_rounds) and recorder.diverged(
                    measure(weights, done, rounds)["objective"], f"at step {done}"):
                break
            if recorder.stop_requested(f"at step {done}"):
                if recorder.rows[-1]["step"] != done:
                    measure(weights, done, rounds)
                break
    settings = {"workers": workers, "period": schedule.label, "lr": lr, "lr_decay": lr_decay,
                "batch_size": batch_size, "weight_decay": weight_decay, "steps": steps, "rounds": len(rounds),
                **(config or {})}
    final = {name: w[0].clone() for name, w in weights.items()}
    return recorder.history("local-sgd", label or schedule.label, problem, seed, settings, kind=LocalSGDHistory,
                            weights=final)


class _Measure:
    """Measures the averaged model after an average and records it as a row."""

    def __init__(self, model, train, test, loss, weight_decay, optimum, workers, batch_size, recorder: Recorder):
        self.model, self.train, self.test, self.loss, self.weight_decay = model, train, test, loss, weight_decay
        self.optimum, self.workers, self.batch_size, self.recorder = optimum, workers, batch_size, recorder
        self.local_sum, self.local_steps = 0.0, 0

    def add_local(self, loss_sum: float, steps: int) -> None:
        self.local_sum, self.local_steps = self.local_sum + loss_sum, self.local_steps + steps

    def __call__(self, weights, done: int, rounds) -> dict:
        single = {name: w[0] for name, w in weights.items()}
        objective, accuracy = evaluate(self.model, single, *self.train, loss=self.loss, weight_decay=self.weight_decay)
        columns = {"round": len(rounds), "H": rounds[-1][0] if rounds else 0,
                   "examples": self.workers * self.batch_size * done,
                   "local_loss": self.local_sum / self.local_steps if self.local_steps else math.nan,
                   "train_accuracy": accuracy}
        if self.test is not None:
            columns["test_loss"], columns["test_accuracy"] = evaluate(self.model, single, *self.test, loss=self.loss)
        if self.optimum is not None:
            columns["suboptimality"] = objective - self.optimum
        self.local_sum, self.local_steps = 0.0, 0
        return self.recorder.record(done, objective=objective, kind="average", iteration=done,
                                    gradient_evaluations=self.workers * done, **columns)
