"""Hyperparameter tuning as a problem f(x, y): x the trained weights, y the hyperparameters.

f(x, y) = L_val(x), where x = theta_T(y) is what a training run with hyperparameters y
produced; a tuning method's step trains (through a hypergradient estimator), so the
runner's monitoring evaluation is one validation loss, not a training run.
"""

from __future__ import annotations

import torch

from hpolab.hypergrad.hyperparameters import Hyperparameters
from hpolab.hypergrad.task import InnerTask
from hpolab.problems.base import Problem


def hyperparameter_names(hyper: Hyperparameters) -> tuple[str, ...]:
    """``lr[0]``, ``lr[1]``, ``momentum``...: one name per entry of the packed h."""
    names = []
    for name in hyper.learn:
        n = hyper.values[name].numel()
        names += [name] if n == 1 else [f"{name}[{i}]" for i in range(n)]
    return tuple(names)


def classification_metrics(task: InnerTask, test: tuple[torch.Tensor, torch.Tensor]):
    """``(theta, h) -> {"test_loss", "test_error"}`` of the task's model on a test set."""
    x_test, y_test = test

    @torch.no_grad()
    def metrics(theta: torch.Tensor, h: torch.Tensor) -> dict:
        if not torch.isfinite(theta).all():
            return {"test_loss": float("nan"), "test_error": float("nan")}
        logits = task.predict(theta, x_test.to(theta.dtype))
        return {"test_loss": float(torch.nn.functional.cross_entropy(logits, y_test)),
                "test_error": float((logits.argmax(1) != y_test).double().mean())}

    return metrics


def tuning_problem(task: InnerTask, hyper: Hyperparameters,
                   test: tuple[torch.Tensor, torch.Tensor] | None = None) -> Problem:
    """The problem of tuning ``hyper.learn`` for ``task``, starting from ``hyper``'s values;
    with ``test`` data, every history row also records the test loss and error."""
    h0 = hyper.pack()

    def objective(theta: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return task.val_loss(theta)

    def initial_point(generator: torch.Generator):
        seed = int(torch.randint(2**31 - 1, (), generator=generator))
        return task.init(seed), h0.clone()

    nan = float("nan")
    return Problem(
        name=task.name,
        objective=objective,
        nx=task.init(0).numel(),
        ny=h0.numel(),
        initial_point=initial_point,
        beta_x=nan,
        beta=nan,
        alpha=nan,
        y_bounds=(-float("inf"), float("inf")),
        hyperparameter_names=hyperparameter_names(hyper),
        metrics=classification_metrics(task, test) if test is not None else None,
    )
