"""Joint Descent (JD), Algorithm 1 of "Joint Descent: Training and Tuning Simultaneously".

Each iteration flips a coin: with probability p a gradient step on the training variables,
``x <- x - grad_x f(x, y) / beta`` (line 4; beta is the smoothness of f); otherwise a
gradientless step on the hyperparameters (line 5, Golovin et al., 2019): for the radii
``r_i = 2^i r``, ``i = 1..log2(R/r)``, draw ``g_i ~ N(0, r_i I)`` and keep the best of
``{y} U {y + g_i}``.

The printed ``N(0, r_i I)`` makes r_i the *variance* of each coordinate of a try (its
standard deviation is sqrt(r_i), its length about sqrt(r_i ny)); that is the default,
``try_scale="printed"``. ``try_scale="length"`` is what hpolab used before issue 13: a try
``r_i u / sqrt(ny)``, u ~ N(0, I), whose typical length is r_i (Golovin et al.'s ball
radius). It is kept as a named option so the studies can show both, never as a default:
in study 01's radius sweep the best printed radii score 3.55 against 4.10 for the old
tries (geometric mean of JD's best objective over p and both spheres, lower is better).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from hpolab.oracle import Oracle
from hpolab.protocol import Method
from hpolab.validation import check_choice, check_open_unit, check_positive

TRY_SCALES = ("printed", "length")
RADII = (2**-10, 2**-5)  # (r, R): the paper gives none; study 01's radius sweep picked these (joint_descent)


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


def try_deviations(radii: list[float], ny: int, try_scale: str = "printed") -> list[float]:
    """The standard deviation of each coordinate of the try at each radius.

    ``"printed"``: ``g_i ~ N(0, r_i I)``, so sqrt(r_i); ``"length"``: ``r_i / sqrt(ny)``,
    a try whose typical length is r_i.
    """
    check_choice("try_scale", try_scale, TRY_SCALES)
    if try_scale == "printed":
        return [math.sqrt(r) for r in radii]
    return [r / math.sqrt(ny) for r in radii]


def gradientless_step(
    oracle: Oracle,
    x: torch.Tensor,
    y: torch.Tensor,
    value: torch.Tensor | None,
    radii: list[float],
    generator: torch.Generator,
    try_scale: str = "printed",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One gradientless-descent step on y: the best of y and one Gaussian try per radius.

    The try at radius r_i is ``y + g_i`` with ``g_i ~ N(0, r_i I)`` (``try_scale="printed"``,
    Algorithm 1 line 5) or ``y + r_i u / sqrt(ny)`` (``"length"``). The tries are evaluated
    together (one batched call, counted as one function evaluation each); ``value`` is
    f(x, y) if already known, else it is evaluated (and counted) too.
    """
    ny = y.shape[0]
    noise = torch.randn(len(radii), ny, generator=generator, dtype=y.dtype).to(y.device)
    scales = torch.tensor(try_deviations(radii, ny, try_scale), dtype=y.dtype, device=y.device)[:, None]
    tries = y + scales * noise
    if value is None:
        value = oracle.value(x, y)
    tried = oracle.value(x, tries)
    best = torch.argmin(tried)
    if tried[best] < value:
        return tries[best], tried[best]
    return y, value


def joint_descent(p: float = 0.5, r: float = RADII[0], R: float = RADII[1], beta: float | None = None,
                  try_scale: str = "printed") -> Method:
    """Joint Descent: gradient steps on x w.p. p, gradientless steps on y otherwise.

    Args:
      p: probability of a gradient step, in (0, 1).
      r, R: smallest and largest search radius of the gradientless step (r < R); a
        gradientless step costs log2(R / r) function evaluations (+1 when f(x, y) is
        not already known). The paper gives none; the defaults are study 01's pick
        (:func:`hpolab.studies.jd_sphere.radius_sweep`): per-coordinate spreads 0.044 to 0.18.
      beta: the gradient step is ``x -= grad_x f / beta``; None takes the problem's
        ``beta``, the smoothness of f (Algorithm 1, line 4).
      try_scale: ``"printed"`` (tries ``N(0, r_i I)``) or ``"length"`` (tries of typical
        length r_i); see :func:`try_deviations`.

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
    if beta is not None:
        check_positive("beta", beta)
    check_choice("try_scale", try_scale, TRY_SCALES)

    def init(x0, y0, oracle, generator):
        return JointDescentState(x0, y0, None, "start")

    def update(state, oracle, generator):
        if torch.rand((), generator=generator) < p:
            _, grad = oracle.value_and_grad_x(state.x, state.y)
            step = beta or oracle.problem.beta
            return JointDescentState(state.x - grad / step, state.y, None, "gradient")
        y, value = gradientless_step(oracle, state.x, state.y, state.value, radii, generator, try_scale)
        return JointDescentState(state.x, y, value, "gradientless")

    config = {"p": p, "r": r, "R": R, "try_scale": try_scale}
    label = f"JD p={p:g}" if try_scale == "printed" else f"JD p={p:g} ({try_scale} tries)"
    return Method("jd", init, update, config, label)
