"""The HOZOG studies' data, settings and measures (the notebooks run them end to end)."""

import math

import pandas as pd
import pytest
import torch

from hpolab.data import data_root
from hpolab.history import History
from hpolab.studies import hozog, hozog_cleaning, hozog_logreg

needs_libsvm = pytest.mark.skipif(not (data_root() / "libsvm" / "a9a").exists(),
                                  reason="LIBSVM a9a not in data/: copy ../shared/data into data/, see data/README.md")
needs_mnist = pytest.mark.skipif(not (data_root() / "MNIST" / "raw").exists(),
                                 reason="real MNIST not in data/: copy ../shared/data into data/, see data/README.md")


@needs_libsvm
def test_logistic_regression_data_is_split_two_one_one_without_overlap():
    split = hozog_logreg.logistic_regression_data("mushrooms", limit=800)
    sizes = [len(part[1]) for part in (split.train, split.val, split.test)]
    assert sizes == [400, 200, 200]
    assert set(torch.cat([split.train[1], split.val[1]]).tolist()) == {0, 1}
    rows = torch.cat([split.train[0], split.val[0], split.test[0]])
    assert len(torch.unique(rows, dim=0)) > 0.9 * len(rows)


def test_stable_lambda_limit_is_where_heavy_ball_on_the_penalty_stops_converging():
    step, momentum = 0.3, 0.9
    limit = hozog_logreg.stable_lambda_limit(step, momentum)

    def grows(log_l2):
        curvature = 1.0 / step + 2 * math.exp(log_l2)  # data curvature 1 / step plus the penalty's
        theta, velocity = 1.0, 0.0
        for _ in range(400):
            velocity = momentum * velocity + curvature * theta
            theta -= step * velocity
        return abs(theta) > 1.0

    assert not grows(limit - 0.05) and grows(limit + 0.05)


def fake(problem, label, objectives):
    frame = pd.DataFrame({"objective": objectives, "best_objective": pd.Series(objectives).cummin(),
                          "wall_time": range(len(objectives))})
    return History(frame, label, label, problem, 0)


def test_suboptimality_is_against_the_best_value_any_method_found():
    runs = hozog.with_suboptimality([fake("a", "x", [3.0, 2.0]), fake("a", "y", [4.0, 1.5]), fake("b", "x", [9.0])])
    assert runs[0].frame["suboptimality"].tolist() == [1.5, 0.5]
    assert runs[1].frame["suboptimality"].tolist() == [2.5, 0.0]
    assert runs[2].frame["suboptimality"].tolist() == [0.0]
    assert hozog.time_to_reach(runs[1], 0.1) == 1 and math.isnan(hozog.time_to_reach(runs[0], 0.1))


@needs_mnist
def test_cleaning_data_corrupts_half_the_training_labels_and_groups_them():
    data = hozog_cleaning.cleaning_data(200, 100, 100, 20)
    assert int(data.corrupted.sum()) == 100
    assert data.groups.min() >= 0 and data.groups.max() < 20
    share = torch.zeros(20).index_add_(0, data.groups, data.corrupted.float())
    sizes = torch.bincount(data.groups, minlength=20).float()
    assert torch.equal(data.group_corrupted, share > sizes / 2)


def test_cleaning_quality_scores_the_groups_weighted_below_one_half():
    class Data:
        group_corrupted = torch.tensor([True, True, False, False])

    frame = pd.DataFrame({"objective": [2.0, 1.0], **{f"example_weights[{i}]": [0.0, v]
                                                      for i, v in enumerate([-1.0, 0.5, -2.0, 1.0])}})
    quality = hozog_cleaning.cleaning_quality(History(frame, "m", "m", "p", 0), Data())
    assert quality == {"precision": 0.5, "recall": 0.5, "flagged": 2}


@pytest.mark.parametrize("call, message", [
    (lambda: hozog_logreg.run_logreg_study("cpu", q=0, progress=False), "q must be an integer >= 1"),
    (lambda: hozog_logreg.run_logreg_study("cpu", mu=0.0, progress=False), "mu must be a finite number > 0"),
    (lambda: hozog_logreg.run_logreg_study("huge", progress=False), "scale must be one of"),
    (lambda: hozog.tuning_method("sgd", None, None, None), "method must be one of"),
])
def test_bad_study_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@needs_libsvm
def test_hozog_on_a_local_dask_cluster_takes_the_same_steps_as_here():
    pytest.importorskip("distributed")
    here = hozog_logreg.run_logreg_study("smoke", datasets=["a9a"], methods=["hozog"], q=2, progress=False)
    there = hozog_logreg.run_logreg_study("smoke", datasets=["a9a"], methods=["hozog"], q=2, address="local",
                                   progress=False)
    assert there.parameters["address"] == "local"
    assert there.histories[0].frame["objective"].tolist() == here.histories[0].frame["objective"].tolist()
    assert there.histories[0].frame["log_l2"].tolist() == here.histories[0].frame["log_l2"].tolist()
