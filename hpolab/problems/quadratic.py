"""The sphere and the ill-conditioned sphere of the Joint Descent paper (section 4.1).

f(x, y) = (z - c)^T Q^T S Q (z - c) with z = [x, y], a random rotation Q of the joint
space (so training variables and hyperparameters interact), a random shift c, and
S = I (sphere) or S = diag(s_1..s_n) with s_i linear from 1 to n (ill-conditioned).
"""

from __future__ import annotations

import torch

from hpolab.problems.base import Problem

SHIFT_RANGE = 1.0  # c is uniform in [-1, 1]^n
Y_BOUNDS = (-3.0, 3.0)  # the box a black-box tuner searches; contains every c_y


def random_rotation(n: int, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """A Haar-distributed orthogonal n x n matrix (QR of a Gaussian, signs fixed)."""
    gaussian = torch.randn(n, n, generator=generator, dtype=dtype)
    q, r = torch.linalg.qr(gaussian)
    return q * torch.sign(torch.diagonal(r))


def sphere(
    nx: int = 30,
    ny: int = 32,
    *,
    ill_conditioned: bool = False,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> Problem:
    """A randomly rotated and shifted (ill-conditioned) sphere; its minimum is 0 at z = c.

    The instance (rotation, shift and the random start it hands out) is drawn from
    ``seed`` on the CPU, then moved to ``device``, so a seed means the same problem on
    every device.

    Example:
      >>> problem = sphere(ill_conditioned=True, seed=1)
      >>> x0, y0 = problem.initial_point(torch.Generator().manual_seed(1))
      >>> float(problem.objective(x0, y0)) > 0
      True
    """
    if nx < 1 or ny < 1:
        raise ValueError(f"nx and ny must be >= 1, got nx={nx}, ny={ny}")
    n = nx + ny
    generator = torch.Generator().manual_seed(seed)
    rotation = random_rotation(n, generator, dtype)
    shift = (2 * torch.rand(n, generator=generator, dtype=dtype) - 1) * SHIFT_RANGE
    scales = torch.linspace(1, n, n, dtype=dtype) if ill_conditioned else torch.ones(n, dtype=dtype)
    hessian = 2 * rotation.T @ torch.diag(scales) @ rotation
    beta_x = float(torch.linalg.eigvalsh(hessian[:nx, :nx]).max())

    rotation, shift, scales = (t.to(device) for t in (rotation, shift, scales))

    def objective(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        rotated = rotation @ (torch.cat([x, y]) - shift)
        return (scales * rotated**2).sum()

    def initial_point(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        z0 = torch.randn(n, generator=gen, dtype=dtype).to(device)
        return z0[:nx], z0[nx:]

    return Problem(
        name="ill-conditioned sphere" if ill_conditioned else "sphere",
        objective=objective,
        nx=nx,
        ny=ny,
        initial_point=initial_point,
        beta_x=beta_x,
        beta=2 * float(scales.max()),
        alpha=2 * float(scales.min()),
        y_bounds=Y_BOUNDS,
        optimum=0.0,
    )
