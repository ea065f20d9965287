"""Every method on one table: convergence, repeatability, cost accounting, bad input."""

import math

import pandas as pd
import pytest
import torch

from hpolab import (
    Oracle,
    Problem,
    accelerated_joint_descent,
    alternating_bayesian,
    alternating_zeroth_order,
    joint_descent,
    make_method,
    run,
    sphere,
)
from hpolab.methods.joint_descent import gradientless_step, search_radii

# (factory, settings, evaluations, required reduction of f on the small quadratic)
CONVERGENCE = [
    pytest.param(joint_descent, {"p": 0.5}, 4000, 1e-3, id="jd-p0.5"),
    pytest.param(joint_descent, {"p": 0.3}, 4000, 1e-3, id="jd-p0.3"),
    pytest.param(accelerated_joint_descent, {"p": 0.5}, 4000, 1e-5, id="ajd-p0.5"),
    pytest.param(accelerated_joint_descent, {"p": 0.3}, 4000, 1e-5, id="ajd-p0.3"),
    pytest.param(alternating_zeroth_order, {}, 1500, 0.5, id="alt-zo"),
    pytest.param(alternating_bayesian, {}, 150, 0.5, id="alt-bo"),
]

ALL = [
    pytest.param(joint_descent, {"p": 0.5}, id="jd"),
    pytest.param(accelerated_joint_descent, {"p": 0.5}, id="ajd"),
    pytest.param(alternating_zeroth_order, {}, id="alt-zo"),
    pytest.param(alternating_bayesian, {}, id="alt-bo"),
]


def test_the_table_covers_every_registered_method():
    """A method added to the registry joins the table above (convergence, repeatability, cost)."""
    from hpolab.methods import METHODS

    assert {param.id for param in ALL} == set(METHODS)
    assert {param.values[0] for param in ALL} == set(METHODS.values())


@pytest.mark.parametrize("factory, settings, budget, reduction", CONVERGENCE)
def test_method_reduces_objective_on_random_quadratic(quadratic, factory, settings, budget, reduction):
    history = run(factory(**settings), quadratic, budget, seed=1)
    start = history.frame["objective"].iloc[0]
    assert history.status == "finished"
    assert history.best_objective < reduction * start


@pytest.mark.parametrize("factory, settings", ALL)
def test_identical_seeded_runs_give_identical_histories(quadratic, factory, settings):
    first = run(factory(**settings), quadratic, 80, seed=7).frame.drop(columns="wall_time")
    second = run(factory(**settings), quadratic, 80, seed=7).frame.drop(columns="wall_time")
    pd.testing.assert_frame_equal(first, second, check_exact=True)


@pytest.mark.parametrize("factory, settings", ALL)
def test_different_seeds_give_different_runs(quadratic, factory, settings):
    first = run(factory(**settings), quadratic, 80, seed=7).frame
    second = run(factory(**settings), quadratic, 80, seed=8).frame
    assert not first["objective"].equals(second["objective"])


@pytest.mark.parametrize("factory, settings", ALL)
def test_budget_is_spent_in_evaluations_and_counters_add_up(quadratic, factory, settings):
    history = run(factory(**settings), quadratic, 100, seed=0)
    frame = history.frame
    assert (frame["iteration"] == frame["gradient_evaluations"] + frame["function_evaluations"]).all()
    assert frame["iteration"].is_monotonic_increasing
    largest_step = len(search_radii(2**-10, 2**-5)) + 1  # joint_descent's default radii
    assert 100 <= history.iterations < 100 + largest_step


def test_gradientless_step_costs_one_evaluation_per_radius_plus_unknown_value(quadratic):
    oracle = Oracle(quadratic)
    x, y = quadratic.initial_point(torch.Generator().manual_seed(0))
    radii = search_radii(0.125, 2.0)
    _, value = gradientless_step(oracle, x, y, None, radii, torch.Generator().manual_seed(1))
    assert (oracle.function_evaluations, oracle.gradient_evaluations) == (len(radii) + 1, 0)
    gradientless_step(oracle, x, y, value, radii, torch.Generator().manual_seed(2))
    assert oracle.function_evaluations == 2 * len(radii) + 1


