"""Gradient-based tuning on the core protocol: the runner, histories and divergence."""

import torch

from hpolab import run
from hpolab.hypergrad import box, gradient_descent, make_estimator, per_entry, schedule, sign_descent
from hpolab.methods.hypergradient_tuning import hypergradient_tuning
from hpolab.problems.tuning import hyperparameter_names, tuning_problem
from tasks import small_classification_task


task = small_classification_task


def test_sign_descent_from_zero_learning_rates_lowers_validation_loss():
    inner = task()
    hyper = schedule(64, lr=0.0, windows={"lr": 16})
    method = hypergradient_tuning(inner, hyper, estimator=make_estimator("forward"),
                                   outer=sign_descent(per_entry(hyper, 0.1), box(hyper, {"lr": (-1.0, 1.0)})))
    history = run(method, tuning_problem(inner, hyper), iterations=65 * 6, seed=0)
    frame = history.frame
    assert history.status == "finished" and len(frame) == 7
    assert [c for c in frame.columns if c.startswith("lr[")] == ["lr[0]", "lr[1]", "lr[2]", "lr[3]"]
    assert (frame["hypergradient_norm2"].iloc[1:] > 0).all()
    assert frame["objective"].iloc[-1] < 0.8 * frame["objective"].iloc[0]
    assert (frame["lr[0]"].iloc[:2] == 0).all()  # the first training runs at the start
    assert (frame["lr[0]"].iloc[2:] > 0).all()
    assert frame["hvp_evaluations"].iloc[-1] > 0
    assert (frame["iteration"].diff().iloc[1:] == 65).all()  # 64 training steps, 1 validation gradient


def test_zeroth_order_tuning_is_charged_q_plus_one_runs_per_step():
    inner = task()
    hyper = schedule(32, lr=0.05)
    method = hypergradient_tuning(inner, hyper, estimator=make_estimator("zeroth-order", q=3, mu=0.01),
                                   outer=gradient_descent(0.05), seed=1)
    history = run(method, tuning_problem(inner, hyper), iterations=4 * 33 * 2, seed=0)
    assert (history.frame["gradient_evaluations"].diff().iloc[1:] == 4 * 32).all()
    assert (history.frame["function_evaluations"].diff().iloc[1:] == 4).all()


def test_tuning_that_diverges_stops_with_the_estimator_message():
    inner = task()
    hyper = schedule(20, lr=1.0, momentum=3.0, learn=("lr",))
    method = hypergradient_tuning(inner, hyper, estimator=make_estimator("forward"),
                                   outer=gradient_descent(0.1))
    history = run(method, tuning_problem(inner, hyper), iterations=10_000, seed=0)
    assert history.status == "diverged"
    assert "training diverged at step" in history.message
    assert len(history.frame) == 2


def test_hyperparameter_names_index_schedules_and_keep_scalars():
    hyper = schedule(10, windows={"lr": 5}, learn=("lr", "momentum"))
    assert hyperparameter_names(hyper) == ("lr[0]", "lr[1]", "momentum")


def test_test_metrics_are_recorded_beside_the_objective_at_every_step():
    inner = task()
    hyper = schedule(32, lr=0.1)
    generator = torch.Generator().manual_seed(5)
    x_test = torch.randn(64, 5, generator=generator)
    test = (x_test, (x_test[:, 0] + 0.5 * x_test[:, 1] > 0).long())
    method = hypergradient_tuning(inner, hyper, estimator=make_estimator("forward"),
                                   outer=gradient_descent(0.05))
    frame = run(method, tuning_problem(inner, hyper, test=test), iterations=33 * 3, seed=0).frame
    assert frame["test_error"].between(0, 1).all() and frame["test_loss"].notna().all()
    assert frame["test_error"].iloc[-1] < frame["test_error"].iloc[0]


def test_time_budget_ends_the_run_as_finished():
    inner = task()
    hyper = schedule(32, lr=0.1)
    method = hypergradient_tuning(inner, hyper, estimator=make_estimator("forward"),
                                   outer=gradient_descent(0.05))
    history = run(method, tuning_problem(inner, hyper), iterations=None, seed=0, max_seconds=0.5)
    assert history.status == "finished"
    assert 0.5 <= history.frame["wall_time"].iloc[-1] < 5
