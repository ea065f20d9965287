"""AJD's estimate is unbiased for the gradient of the Gaussian-smoothed objective.

On f(x, y) = |x|^2 / 2 + x^T B y + sum_i cos(y_i), smoothing in y gives exactly
grad_x f_mu = x + B y and grad_y f_mu = B^T x - exp(-mu^2 / 2) sin(y), which differs from
grad_y f: the test can tell the smoothed gradient from the plain one.
"""

import math

import pytest
import torch

from hpolab import Oracle, Problem
from hpolab.methods.accelerated_joint_descent import unbiased_joint_gradient

SAMPLES = 20_000
MU = 0.8


def coupled_problem(nx=3, ny=4):
    B = torch.linspace(-1, 1, nx * ny, dtype=torch.float64).reshape(nx, ny)

    def objective(x, y):
        return 0.5 * (x**2).sum() + x @ B @ y + torch.cos(y).sum()

    problem = Problem("coupled", objective, nx, ny, lambda g: None, 1.0, 1.0, 1.0, (-3.0, 3.0))
    return problem, B


def sample_mean_and_error(oracle, x, y, p, mu, samples, seed=0):
    generator = torch.Generator().manual_seed(seed)
    draws = torch.stack([torch.cat(unbiased_joint_gradient(oracle, x, y, p, mu, generator)[:2]) for _ in range(samples)])
    return draws.mean(0), draws.std(0) / math.sqrt(samples)


@pytest.mark.parametrize("p", [0.5, 0.3, 0.8])
def test_estimate_is_unbiased_for_smoothed_gradient(p):
    problem, B = coupled_problem()
    x = torch.tensor([0.3, -0.5, 1.0], dtype=torch.float64)
    y = torch.tensor([0.4, 1.1, -0.7, 2.0], dtype=torch.float64)
    smoothed = torch.cat([x + B @ y, B.T @ x - math.exp(-MU**2 / 2) * torch.sin(y)])
    plain = torch.cat([x + B @ y, B.T @ x - torch.sin(y)])

    mean, error = sample_mean_and_error(Oracle(problem), x, y, p, MU, SAMPLES)

    assert ((mean - smoothed).abs() / error).max() < 4.5  # every coordinate within 4.5 standard errors
    assert ((mean - plain).abs() / error).max() > 10  # and clearly not the unsmoothed gradient


def test_estimate_without_probability_correction_is_detectably_biased():
    """The power check: JD's plain coin-flip direction (no 1/p, 1/(1-p)) fails the same test."""
    problem, B = coupled_problem()
    x = torch.tensor([0.3, -0.5, 1.0], dtype=torch.float64)
    y = torch.tensor([0.4, 1.1, -0.7, 2.0], dtype=torch.float64)
    smoothed = torch.cat([x + B @ y, B.T @ x - math.exp(-MU**2 / 2) * torch.sin(y)])
    p = 0.3
    mean, error = sample_mean_and_error(Oracle(problem), x, y, p, MU, SAMPLES)
    biased_mean = torch.cat([mean[:3] * p, mean[3:] * (1 - p)])
    assert ((biased_mean - smoothed).abs() / error).max() > 10


def test_estimate_costs_one_gradient_or_two_function_evaluations():
    problem, _ = coupled_problem()
    oracle = Oracle(problem)
    generator = torch.Generator().manual_seed(0)
    x, y = torch.zeros(3, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    kinds = [unbiased_joint_gradient(oracle, x, y, 0.5, MU, generator)[2] for _ in range(200)]
    assert oracle.gradient_evaluations == kinds.count("gradient")
    assert oracle.function_evaluations == 2 * kinds.count("zeroth-order")
    assert 70 < kinds.count("gradient") < 130