def test_gradientless_step_never_increases_objective(quadratic):
    oracle = Oracle(quadratic)
    generator = torch.Generator().manual_seed(0)
    x, y = quadratic.initial_point(generator)
    value = quadratic.objective(x, y)
    for _ in range(50):
        y, new = gradientless_step(oracle, x, y, None, search_radii(2**-4, 2.0), generator)
        assert new <= value * (1 + 1e-12)  # batched and single evaluations may differ in the last bit
        assert torch.allclose(new, quadratic.objective(x, y), rtol=1e-12, atol=0)
        value = new


def test_search_radii_double_from_2r_up_to_R():
    assert search_radii(0.25, 2.0) == [0.5, 1.0, 2.0]


def test_jd_gradient_step_solves_x_on_the_plain_sphere():
    problem = sphere(5, 3, seed=0)
    history = run(joint_descent(p=0.999), problem, 1, seed=0)
    oracle = Oracle(problem)
    x, y = problem.initial_point(torch.Generator().manual_seed(0))
    assert history.frame["kind"].iloc[1] == "gradient"
    # after one exact step only the y part of f remains: a gradient step cannot lower it further
    after = history.frame["objective"].iloc[1]
    _, grad = oracle.value_and_grad_x(x - oracle.value_and_grad_x(x, y)[1] / problem.beta_x, y)
    assert after < history.frame["objective"].iloc[0]
    assert grad.abs().max() < 1e-12


def test_alternating_restarts_x_and_asks_tuner_after_relative_convergence(quadratic):
    history = run(alternating_zeroth_order(), quadratic, 300, seed=0)
    kinds = history.frame["kind"]
    assert (kinds == "tune").sum() >= 2
    assert set(kinds.iloc[1:]) == {"gradient", "tune"}
    assert history.frame["function_evaluations"].iloc[-1] == 0  # training yields g(y) for free


def test_bayesian_baseline_first_trial_is_the_start_point(quadratic):
    generator = torch.Generator().manual_seed(4)
    x0, y0 = quadratic.initial_point(generator)
    state = alternating_bayesian().init(x0, y0, Oracle(quadratic), generator)
    assert torch.allclose(state.y, y0.clamp(*quadratic.y_bounds))


def test_diverging_run_stops_cleanly_and_keeps_its_steps(quadratic):
    history = run(joint_descent(p=0.9, beta=0.1), quadratic, 5000, seed=0)
    assert history.status == "diverged"
    assert "diverged at step" in history.message
    assert len(history.frame) > 2
    assert math.isfinite(history.frame["objective"].iloc[-2])
    assert history.iterations < 5000


def test_should_stop_ends_run_as_stopped(quadratic):
    calls = []
    history = run(joint_descent(), quadratic, 10_000, seed=0, should_stop=lambda: len(calls) > 5,
                  callback=calls.append)
    assert history.status == "stopped"
    assert len(history.frame) == len(calls) == 6  # the start and five steps


def test_histories_record_every_hyperparameter_column(quadratic):
    history = run(joint_descent(), quadratic, 30, seed=0)
    assert list(history.frame.columns[-quadratic.ny:]) == list(quadratic.hyperparameter_names)
    assert torch.allclose(torch.tensor(history.frame.iloc[-1][list(quadratic.hyperparameter_names)].to_numpy(float)),
                          torch.tensor(history.frame.iloc[-1][["y0", "y1", "y2", "y3"]].to_numpy(float)))


@pytest.mark.parametrize("p", [0.0, 1.0, -0.2, 1.5])
@pytest.mark.parametrize("factory", [joint_descent, accelerated_joint_descent])
def test_p_outside_open_unit_interval_is_rejected(factory, p):
    with pytest.raises(ValueError, match=r"p must lie in the open interval \(0, 1\)"):
        factory(p=p)


@pytest.mark.parametrize("r, R", [(2.0, 2.0), (4.0, 2.0)])
def test_r_not_below_R_is_rejected(r, R):
    with pytest.raises(ValueError, match="r must be smaller than R"):
        joint_descent(r=r, R=R)


