"""A problem is an objective f(x, y) over training variables x and hyperparameters y."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass(frozen=True)
class Problem:
    """An objective with what methods need to know about it.

    Attributes:
      name: label used in histories and plots.
      objective: ``f(x, y) -> scalar tensor`` for one point (unbatched); the oracle
        vectorizes it with ``torch.func.vmap`` where a method evaluates many points.
      nx, ny: numbers of training variables and hyperparameters.
      initial_point: ``generator -> (x0, y0)``, the random start of a run.
      beta_x: smoothness of f in x (the gradient step is ``x -= grad_x f / beta_x``).
      beta, alpha: smoothness and strong convexity of f in (x, y) jointly, used by the
        accelerated method's step sizes.
      y_bounds: ``(low, high)`` box for black-box tuners over y.
      optimum: the minimum value of f when known (0 for the spheres), else ``None``.
      hyperparameter_names: names of the y coordinates, for history columns.
      metrics: optional ``(x, y) -> {name: float}`` recorded beside the objective at every
        step (monitoring, not charged to the budget), e.g. a test error.
    """

    name: str
    objective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    nx: int
    ny: int
    initial_point: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]
    beta_x: float
    beta: float
    alpha: float
    y_bounds: tuple[float, float]
    optimum: float | None = None
    hyperparameter_names: tuple[str, ...] = field(default=())
    metrics: Callable[[torch.Tensor, torch.Tensor], dict] | None = None

    def __post_init__(self):
        if not self.hyperparameter_names:
            names = tuple(f"y{i}" for i in range(self.ny))
            object.__setattr__(self, "hyperparameter_names", names)
        if len(self.hyperparameter_names) != self.ny:
            raise ValueError(
                f"hyperparameter_names has {len(self.hyperparameter_names)} names "
                f"for ny={self.ny} hyperparameters"
            )

    @property
    def condition_number(self) -> float:
        return self.beta / self.alpha
