"""The counting oracle: the only way a method may look at its problem."""

from __future__ import annotations

import torch
from torch.func import grad_and_value, vmap

from hpolab.problems.base import Problem
from hpolab.protocol import Cost


class Oracle:
    """Answers gradient and function queries about a problem and counts each one.

    ``value`` counts one function evaluation per point, ``value_and_grad_x`` one gradient
    evaluation (which, as in backpropagation, also yields the value). Methods must not
    call ``problem.objective`` themselves; the runner does, to monitor, without counting.
    """

    def __init__(self, problem: Problem):
        self.problem = problem
        self.gradient_evaluations = 0
        self.function_evaluations = 0
        self.hvp_evaluations = 0
        self._batched = vmap(problem.objective, in_dims=(None, 0))
        self._grad_x = grad_and_value(problem.objective, argnums=0)

    def value(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """f(x, y); ``y`` of shape (k, ny) evaluates k points and counts k evaluations."""
        if y.dim() == 1:
            self.function_evaluations += 1
            return self.problem.objective(x, y)
        self.function_evaluations += y.shape[0]
        return self._batched(x, y)

    def value_and_grad_x(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f(x, y), grad_x f(x, y)) for one gradient evaluation."""
        self.gradient_evaluations += 1
        grad, value = self._grad_x(x, y)
        return value, grad

    def charge(self, cost: Cost) -> None:
        """Count work done outside the oracle, e.g. a hypergradient's training runs."""
        self.gradient_evaluations += cost.gradient_evaluations
        self.function_evaluations += cost.function_evaluations
        self.hvp_evaluations += cost.hvp_evaluations

    @property
    def cost(self) -> Cost:
        return Cost(self.gradient_evaluations, self.function_evaluations, self.hvp_evaluations)

    @property
    def evaluations(self) -> int:
        return self.gradient_evaluations + self.function_evaluations
