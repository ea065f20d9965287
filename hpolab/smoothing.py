"""The zeroth-order gradient estimate shared by AJD, the zeroth-order baseline and HOZOG."""

from __future__ import annotations

import torch


def smoothed_gradient(base: torch.Tensor, values: torch.Tensor, directions: torch.Tensor, mu: float,
                      scale: float = 1.0) -> torch.Tensor:
    """``scale / (mu q) * sum_i (values_i - base) u_i`` for q directions u_i (rows of ``directions``).

    With u_i ~ N(0, I) and scale 1 it is unbiased for the gradient of the Gaussian-smoothed
    function ``f_mu(h) = E_u f(h + mu u)`` (since ``E[f(h) u] = 0``); with u_i uniform on the
    unit sphere and scale = dimension, for the gradient of f averaged over the ball of radius mu.
    """
    differences = (values - base).reshape(-1, *([1] * (directions.dim() - 1)))
    return scale / (mu * directions.shape[0]) * (differences * directions).sum(0)
