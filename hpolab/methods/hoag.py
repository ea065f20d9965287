"""HOAG (Pedregosa 2016): hyperparameter steps on inexact implicit hypergradients.

Outer iteration k (Algorithm 1 of the paper, the rules of its code, github.com/fabianp/hoag):

1. L-BFGS on the training loss at lambda_k, warm started from the previous solution x_{k-1},
   until |grad_x L_train(x_k, lambda_k)| <= epsilon_k |grad_x L_train(x_0, lambda_0)|;
2. conjugate gradient on H q = grad_x L_val(x_k), warm started from q_{k-1}, until the residual
   is at most epsilon_k |grad_x L_val(x_1)|;
3. p_k = -(d^2 L_train / d lambda dx) q_k and lambda_{k+1} = P(lambda_k - p_k / L), P the box;
4. the tolerance decreases (``"exponential"``: epsilon_{k+1} = 0.9 epsilon_k from 0.01, the
   code's default; ``"quadratic"``: epsilon_0 / k^2; ``"cubic"``: epsilon_0 / k^3), never below 1e-12;
5. L starts at |p_1| * (number of hyperparameters) (1 if |p_1| <= 1e-3) and adapts: times 0.95
   after a sufficient decrease of the validation loss (allowing for the tolerances), times 2
   after an increase.

Loose tolerances make the first iterations cheap and the warm starts keep later ones short:
the fast start the HOZOG paper credits HOAG with (section 3.1). Costs are charged as the
estimators' are: one gradient evaluation per L-BFGS evaluation, one Hessian-vector product
per CG iteration. As in :func:`~hpolab.methods.hypergradient_tuning.hypergradient_tuning`,
a row is one inner solve: the state's ``x`` is the last inner solution and ``y`` the lambda_k it
was solved at; lambda_{k+1}, where the next iteration solves, is ``next_y``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from hpolab.hypergrad.hyperparameters import Hyperparameters
from hpolab.hypergrad.implicit import check_loss_terms, full_batch_loss, inexact_hypergradient
from hpolab.hypergrad.task import InnerTask
from hpolab.protocol import Cost, Method
from hpolab.validation import check_choice, check_count, check_positive

DECREASES = ("exponential", "quadratic", "cubic")
EXACT_EPSILON = 1e-12  # the code's floor on epsilon_k


class HoagState(NamedTuple):
    x: torch.Tensor  # the last inner solution x_k (the next L-BFGS starts here)
    y: torch.Tensor  # lambda_k, where x was solved
    next_y: torch.Tensor  # lambda_{k+1}, after the step: where the next iteration solves
    q: torch.Tensor | None  # the last CG solution (the next CG starts here)
    iteration: int  # k, outer iterations done
    epsilon: float  # the tolerance of the next iteration
    lipschitz: float  # L (the step is 1 / L); NaN before the first step
    previous_value: float  # L_val(x_{k-1})
    norms: tuple[float, float]  # |grad L_train(x_0, lambda_0)|, |grad L_val(x_1)|: the tolerances' scales
    kind: str
    message: str = ""
    extras: dict = {}


def next_tolerance(epsilon: float, epsilon0: float, iteration: int, decrease: str, factor: float) -> float:
    """epsilon_{k+1} after iteration ``iteration`` (k >= 1), floored at 1e-12."""
    if decrease == "quadratic":
        epsilon = epsilon0 / iteration**2
    elif decrease == "cubic":
        epsilon = epsilon0 / iteration**3
    else:
        epsilon = epsilon * factor
    return max(epsilon, EXACT_EPSILON)


def hoag(task: InnerTask, hyper: Hyperparameters, limits: tuple[torch.Tensor, torch.Tensor] | None = None,
         epsilon0: float = 0.01, decrease: str = "exponential", factor: float = 0.9, seed: int | None = None,
         max_iterations: int = 10_000, cg_iterations: int = 10_000, label: str = "HOAG") -> Method:
    """HOAG on the training-loss hyperparameters ``hyper.learn`` of ``task`` (see the module docstring).

    Args:
      limits: per-entry ``(low, high)`` box (:func:`hpolab.hypergrad.box`) the steps are projected on.
      epsilon0: the first relative tolerance, > 0.
      decrease: ``"exponential"`` (times ``factor`` per iteration), ``"quadratic"`` or ``"cubic"``.
      factor: the exponential decrease's factor, in (0, 1).
      seed: the initial weights' seed; None draws it from the run's generator (as hypergradient
        descent draws its first training seed, so both start from the same weights).
      max_iterations: L-BFGS iterations at most per outer iteration.
      cg_iterations: CG iterations at most per outer iteration.
    """
    check_loss_terms(hyper)
    check_positive("epsilon0", epsilon0)
    check_choice("decrease", decrease, DECREASES)
    if not 0.0 < factor < 1.0:
        raise ValueError(f"factor must be in (0, 1), got {factor!r}")
    if seed is not None:
        check_count("seed", seed)
    check_count("max_iterations", max_iterations, minimum=1)
    check_count("cg_iterations", cg_iterations, minimum=1)

    def init(x0, y0, oracle, generator):
        h = y0.double() if limits is None else torch.clamp(y0.double(), limits[0], limits[1])
        return HoagState(x0, h, h, None, 0, epsilon0, math.nan, math.inf, (math.nan, math.nan), "start")

    def update(state, oracle, generator):
        current = hyper.with_flat(state.next_y)
        first = state.iteration == 0
        if first:  # HOAG's x_0, and the scale of its inner tolerances: |grad L_train(x_0, lambda_0)|
            run_seed = seed if seed is not None else int(torch.randint(2**31 - 1, (), generator=generator))
            theta0 = task.init(run_seed)
            gradient = torch.func.grad(full_batch_loss(task, current, theta0))(theta0, current.pack().to(theta0))
            oracle.charge(Cost(gradient_evaluations=1))
            train_scale = float(gradient.norm())
        else:
            theta0, train_scale = state.x, state.norms[0]
        solution = inexact_hypergradient(task, current, theta0, state.epsilon * train_scale, state.epsilon,
                                         None if first else state.norms[1], state.q, max_iterations, cg_iterations)
        result = solution.hypergradient
        oracle.charge(result.cost)
        if result.diverged:
            return state._replace(x=torch.full_like(state.x, math.nan), y=state.next_y, kind="diverged",
                                  message=result.message)
        norms = (train_scale, solution.val_gradient_norm if first else state.norms[1])
        k = state.iteration + 1
        epsilon = next_tolerance(state.epsilon, epsilon0, k, decrease, factor)
        p = result.grad
        size = float(p.norm())
        lipschitz = state.lipschitz
        if math.isnan(lipschitz):
            lipschitz = size * p.numel() if size > 1e-3 else 1.0
        step_size = 1.0 / lipschitz
        h = state.next_y - step_size * p if size > 0 else state.next_y
        if limits is not None:
            h = torch.clamp(h, limits[0], limits[1])
        increment = float((h - state.next_y).norm())
        value = result.loss
        if value - epsilon <= (state.previous_value + state.epsilon + state.epsilon * increment
                               - lipschitz / 2 * increment**2):
            lipschitz *= 0.95
        elif not value <= state.previous_value:
            lipschitz *= 2
        extras = {"hypergradient_norm2": size**2, "inner_tolerance": state.epsilon * train_scale,
                  "step_size": step_size}
        return HoagState(result.theta, state.next_y, h, solution.cg_solution, k, epsilon, lipschitz, value, norms,
                         "hypergradient", extras=extras)

    config = {"epsilon0": epsilon0, "decrease": decrease, "factor": factor}
    return Method("hoag", init, update, config, label)
