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
    largest_step = len(search_radii(2**-4, 2.0)) + 1
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
    history = run(joint_descent(p=0.9, beta_x=0.1), quadratic, 5000, seed=0)
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
