"""Plain supervised training with any torch optimizer and scheduler, recorded as a History.

The hypergradient-vs-decay study trains the same models with SGD, SGDN and Adam, each with
a constant rate, hypergradient descent or lr-decay; this loop is shared by all of them.
Every ``evaluate_every`` steps (or at the steps ``record_steps`` lists) it records the mean
training loss since the last record, the test loss and accuracy, and the current learning
rate of each parameter group.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from hpolab import divergence
from hpolab.history import History
from hpolab.recorder import Recorder
from hpolab.progress import progress_bar


@torch.no_grad()
def classification_scores(logits: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                          batch_size: int = 1000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of the classifier ``logits`` on (x, y), summed over
    chunks of ``batch_size`` examples (the chunk size sets the summation order)."""
    loss = correct = 0.0
    for start in range(0, len(y), batch_size):
        out = logits(x[start:start + batch_size])
        loss += float(F.cross_entropy(out, y[start:start + batch_size], reduction="sum"))
        correct += float((out.argmax(1) == y[start:start + batch_size]).sum())
    return loss / len(y), correct / len(y)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on (x, y), in evaluation mode."""
    model.eval()
    scores = classification_scores(model, x, y, batch_size)
    model.train()
    return scores


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    steps: int,
    batch_size: int,
    seed: int,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    evaluate_every: int = 50,
    record_steps: Sequence[int] | None = None,
    label: str = "",
    problem: str = "",
    config: dict | None = None,
    progress: bool = False,
    callback: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    divergence_factor: float = divergence.FACTOR,
) -> History:
    """Train for ``steps`` minibatch steps (epochs of seeded shuffles) and record the run.

    A training loss that becomes NaN, infinite or ``divergence_factor`` times its first
    value stops the run with status ``"diverged"``; the rows recorded until then are kept.
    ``record_steps``, when given, replaces ``evaluate_every``: records at those steps (and at
    the last), e.g. evenly spread ones, so that no record averages a stub of a few minibatches.
    """
    x_train, y_train = train
    marks = set(record_steps) if record_steps is not None else None
    generator = torch.Generator().manual_seed(seed)
    per_epoch = max(1, len(y_train) // batch_size)
    recorder = Recorder(callback=callback, should_stop=should_stop, divergence_factor=divergence_factor)
    running, count = 0.0, 0

    def record(step: int, train_loss: float) -> None:
        test_loss, test_accuracy = evaluate(model, *test)
        rates = {"lr" if index == 0 else f"lr{index}": group["lr"] for index, group in enumerate(optimizer.param_groups)}
        recorder.record(step, objective=train_loss, kind="evaluation", gradient_evaluations=step,
                        test_loss=test_loss, test_accuracy=test_accuracy, **rates)

    record(0, math.nan)
    order = torch.empty(0, dtype=torch.long)
    model.train()
    with progress_bar(total=steps, desc=label or "training", disable=not progress, leave=False) as bar:
        for step in range(1, steps + 1):
            if (step - 1) % per_epoch == 0:
                order = torch.randperm(len(y_train), generator=generator).to(y_train.device)
            batch = order[((step - 1) % per_epoch) * batch_size:][:batch_size]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            value = float(loss.detach())
            running, count = running + value, count + 1
            bar.update()
            recorder.diverged(value, f"at step {step}", "the training loss")
            due = step in marks if marks is not None else step % evaluate_every == 0
            if due or step == steps or recorder.ended:
                record(step, running / count)
                running, count = 0.0, 0
            if recorder.ended or recorder.stop_requested(f"at step {step}"):
                break
    return recorder.history(config.get("optimizer", "") if config else "", label, problem, seed, config, ["lr"])
