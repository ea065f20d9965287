"""Black-box tuning baselines (random search, GP-BO, Hyperband, BOHB) on the core protocol."""

import math

import pandas as pd
import pytest
import torch

from hpolab import run
from hpolab.hypergrad import box, schedule, train
from hpolab.methods.blackbox import (BLACKBOX_METHODS, blackbox_search, make_blackbox, rung_steps,
                                     search_space)
from hpolab.problems.tuning import tuning_problem
from tasks import small_classification_task

T = 40
TRIAL = T + 1  # a full trial: T training steps and one validation loss
KINDS = {"trial", "pruned trial", "diverged trial"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The model is tiny: one thread is faster, and immune to a busy machine's other jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def inner():
    return small_classification_task()


@pytest.fixture(scope="module")
def hyper():
    return schedule(T, lr=0.05, momentum=0.5, learn=("lr", "momentum"))


@pytest.fixture(scope="module")
def limits(hyper):
    return box(hyper, {"lr": (1e-3, 1.0), "momentum": (0.0, 0.95)})


def search(inner, hyper, method, budget, seed=0):
    return run(method, tuning_problem(inner, hyper), iterations=budget, seed=seed)


@pytest.mark.parametrize("name", sorted(BLACKBOX_METHODS))
def test_every_preset_improves_on_its_first_trial_inside_the_box(inner, hyper, limits, name):
    history = search(inner, hyper, make_blackbox(name, inner, hyper, limits), 12 * TRIAL)
    frame = history.frame
    trials = frame.iloc[1:]
    assert history.status == "finished" and history.method == name
    assert set(trials["kind"]) <= KINDS and len(trials) >= 12
    assert frame["best_objective"].iloc[-1] < trials["objective"].iloc[0]
    assert trials["lr"].between(1e-3, 1.0).all() and trials["momentum"].between(0.0, 0.95).all()
    assert frame["iteration"].iloc[-1] >= 12 * TRIAL


def test_trials_are_charged_the_training_steps_they_took(inner, hyper, limits):
    history = search(inner, hyper, make_blackbox("random-search", inner, hyper, limits), 5 * TRIAL)
    steps = history.frame[["gradient_evaluations", "function_evaluations"]].diff().iloc[1:]
    assert (steps["gradient_evaluations"] == T).all() and (steps["function_evaluations"] == 1).all()
    assert history.frame["function_evaluations"].iloc[0] == 1  # the untrained loss, divergence's reference


def test_hyperband_cuts_trials_short_at_its_rungs_and_charges_only_their_steps(inner, hyper, limits):
    method = make_blackbox("hyperband", inner, hyper, limits)  # min_steps = T // 9 = 4: rungs at 4 and 12
    assert method.config["min_steps"] == 4 and rung_steps(T, 4) == {4, 12}
    frame = search(inner, hyper, method, 20 * TRIAL).frame
    trials, spent = frame.iloc[1:], frame[["gradient_evaluations", "function_evaluations"]].diff().iloc[1:]
    assert (spent["gradient_evaluations"] == trials["trial_steps"]).all()
    pruned = trials[trials["kind"] == "pruned trial"]
    assert len(pruned) >= 3 and set(pruned["trial_steps"]) <= {4, 12}
    full = trials["kind"] == "trial"
    assert full.any() and (trials.loc[full, "trial_steps"] == T).all()
    # a validation loss at each rung passed, and one at the end of a full trial
    rungs_seen = trials["trial_steps"].map(lambda s: sum(r <= s for r in (4, 12)))
    assert (spent["function_evaluations"] == rungs_seen + full).all()
    assert (pruned["objective"] == pruned["trial_value"]).all()  # Optuna keeps the last reported loss


@pytest.mark.parametrize("name, budget", [("bayesian", 12 * TRIAL), ("bohb", 30 * TRIAL)])
def test_a_seeded_search_repeats_bit_for_bit(inner, hyper, limits, name, budget):
    # budgets past the samplers' 10 random start-up trials (for BOHB: per Hyperband bracket)
    first, second = (search(inner, hyper, make_blackbox(name, inner, hyper, limits), budget).frame
                     for _ in range(2))
    pd.testing.assert_frame_equal(first.drop(columns="wall_time"), second.drop(columns="wall_time"))
    assert len(first) > (40 if name == "bohb" else 12)
    other = search(inner, hyper, make_blackbox(name, inner, hyper, limits), 3 * TRIAL, seed=1).frame
    assert not other["lr"].iloc[1:4].equals(first["lr"].iloc[1:4])


def test_a_fixed_training_seed_is_shared_by_all_trials(inner, hyper, limits):
    method = blackbox_search(inner, hyper, limits, seed=3)
    frame = search(inner, hyper, method, 3 * TRIAL).frame
    point = torch.tensor(frame[["lr", "momentum"]].iloc[2].to_numpy())
    again = inner.val_loss(train(inner, hyper.with_flat(point), 3).theta)
    assert float(again) == frame["objective"].iloc[2]
    assert method.config["trial_seed"] == 3 and method.name == "random-search"


def test_diverging_trials_are_marked_and_the_search_goes_on(inner, hyper):
    wide = box(hyper, {"lr": (1e-3, 1e3), "momentum": (0.0, 0.95)})
    for name in ("random-search", "bohb"):
        history = search(inner, hyper, make_blackbox(name, inner, hyper, wide), 4 * TRIAL)
        frame = history.frame
        diverged = frame[frame["kind"] == "diverged trial"]
        assert history.status == "finished" and len(diverged) >= 5
        assert diverged.index[0] < frame.index[-1]  # trials came after it
        untrained = frame["objective"].iloc[0]  # x0's validation loss: a diverged trial keeps x0
        assert (diverged["objective"] == untrained).all() and (diverged["trial_steps"] < T).all()
        assert (diverged["trial_value"] >= untrained).all()  # told no better than not training
        assert frame["objective"].map(math.isfinite).all()
        assert diverged["lr"].between(1e-3, 1e3).all()


def test_log_scale_and_search_space(hyper, limits):
    space = search_space(hyper, limits, ("lr",))
    assert list(space) == ["lr", "momentum"]
    assert space["lr"].log and not space["momentum"].log
    assert (space["lr"].low, space["lr"].high) == (1e-3, 1.0)


def test_log_scale_samples_small_learning_rates(inner, hyper, limits):
    method = make_blackbox("random-search", inner, hyper, limits, log=("lr",))
    frame = search(inner, hyper, method, 8 * TRIAL).frame.iloc[1:]
    assert frame["lr"].between(1e-3, 1.0).all() and (frame["lr"] < 0.03).any()


def test_bad_settings_raise_errors_naming_the_parameter(inner, hyper, limits):
    with pytest.raises(ValueError, match=r"black-box method must be one of \['bayesian', 'bohb', 'hyperband'"):
        make_blackbox("smac", inner, hyper, limits)
    with pytest.raises(ValueError, match="sampler must be one of"):
        blackbox_search(inner, hyper, limits, sampler="cmaes")
    with pytest.raises(ValueError, match="pruner must be one of"):
        blackbox_search(inner, hyper, limits, pruner="median")
    with pytest.raises(ValueError, match="momentum ranges over"):
        blackbox_search(inner, hyper, box(hyper, {"lr": (1e-3, 1.0)}))
    with pytest.raises(ValueError, match="limits must bound every learned hyperparameter"):
        blackbox_search(inner, hyper, None)
    with pytest.raises(ValueError, match="log names"):
        blackbox_search(inner, hyper, limits, log=("weight_decay",))
    with pytest.raises(ValueError, match="low > 0.*momentum"):
        blackbox_search(inner, hyper, limits, log=("momentum",))
    with pytest.raises(ValueError, match="min_steps must be <= T / 3"):
        blackbox_search(inner, hyper, limits, pruner="hyperband", min_steps=20)
    with pytest.raises(ValueError, match="min_steps.*needs pruner='hyperband'"):
        blackbox_search(inner, hyper, limits, min_steps=4)


def test_train_stops_when_on_step_asks_and_reports_the_steps_taken(inner, hyper):
    seen = []

    def on_step(t, theta):
        seen.append((t, theta.shape))
        return t == 6

    stopped = train(inner, hyper, 0, on_step=on_step)
    assert stopped.steps == 7 and not stopped.diverged and "7 of 40" in stopped.message
    assert [t for t, _ in seen] == list(range(7)) and seen[0][1] == (inner.init(0).numel(),)
    short = train(inner, schedule(7, lr=0.05, momentum=0.5, learn=("lr", "momentum")), 0)
    assert torch.equal(stopped.theta, short.theta)  # the same first 7 steps
    full = train(inner, hyper, 0, on_step=lambda t, theta: False)
    assert full.steps == T and torch.equal(full.theta, train(inner, hyper, 0).theta) and full.message == ""
