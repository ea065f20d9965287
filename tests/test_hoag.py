"""HOAG (Pedregosa 2016): inexact implicit hypergradients with a decreasing tolerance and warm starts."""

import pytest
import torch

from hpolab import run
from hpolab.hypergrad import box, implicit, schedule
from hpolab.hypergrad.task import logistic_regression_task
from hpolab.methods.hoag import EXACT_EPSILON, hoag, next_tolerance
from hpolab.problems.tuning import tuning_problem
from tasks import noisy_linear_labels


def setting(lambda0=-5.0):
    """Eq. 5 on 200 / 200 noisy linearly generated points in 20 dimensions: f has an interior minimum."""
    task = logistic_regression_task(*noisy_linear_labels(200))
    hyper = schedule(1, learn=("log_l2",), log_l2=lambda0)
    return task, hyper, box(hyper, {"log_l2": (-10.0, 10.0)})


def test_hoag_converges_to_where_the_exact_hypergradient_vanishes():
    task, hyper, limits = setting()
    history = run(hoag(task, hyper, limits), tuning_problem(task, hyper), 1500, seed=0)
    lam = float(history.frame["log_l2"].iloc[-1])
    exact = implicit()(task, hyper.replace(log_l2=torch.tensor(lam, dtype=torch.float64)), 0)
    assert abs(lam - (-5.0)) > 4  # it moved
    assert abs(float(exact.grad)) < 1e-3  # ~0.5 here; the hypergradient at -5 is ~ -0.9


def test_tolerances_decrease_as_the_code_does_and_warm_starts_make_late_iterations_cheap():
    task, hyper, limits = setting()
    frame = run(hoag(task, hyper, limits), tuning_problem(task, hyper), 600, seed=0).frame.iloc[1:]
    tolerances = frame["inner_tolerance"].to_numpy()
    assert tolerances == pytest.approx(tolerances[0] * 0.9 ** torch.arange(len(tolerances)).numpy(), rel=1e-12)
    per_iteration = frame["gradient_evaluations"].diff().dropna()
    first = int(frame["gradient_evaluations"].iloc[0])
    assert per_iteration.median() < first / 2  # warm started from the last solution


def test_each_row_holds_the_lambda_its_solve_ran_at_and_the_step_leads_to_the_next_row():
    """Row k's lambda is where its inner solution was found (row 1: the start), and row k's
    step (its step size times its hypergradient's norm) is what separates it from row k + 1."""
    task, hyper, limits = setting()
    frame = run(hoag(task, hyper, limits), tuning_problem(task, hyper), 300, seed=0).frame
    lam = frame["log_l2"].to_numpy()
    assert lam[0] == lam[1] == -5.0
    moved = abs(lam[2:] - lam[1:-1])
    step = (frame["step_size"] * frame["hypergradient_norm2"] ** 0.5).to_numpy()[1:-1]
    assert len(moved) >= 3 and moved == pytest.approx(step, rel=1e-9)


def test_quadratic_and_cubic_schedules_and_the_floor():
    assert next_tolerance(0.01, 0.01, 3, "quadratic", 0.9) == pytest.approx(0.01 / 9)
    assert next_tolerance(0.01, 0.01, 2, "cubic", 0.9) == pytest.approx(0.01 / 8)
    assert next_tolerance(0.01, 0.01, 5, "exponential", 0.9) == pytest.approx(0.009)
    assert next_tolerance(1e-12, 0.01, 5, "exponential", 0.5) == EXACT_EPSILON


def test_hoag_steps_stay_in_the_box_and_repeat_bit_for_bit():
    task, hyper, _ = setting(lambda0=-1.0)
    limits = box(hyper, {"log_l2": (-1.5, -0.5)})
    first = run(hoag(task, hyper, limits), tuning_problem(task, hyper), 200, seed=0).frame
    again = run(hoag(task, hyper, limits), tuning_problem(task, hyper), 200, seed=0).frame
    assert first["log_l2"].between(-1.5, -0.5).all()
    assert first["objective"].tolist() == again["objective"].tolist()


@pytest.mark.parametrize("settings, message", [
    ({"decrease": "linear"}, "decrease must be one of"),
    ({"factor": 1.0}, r"factor must be in \(0, 1\)"),
    ({"epsilon0": 0.0}, "epsilon0 must be a finite number > 0"),
    ({"seed": -1}, "seed must be an integer >= 0"),
])
def test_bad_hoag_settings_raise_value_error(settings, message):
    task, hyper, limits = setting()
    with pytest.raises(ValueError, match=message):
        hoag(task, hyper, limits, **settings)


def test_hoag_refuses_optimizer_hyperparameters():
    task, _, _ = setting()
    hyper = schedule(10, lr=0.1, learn=("lr",))
    with pytest.raises(ValueError, match="implicit differentiation applies to hyperparameters of the training loss"):
        hoag(task, hyper)