@pytest.mark.parametrize("factory", [accelerated_joint_descent, alternating_zeroth_order])
@pytest.mark.parametrize("mu", [0.0, -1e-3, float("nan")])
def test_mu_not_positive_is_rejected(factory, mu):
    with pytest.raises(ValueError, match="mu must be a finite number > 0"):
        factory(mu=mu)


def test_negative_iterations_are_rejected(quadratic):
    with pytest.raises(ValueError, match="iterations must be an integer >= 0"):
        run(joint_descent(), quadratic, -1)


def test_unknown_method_is_rejected_with_the_known_ones():
    with pytest.raises(ValueError, match=r"method must be one of \['ajd', 'alt-bo', 'alt-zo', 'jd'\]"):
        make_method("sgd")


def test_problem_rejects_mismatched_hyperparameter_names():
    with pytest.raises(ValueError, match="hyperparameter_names"):
        Problem("bad", lambda x, y: x.sum(), 1, 2, lambda g: None, 1.0, 1.0, 1.0, (0.0, 1.0),
                hyperparameter_names=("a",))


# --- issue 13: the printed algorithms (each test fails on the code before it) -------------------

class Recording(Oracle):
    """An oracle that keeps every batch of points a method evaluates."""

    def __init__(self, problem):
        super().__init__(problem)
        self.batches = []

    def value(self, x, y):
        if y.dim() == 2:
            self.batches.append(y.clone())
        return super().value(x, y)


def test_jd_tries_have_the_printed_variance_r_i_per_coordinate():
    """Algorithm 1, line 5: g_i ~ N(0, r_i I), so each coordinate of a try varies by r_i
    (the old tries r_i u / sqrt(ny) varied by r_i^2 / ny)."""
    problem = sphere(3, 8, seed=0)
    oracle = Recording(problem)
    x, y = problem.initial_point(torch.Generator().manual_seed(0))
    radii = search_radii(2**-6, 2.0)
    generator = torch.Generator().manual_seed(1)
    for _ in range(400):
        gradientless_step(oracle, x, y, torch.tensor(-1.0), radii, generator)  # -1: no try is accepted
    offsets = torch.stack(oracle.batches) - y  # (steps, radii, ny)
    variance = offsets.var(dim=(0, 2))
    # 3200 draws per radius: the sample variance is within 10 % of the true one
    assert torch.allclose(variance, torch.tensor(radii, dtype=variance.dtype), rtol=0.1)


def test_jd_length_tries_keep_the_old_scale_as_a_named_option():
    problem = sphere(3, 8, seed=0)
    oracle = Recording(problem)
    x, y = problem.initial_point(torch.Generator().manual_seed(0))
    radii = search_radii(2**-2, 2.0)
    generator = torch.Generator().manual_seed(1)
    for _ in range(400):
        gradientless_step(oracle, x, y, torch.tensor(-1.0), radii, generator, try_scale="length")
    variance = (torch.stack(oracle.batches) - y).var(dim=(0, 2))
    assert torch.allclose(variance, torch.tensor(radii, dtype=variance.dtype) ** 2 / 8, rtol=0.1)
    with pytest.raises(ValueError, match="try_scale must be one of"):
        joint_descent(try_scale="ball")


def test_jd_gradient_step_is_one_over_beta_of_f(quadratic):
    """Algorithm 1, line 4: x - grad_x f / beta with beta the smoothness of f (not of its x block)."""
    assert quadratic.beta_x < 0.95 * quadratic.beta  # the two differ on this problem
    history = run(joint_descent(p=0.999), quadratic, 1, seed=0)
    x, y = quadratic.initial_point(torch.Generator().manual_seed(0))
    _, grad = Oracle(quadratic).value_and_grad_x(x, y)
    expected = float(quadratic.objective(x - grad / quadratic.beta, y))
    assert history.frame["objective"].iloc[1] == pytest.approx(expected, rel=1e-12)


def test_alternating_training_takes_the_same_gradient_step_as_jd(quadratic):
    generator = torch.Generator().manual_seed(0)
    x0, y0 = quadratic.initial_point(generator)
    oracle = Oracle(quadratic)
    method = alternating_zeroth_order()
    state = method.init(x0, y0, oracle, generator)
    after = method.update(state, oracle, generator)
    _, grad = Oracle(quadratic).value_and_grad_x(state.x, state.y)
    assert torch.allclose(after.x, state.x - grad / quadratic.beta, rtol=1e-12, atol=0)


