"""Accelerated Joint Descent (AJD), Algorithm 2 of the Joint Descent paper.

A Nesterov-style linear coupling of a gradient step and a mirror step, driven by an
estimate g of the gradient of the Gaussian-smoothed objective
``f_mu(x, y) = E_u f(x, y + mu u)``, u ~ N(0, I):

    w      = (z + a v) / (1 + a)
    z_next = w - h g(w)
    v_next = (1 - a) v + a w - (theta / a) g(w)

with ``h = 1 / (8 beta (ny + 4))``, ``theta = h^2 beta`` and ``a = sqrt(alpha theta)``.
(The PDF's last term reads ``a g``; ``theta / a = a / alpha`` is what makes the scheme
reduce to Nesterov's constant-step method for h = 1/beta, so that is what is used.)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from hpolab.oracle import Oracle
from hpolab.protocol import Method
from hpolab.smoothing import smoothed_gradient
from hpolab.validation import check_open_unit, check_positive


class AcceleratedJointDescentState(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor
    vx: torch.Tensor  # the mirror sequence v, split like z = [x, y]
    vy: torch.Tensor
    kind: str


def unbiased_joint_gradient(
    oracle: Oracle,
    x: torch.Tensor,
    y: torch.Tensor,
    p: float,
    mu: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """A one-sample estimate (gx, gy) of grad f_mu(x, y), unbiased for every p in (0, 1).

    With probability p: ``(grad_x f(x, y) / p, 0)`` (one gradient evaluation); otherwise
    ``(0, (f(x, y + mu u) - f(x, y)) / mu * u / (1 - p))`` with u ~ N(0, I) (two function
    evaluations). Since ``E_u[(f(x, y + mu u) - f(x, y)) u] / mu = grad_y f_mu(x, y)``,
    the y part is unbiased for the smoothed gradient exactly; the x part is unbiased for
    ``grad_x f_mu`` wherever ``grad_x f`` is affine in y (quadratics, bilinear coupling),
    the setting of the paper's analysis. p = 1/2 is the paper's ``g_eta = 2 g_eta^0.5``.

    Returns:
      ``(gx, gy, kind)`` where kind is ``"gradient"`` or ``"zeroth-order"``.
    """
    if torch.rand((), generator=generator) < p:
        _, grad = oracle.value_and_grad_x(x, y)
        return grad / p, torch.zeros_like(y), "gradient"
    u = torch.randn(y.shape, generator=generator, dtype=y.dtype).to(y.device)
    values = oracle.value(x, torch.stack([y, y + mu * u]))
    return torch.zeros_like(x), smoothed_gradient(values[0], values[1:], u[None], mu) / (1 - p), "zeroth-order"


def accelerated_joint_descent(p: float = 0.5, mu: float = 1e-3, step_scale: float = 1.0) -> Method:
    """Accelerated Joint Descent with the unbiased estimate of probability p.

    Args:
      p: probability that the estimate is an x-gradient, in (0, 1); 0.5 is the paper's.
      mu: Gaussian smoothing radius of the zeroth-order part, > 0.
      step_scale: the step h as a multiple of the paper's ``1 / (8 beta (ny + 4))``, a
        worst-case constant; theta and a follow from h as ``theta = h^2 beta`` and
        ``a = sqrt(alpha theta)``. Large multiples diverge when p is far from 1/2 (the
        estimate's variance grows like 1/p and 1/(1 - p)).

    Returns:
      A :class:`~hpolab.protocol.Method` whose state carries the mirror sequence v.
    """
    p = check_open_unit("p", p)
    mu = check_positive("mu", mu)
    step_scale = check_positive("step_scale", step_scale)

    def coefficients(problem):
        step = step_scale / (8 * problem.beta * (problem.ny + 4))
        theta = step**2 * problem.beta
        return step, theta, math.sqrt(problem.alpha * theta)

    def init(x0, y0, oracle, generator):
        return AcceleratedJointDescentState(x0, y0, x0.clone(), y0.clone(), "start")

    def update(state, oracle, generator):
        step, theta, a = coefficients(oracle.problem)
        wx = (state.x + a * state.vx) / (1 + a)
        wy = (state.y + a * state.vy) / (1 + a)
        gx, gy, kind = unbiased_joint_gradient(oracle, wx, wy, p, mu, generator)
        return AcceleratedJointDescentState(
            x=wx - step * gx,
            y=wy - step * gy,
            vx=(1 - a) * state.vx + a * wx - (theta / a) * gx,
            vy=(1 - a) * state.vy + a * wy - (theta / a) * gy,
            kind=kind,
        )

    config = {"p": p, "mu": mu, "step_scale": step_scale}
    label = f"AJD p={p:g}" if step_scale == 1.0 else f"AJD p={p:g} step x{step_scale:g}"
    return Method("ajd", init, update, config, label)
