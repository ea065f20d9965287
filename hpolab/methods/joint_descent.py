"""Joint Descent (JD), Algorithm 1 of "Joint Descent: Training and Tuning Simultaneously".

Each iteration flips a coin: with probability p a gradient step on the training variables,
``x <- x - grad_x f(x, y) / beta_x``; otherwise a gradientless step on the hyperparameters
(Golovin et al., 2019): try ``y + g_i`` for radii ``r_i = 2^i r``, ``i = 1..log2(R/r)``, and
keep the best of ``{y}`` and the tries.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from hpolab.oracle import Oracle
from hpolab.protocol import Method
from hpolab.validation import check_open_unit, check_positive


class JointDescentState(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor
    value: torch.Tensor | None  # f(x, y) when the last step already computed it
    kind: str  # what the last step was: "start", "gradient" or "gradientless"


def search_radii(r: float, R: float) -> list[float]:
    """The radii ``2^i r`` for ``i = 1..round(log2(R / r))``, the largest being ~R."""
    check_positive("r", r)
    check_positive("R", R)
    if not r < R:
        raise ValueError(f"r must be smaller than R (the radii run from r to R), got r={r}, R={R}")
    count = max(1, round(math.log2(R / r)))
    return [r * 2**i for i in range(1, count + 1)]


def gradientless_step(
    oracle: Oracle,
    x: torch.Tensor,
    y: torch.Tensor,
    value: torch.Tensor | None,
    radii: list[float],
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One gradientless-descent step on y: the best of y and one Gaussian try per radius.

    A try at radius r_i is ``y + r_i * u / sqrt(ny)`` with ``u ~ N(0, I)``, so that r_i is
    its typical length. The tries are evaluated together (one batched call, counted as
    one function evaluation each); ``value`` is f(x, y) if already known, else it is
    evaluated (and counted) too.
    """
    ny = y.shape[0]
    noise = torch.randn(len(radii), ny, generator=generator, dtype=y.dtype).to(y.device)
    scales = torch.tensor(radii, dtype=y.dtype, device=y.device)[:, None] / math.sqrt(ny)
    tries = y + scales * noise
    if value is None:
        value = oracle.value(x, y)
    tried = oracle.value(x, tries)
    best = torch.argmin(tried)
    if tried[best] < value:
        return tries[best], tried[best]
    return y, value


def joint_descent(p: float = 0.5, r: float = 2**-4, R: float = 2.0, beta_x: float | None = None) -> Method:
    """Joint Descent: gradient steps on x w.p. p, gradientless steps on y otherwise.

    Args:
      p: probability of a gradient step, in (0, 1).
      r, R: smallest and largest search radius of the gradientless step (r < R); a
        gradientless step costs log2(R / r) function evaluations (+1 when f(x, y) is
        not already known).
      beta_x: smoothness of f in x; the problem's ``beta_x`` when None.

    Returns:
      A :class:`~hpolab.protocol.Method`.

    Example:
      >>> from hpolab import run, sphere
      >>> history = run(joint_descent(p=0.5), sphere(seed=0), iterations=200, seed=0)
      >>> history.final_objective < history.frame.objective.iloc[0]
      True
    """
    p = check_open_unit("p", p)
    radii = search_radii(r, R)
    if beta_x is not None:
        check_positive("beta_x", beta_x)

    def init(x0, y0, oracle, generator):
        return JointDescentState(x0, y0, None, "start")

    def update(state, oracle, generator):
        if torch.rand((), generator=generator) < p:
            _, grad = oracle.value_and_grad_x(state.x, state.y)
            step = beta_x or oracle.problem.beta_x
            return JointDescentState(state.x - grad / step, state.y, None, "gradient")
        y, value = gradientless_step(oracle, state.x, state.y, state.value, radii, generator)
        return JointDescentState(state.x, y, value, "gradientless")

    return Method("jd", init, update, {"p": p, "r": r, "R": R}, f"JD p={p:g}")