def ajd_first_step(problem, p, seeds, **settings):
    """AJD's estimate g recovered from its first step: with v0 = z0 the coupling gives w = z0,
    so z1 = z0 - h g and v1 = z0 - c g."""
    method = accelerated_joint_descent(p=p, mu=0.5, **settings)
    h = 1 / (8 * problem.beta * (problem.ny + 4))  # Algorithm 2, line 1
    theta = h**2 * problem.beta
    a = math.sqrt(problem.alpha * theta)
    c = a if settings.get("v_coefficient", "printed") == "printed" else theta / a
    x0, y0 = problem.initial_point(torch.Generator().manual_seed(0))
    estimates, mirror = [], []
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        state = method.init(x0, y0, Oracle(problem), generator)
        nxt = method.update(state, Oracle(problem), generator)
        z0 = torch.cat([x0, y0])
        estimates.append((z0 - torch.cat([nxt.x, nxt.y])) / h)
        mirror.append(z0 - torch.cat([nxt.vx, nxt.vy]))
    return torch.stack(estimates), torch.stack(mirror), (h, a, c)


def test_ajd_default_estimate_is_the_printed_2_g_p_biased_away_from_p_half():
    """Algorithm 2 with g = 2 g^p: E g = (2p grad_x f, 2(1 - p) grad_y f) on a quadratic (where
    f_mu and f have the same gradient); the old default, weighted by 1/p and 1/(1 - p), was
    unbiased at every p."""
    problem = sphere(3, 4, ill_conditioned=True, seed=2)
    p = 0.2
    draws, _, _ = ajd_first_step(problem, p, range(1500))
    x0, y0 = problem.initial_point(torch.Generator().manual_seed(0))
    gradient = torch.func.grad(lambda z: problem.objective(z[:3], z[3:]))(torch.cat([x0, y0]))
    mean, error = draws.mean(0), draws.std(0) / math.sqrt(len(draws))
    biased = torch.cat([2 * p * gradient[:3], 2 * (1 - p) * gradient[3:]])
    assert ((mean - biased).abs() / error).max() < 4.5
    assert ((mean - gradient).abs() / error).max() > 10  # the unbiased mean is rejected


def test_ajd_unbiased_estimator_is_a_named_option():
    problem = sphere(3, 4, ill_conditioned=True, seed=2)
    draws, _, _ = ajd_first_step(problem, 0.2, range(1500), estimator="unbiased")
    x0, y0 = problem.initial_point(torch.Generator().manual_seed(0))
    gradient = torch.func.grad(lambda z: problem.objective(z[:3], z[3:]))(torch.cat([x0, y0]))
    mean, error = draws.mean(0), draws.std(0) / math.sqrt(len(draws))
    assert ((mean - gradient).abs() / error).max() < 4.5
    with pytest.raises(ValueError, match="estimator must be one of"):
        accelerated_joint_descent(estimator="exact")


def test_ajd_estimators_agree_at_p_half():
    problem = sphere(3, 4, seed=1)
    printed, _, _ = ajd_first_step(problem, 0.5, range(20))
    unbiased, _, _ = ajd_first_step(problem, 0.5, range(20), estimator="unbiased")
    assert torch.equal(printed, unbiased)


def test_ajd_mirror_step_has_the_printed_coefficient_a():
    """Algorithm 2, line 6: v_next = (1 - a) v + a w - a g (the old code used theta / a)."""
    problem = sphere(3, 4, ill_conditioned=True, seed=2)
    draws, mirror, (_, a, _) = ajd_first_step(problem, 0.5, range(3))
    assert problem.alpha != 1  # where a and theta / a = a / alpha differ
    assert torch.allclose(mirror, a * draws, rtol=1e-9, atol=1e-12)
    draws, mirror, (_, a, _) = ajd_first_step(problem, 0.5, range(3), v_coefficient="nesterov")
    assert torch.allclose(mirror, a / problem.alpha * draws, rtol=1e-9, atol=1e-12)
