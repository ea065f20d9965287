"""Study 13's tasks and settings: the data, models, step-size grids and sizes per scale, and
one local SGD run of a task.

What every run of the study shares, kept apart from the study loop
(:mod:`hpolab.studies.local_sgd`) so that the loop, the widget panel
(:mod:`hpolab.studies.local_sgd_panel`) and the tests all build runs the same way without
importing one another: the tasks (LIBSVM a9a and w8a logistic regression with its L-BFGS optimum f*, a small
MNIST MLP), the constant and growing period schedules, and :func:`run_task`.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import torch
from torch import nn

from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.methods.local_sgd import growing, make_schedule, plateau, run_local_sgd
from hpolab.models import logistic_regression, mlp
from hpolab.splits import libsvm_train_test, mnist_split
from hpolab.studies.common import check_scale
from hpolab.validation import check_choice, check_count, check_positive
from hpolab.seeding import global_seed


TASKS = ("a9a-logreg", "w8a-logreg", "mnist-mlp")
PERIOD_SCHEDULES = ("growing", "plateau")
WEIGHT_DECAY = {"a9a-logreg": 1e-4, "w8a-logreg": 1e-4, "mnist-mlp": 0.0}
BATCH_SIZE = 1  # the notes: "workers use batch_size=1"
LR_DECAY = 0.75  # Patel & Dieuleveut: gamma_t = gamma_0 t^-alpha, alpha in (1/2, 1); the middle
# The gamma_0 tried for mini-batch SGD (H = 1) before the study: powers of two. The MLP's grid
# reached 2 and 4 after its first cpu run picked 1, the edge of a grid ending there.
LR_GRIDS = {"a9a-logreg": (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0), "w8a-logreg": (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0),
            "mnist-mlp": (0.03125, 0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0)}
HIDDEN = 64

# Per scale and task: training examples (None: all), test examples, local steps, seeds.
SIZES = {
    "smoke": {"a9a-logreg": (2000, 500, 64, 1), "w8a-logreg": (2000, 500, 64, 1), "mnist-mlp": (1024, 256, 64, 1)},
    "cpu": {"a9a-logreg": (None, None, 4000, 3), "w8a-logreg": (None, None, 4000, 3),
            "mnist-mlp": (10_000, 2_000, 2000, 2)},
    "paper": {"a9a-logreg": (None, None, 20_000, 5), "w8a-logreg": (None, None, 20_000, 5),
              "mnist-mlp": (None, None, 20_000, 5)},
}


@functools.lru_cache(maxsize=4)
def local_sgd_data(task: str, n_train: int | None, n_test: int | None, device: str):
    """(train, test) tensors of a task, as the local SGD paper splits them
    (:func:`hpolab.splits.libsvm_train_test`: a9a with its own test file, w8a 3:1; MNIST's first
    images, flattened and standardized, :func:`hpolab.splits.mnist_split` in file order)."""
    check_choice("task", task, TASKS)
    if task == "mnist-mlp":
        split = mnist_split(n_train, 0, n_test, seed=None, device=device)
    else:
        split = libsvm_train_test(task.split("-")[0], n_train, n_test, device)
    return split.train, split.test


def make_model(task: str, features: int, seed: int) -> nn.Module:
    """Logistic regression (one logit, zero start, float64) or the MLP (one hidden layer of 64
    ReLUs, torch's default initialization drawn from ``seed``)."""
    if task == "mnist-mlp":
        with global_seed(seed):
            return mlp((features, HIDDEN, 10))
    return logistic_regression(features)


@functools.lru_cache(maxsize=8)
def logistic_optimum(task: str, n_train: int | None, weight_decay: float) -> float:
    """min_w mean logistic loss + weight_decay / 2 |w|^2 on the training set: the f* of the
    suboptimality curves. L-BFGS in float64; on a9a it ends at a gradient norm of 1.2e-9, so
    by strong convexity (weight_decay = 1e-4) f* is exact to |g|^2 / (2 weight_decay) < 1e-14."""
    (x, y), _ = local_sgd_data(task, n_train, None, "cpu")
    model = make_model(task, x.shape[1], 0)
    params = list(model.parameters())
    optimizer = torch.optim.LBFGS(params, lr=1, max_iter=1000, tolerance_grad=1e-11, tolerance_change=1e-16,
                                  history_size=50, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        value = nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(-1), y.double())
        value = value + 0.5 * weight_decay * sum((p * p).sum() for p in params)
        value.backward()
        return value

    for _ in range(3):
        optimizer.step(objective)
    return float(objective().detach())


def schedule_for(name: str | int, periods: Sequence[int]):
    """A constant period (an int) or a named growing schedule: ``growing`` uncapped (Patel &
    Dieuleveut's periods have no cap), ``plateau`` capped at the largest constant H studied."""
    if isinstance(name, int) and not isinstance(name, bool):
        return make_schedule(name)
    check_choice("schedule", name, PERIOD_SCHEDULES)
    cap = max(periods) if periods else 64
    return growing(start=1, every=1) if name == "growing" else plateau(start=1, maximum=cap)


def _sizes(scale: str, task: str):
    check_scale(scale)
    check_choice("task", task, TASKS)
    return SIZES[scale][task]


def round_budgets(steps: int, periods: Sequence[int]) -> list[int]:
    """The number of rounds each constant period H takes for ``steps`` local steps,
    ceil(steps / H): every run is also measured there, so that all can be compared at the
    same number of communications."""
    return sorted({math.ceil(steps / h) for h in periods})


def run_task(task: str, period, *, scale: str = "cpu", workers: int = 16, batch_size: int = BATCH_SIZE,
             lr: float, lr_decay: float = LR_DECAY, steps: int | None = None, seed: int = 0,
             device: str = "cpu", evaluations: int = 50, measure_rounds: Sequence[int] = (), callback=None,
             should_stop=None) -> History:
    """One local SGD run of ``task`` at the scale's data size."""
    n_train, n_test, default_steps, _ = _sizes(scale, task)
    torch_device = resolve_device(device)
    train, test = local_sgd_data(task, n_train, n_test, str(torch_device))
    model = make_model(task, train[0].shape[1], seed).to(torch_device)
    optimum = logistic_optimum(task, n_train, WEIGHT_DECAY[task]) if task != "mnist-mlp" else None
    steps = check_count("steps", steps if steps is not None else default_steps, minimum=1)
    history = run_local_sgd(model, train, workers=workers, period=period, steps=steps, lr=check_positive("lr", lr),
                            lr_decay=lr_decay, batch_size=batch_size, seed=seed, test=test,
                            weight_decay=WEIGHT_DECAY[task], evaluations=evaluations, measure_rounds=measure_rounds,
                            optimum=optimum, problem=task, callback=callback, should_stop=should_stop)
    history.config["task"] = task
    return history
