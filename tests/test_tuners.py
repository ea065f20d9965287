"""Every registered tuner of training runs on one table (as tests/test_methods.py does for the
methods): each runs through hpolab.run on the same small tuning problem, repeats bit for bit
under a seed, counts its cost consistently, and finds hyperparameters whose training ends at a
lower validation loss than training at the start's does."""

import pandas as pd
import pytest
import torch

from hpolab import run
from hpolab.hypergrad import box, schedule, train
from hpolab.hypergrad.task import logistic_regression_task
from hpolab.methods import TUNERS, make_tuner
from hpolab.problems.tuning import tuning_problem
from tasks import noisy_linear_labels

# (name, settings, budget in evaluations): a budget of a few trainings or outer steps each
TABLE = [
    pytest.param("hypergradient", {"lr": 2.0}, 8 * 41, id="hypergradient"),
    pytest.param("fds", {"gamma": 0.5}, 8 * 41, id="fds"),
    pytest.param("hoag", {}, 300, id="hoag"),
    pytest.param("stn", {"sigma": 0.5, "lr": 0.05, "hyper_lr": 0.1, "train_steps": 10}, 8 * 41, id="stn"),
    pytest.param("random-search", {"seed": 3}, 8 * 41, id="random-search"),
    pytest.param("bayesian", {"seed": 3}, 8 * 41, id="bayesian"),
    pytest.param("hyperband", {"seed": 3, "min_steps": 10}, 8 * 41, id="hyperband"),
    pytest.param("bohb", {"seed": 3, "min_steps": 10}, 8 * 41, id="bohb"),
]


def setting():
    """L2-regularized logistic regression (log lambda learned from -2) on noisy points in
    20 dimensions, trained by 40 gradient steps of 0.01: the validation loss has an interior minimum."""
    task = logistic_regression_task(*noisy_linear_labels(100))
    hyper = schedule(40, lr=0.01, learn=("log_l2",), log_l2=-2.0)
    return task, hyper, box(hyper, {"log_l2": (-6.0, 3.0)})


def tuned(name, settings, budget, seed=0):
    task, hyper, limits = setting()
    return run(make_tuner(name, task, hyper, limits, **settings), tuning_problem(task, hyper), budget, seed=seed)


def test_the_table_covers_every_registered_tuner():
    assert {param.id for param in TABLE} == set(TUNERS)


@pytest.mark.parametrize("name, settings, budget", TABLE)
def test_tuner_finishes_and_lowers_the_validation_loss(name, settings, budget):
    """Row 0 is the untrained start (66.6); the bar is the best of five trainings at the start's
    log lambda (42.59; the tuned optimum near 0 gives about 41.8)."""
    task, hyper, _ = setting()
    at_start = min(float(task.val_loss(train(task, hyper, seed).theta)) for seed in range(5))
    history = tuned(name, settings, budget)
    assert history.status == "finished", history.message
    assert len(history.frame) >= 3 and history.frame["log_l2"].iloc[1:].between(-6.0, 3.0).all()
    assert history.best_objective < at_start - 0.25


@pytest.mark.parametrize("name, settings, budget", TABLE)
def test_tuner_repeats_bit_for_bit_under_a_seed(name, settings, budget):
    first = tuned(name, settings, budget // 2).frame.drop(columns="wall_time")
    second = tuned(name, settings, budget // 2).frame.drop(columns="wall_time")
    pd.testing.assert_frame_equal(first, second, check_exact=True)


@pytest.mark.parametrize("name, settings, budget", TABLE)
def test_tuner_counts_its_cost_in_the_papers_units(name, settings, budget):
    frame = tuned(name, settings, budget // 2).frame
    assert (frame["iteration"] == frame["gradient_evaluations"] + frame["function_evaluations"]).all()
    assert frame["iteration"].is_monotonic_increasing and frame["iteration"].iloc[-1] >= budget // 2


@pytest.mark.parametrize("name, settings", [
    ("hypergradient", {"lr": 2.0}), ("fds", {"gamma": 0.5}), ("random-search", {}), ("bayesian", {})])
def test_each_row_holds_the_hyperparameters_its_training_ran_with(name, settings):
    """A row is one training: retraining at the row's log lambda (with the tuner's fixed
    training seed) gives the row's validation loss, for the gradient tuners (whose update
    moves lambda after the training) as for the black-box ones."""
    task, hyper, limits = setting()
    frame = run(make_tuner(name, task, hyper, limits, seed=11, **settings), tuning_problem(task, hyper),
                5 * 41, seed=0).frame
    assert len(frame) >= 5 and frame["log_l2"].iloc[1:].nunique() >= 3
    for _, row in frame.iloc[1:].iterrows():
        retrained = train(task, hyper.with_flat(torch.tensor([row["log_l2"]], dtype=torch.float64)), 11)
        assert float(task.val_loss(retrained.theta)) == pytest.approx(row["objective"], rel=1e-9)


def test_unknown_tuner_is_rejected_with_the_known_ones():
    task, hyper, limits = setting()
    with pytest.raises(ValueError, match="tuner.*hoag"):
        make_tuner("grid", task, hyper, limits)
