"""Accelerated Joint Descent (AJD), Algorithm 2 of the Joint Descent paper.

A Nesterov-style linear coupling of a gradient step and a mirror step, driven by a
stochastic estimate g of the gradient of the Gaussian-smoothed objective
``f_mu(x, y) = E_u f(x, y + mu u)``, u ~ N(0, I) (the paper's eta is our ``mu``):

    w      = (z + a v) / (1 + a)                          (line 4)
    z_next = w - h g(w)                                    (line 6)
    v_next = (1 - a) v + a w - c g(w)                      (line 6)

with ``h = 1 / (8 beta (ny + 4))``, ``theta = h^2 beta`` and ``a = sqrt(alpha theta)``
(line 1). The PDF prints the mirror step's coefficient as ``c = a``
(``v_coefficient="printed"``, the default); ``v_coefficient="nesterov"`` takes
``c = theta / a = a / alpha``, the coefficient of Nesterov's constant-step scheme, which
the printed one equals when alpha = 1. hpolab used the latter before issue 13; it is kept
as an option only: both converge on study 01's spheres (alpha = 2), with mean best objective
after 1000 evaluations at p = 0.5 (3 seeds) 0.108 printed against 1.19 on the sphere and
146 against 103 on the ill-conditioned one, so nothing measured argues for leaving the print.

The estimate (section 3.2): with probability p the x-gradient, otherwise the two-point
Gaussian-smoothing estimate in y, ``g^p``; the paper uses ``g = 2 g^0.5``, unbiased for
grad f_mu, and Theorem 4 rests on that. For p != 1/2 ``estimator="printed"`` keeps the
printed factor 2, ``g = 2 g^p``, whose mean is ``(2p grad_x f_mu, 2(1 - p) grad_y f_mu)``:
biased, which is what section 4.1's "p = 0.5 is crucial" is about. ``estimator="unbiased"``
(ours, not the paper's) weights the draws by 1/p and 1/(1 - p) instead, unbiased at every p.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from hpolab.oracle import Oracle
from hpolab.protocol import Method
from hpolab.smoothing import smoothed_gradient
from hpolab.validation import check_choice, check_open_unit, check_positive

AJD_ESTIMATES = ("printed", "unbiased")
V_COEFFICIENTS = ("printed", "nesterov")


class AcceleratedJointDescentState(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor
    vx: torch.Tensor  # the mirror sequence v, split like z = [x, y]
    vy: torch.Tensor
    kind: str


def estimate_weights(p: float, estimator: str = "printed") -> tuple[float, float]:
    """The factors on the x-gradient draw (probability p) and on the zeroth-order draw.

    ``"printed"``: ``(2, 2)``, the paper's ``g = 2 g^p``; ``"unbiased"``: ``(1/p, 1/(1-p))``.
    The two agree at p = 1/2.
    """
    check_choice("estimator", estimator, AJD_ESTIMATES)
    return (2.0, 2.0) if estimator == "printed" else (1.0 / p, 1.0 / (1.0 - p))


def joint_gradient(
    oracle: Oracle,
    x: torch.Tensor,
    y: torch.Tensor,
    p: float,
    mu: float,
    generator: torch.Generator,
    estimator: str = "printed",
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """A one-sample estimate (gx, gy) of grad f_mu(x, y).

    With probability p: ``(w_x grad_x f(x, y), 0)`` (one gradient evaluation); otherwise
    ``(0, w_y (f(x, y + mu u) - f(x, y)) / mu * u)`` with u ~ N(0, I) (two function
    evaluations), the weights ``(w_x, w_y)`` from :func:`estimate_weights`. Since
    ``E_u[(f(x, y + mu u) - f(x, y)) u] / mu = grad_y f_mu(x, y)``, the mean is
    ``(p w_x grad_x f_mu, (1 - p) w_y grad_y f_mu)`` wherever ``grad_x f`` is affine in y
    (quadratics, bilinear coupling), the setting of the paper's analysis.

    Returns:
      ``(gx, gy, kind)`` where kind is ``"gradient"`` or ``"zeroth-order"``.
    """
    weight_x, weight_y = estimate_weights(p, estimator)
    if torch.rand((), generator=generator) < p:
        _, grad = oracle.value_and_grad_x(x, y)
        return weight_x * grad, torch.zeros_like(y), "gradient"
    u = torch.randn(y.shape, generator=generator, dtype=y.dtype).to(y.device)
    values = oracle.value(x, torch.stack([y, y + mu * u]))
    return torch.zeros_like(x), weight_y * smoothed_gradient(values[0], values[1:], u[None], mu), "zeroth-order"


def unbiased_joint_gradient(oracle: Oracle, x: torch.Tensor, y: torch.Tensor, p: float, mu: float,
                            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, str]:
    """:func:`joint_gradient` with ``estimator="unbiased"``: unbiased for grad f_mu at every p."""
    return joint_gradient(oracle, x, y, p, mu, generator, "unbiased")


def coefficients(problem, step_scale: float = 1.0, v_coefficient: str = "printed") -> tuple[float, float, float]:
    """``(h, a, c)`` of Algorithm 2 for ``problem``: the step h (times ``step_scale``), the
    coupling a and the mirror step's coefficient c (see the module docstring)."""
    step = step_scale / (8 * problem.beta * (problem.ny + 4))
    theta = step**2 * problem.beta
    a = math.sqrt(problem.alpha * theta)
    return step, a, a if v_coefficient == "printed" else theta / a


def accelerated_joint_descent(p: float = 0.5, mu: float = 1e-3, step_scale: float = 1.0,
                              estimator: str = "printed", v_coefficient: str = "printed") -> Method:
    """Accelerated Joint Descent (Algorithm 2).

    Args:
      p: probability that the estimate is an x-gradient, in (0, 1); 0.5 is the paper's.
      mu: Gaussian smoothing radius of the zeroth-order part (the paper's eta), > 0.
      step_scale: the step h as a multiple of the paper's ``1 / (8 beta (ny + 4))``, a
        worst-case constant; theta and a follow from h as ``theta = h^2 beta`` and
        ``a = sqrt(alpha theta)``.
      estimator: ``"printed"`` (``g = 2 g^p``, the paper's; unbiased only at p = 1/2) or
        ``"unbiased"`` (weights 1/p and 1/(1 - p); ours).
      v_coefficient: ``"printed"`` (the mirror step ``- a g``, as the PDF prints it) or
        ``"nesterov"`` (``- (theta / a) g``).

    Returns:
      A :class:`~hpolab.protocol.Method` whose state carries the mirror sequence v.
    """
    p = check_open_unit("p", p)
    mu = check_positive("mu", mu)
    step_scale = check_positive("step_scale", step_scale)
    check_choice("estimator", estimator, AJD_ESTIMATES)
    check_choice("v_coefficient", v_coefficient, V_COEFFICIENTS)

    def init(x0, y0, oracle, generator):
        return AcceleratedJointDescentState(x0, y0, x0.clone(), y0.clone(), "start")

    def update(state, oracle, generator):
        step, a, c = coefficients(oracle.problem, step_scale, v_coefficient)
        wx = (state.x + a * state.vx) / (1 + a)
        wy = (state.y + a * state.vy) / (1 + a)
        gx, gy, kind = joint_gradient(oracle, wx, wy, p, mu, generator, estimator)
        return AcceleratedJointDescentState(
            x=wx - step * gx,
            y=wy - step * gy,
            vx=(1 - a) * state.vx + a * wx - c * gx,
            vy=(1 - a) * state.vy + a * wy - c * gy,
            kind=kind,
        )

    config = {"p": p, "mu": mu, "step_scale": step_scale, "estimator": estimator, "v_coefficient": v_coefficient}
    label = f"AJD p={p:g}"
    extras = [f"step x{step_scale:g}"] if step_scale != 1.0 else []
    extras += ["unbiased"] if estimator == "unbiased" else []
    extras += ["nesterov v"] if v_coefficient == "nesterov" else []
    label += f" ({', '.join(extras)})" if extras else ""
    return Method("ajd", init, update, config, label)
