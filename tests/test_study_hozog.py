"""The HOZOG studies' data, settings and measures (the notebooks run them end to end)."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from hpolab import claims
from hpolab.data import data_root
from hpolab.history import History
from hpolab.splits import Split, libsvm_split
from hpolab.hypergrad import box, train
from hpolab.problems.tuning import tuning_problem
from hpolab.runner import run
from hpolab.studies import hozog, hozog_cleaning, hozog_logreg
from hpolab.studies import hozog_logreg_claims

needs_libsvm = pytest.mark.skipif(not (data_root() / "libsvm" / "a9a").exists(),
                                  reason="LIBSVM a9a not in data/: copy ../shared/data into data/, see data/README.md")
needs_mnist = pytest.mark.skipif(not (data_root() / "MNIST" / "raw").exists(),
                                 reason="real MNIST not in data/: copy ../shared/data into data/, see data/README.md")


@needs_libsvm
def test_logistic_regression_data_is_split_two_one_one_without_overlap():
    split = libsvm_split("mushrooms", limit=800)
    sizes = [len(part[1]) for part in (split.train, split.val, split.test)]
    assert sizes == [400, 200, 200]
    assert set(torch.cat([split.train[1], split.val[1]]).tolist()) == {0, 1}
    rows = torch.cat([split.train[0], split.val[0], split.test[0]])
    assert len(torch.unique(rows, dim=0)) > 0.9 * len(rows)


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
    (lambda: hozog_logreg.run_study("cpu", q=0, progress=False), "q must be an integer >= 1"),
    (lambda: hozog_logreg.run_study("cpu", mu=0.0, progress=False), "mu must be a finite number > 0"),
    (lambda: hozog_logreg.run_study("huge", progress=False), "scale must be one of"),
    (lambda: hozog_logreg.run_study("cpu", lambda0=11.0, progress=False), r"lambda0 must be in \[-10, 10\]"),
    (lambda: hozog_logreg.run_study("cpu", adam_step=0.0, progress=False), "adam_step must be"),
    (lambda: hozog.tuning_method("sgd", None, None, None), "method must be one of"),
])
def test_bad_study_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@needs_libsvm
def test_hozog_on_a_local_dask_cluster_takes_the_same_steps_as_here():
    pytest.importorskip("distributed")
    here = hozog_logreg.run_study("smoke", datasets=["a9a"], methods=["hozog"], q=2, progress=False)
    there = hozog_logreg.run_study("smoke", datasets=["a9a"], methods=["hozog"], q=2, address="local",
                                   progress=False)
    assert there.parameters["address"] == "local"
    # the workers' torch thread count may differ from this process's (one here): equal up to rounding
    for column in ("objective", "log_l2"):
        assert np.allclose(there.histories[0].frame[column], here.histories[0].frame[column], rtol=1e-9, atol=0)


# ---------------------------------------------------------------------------------------------
# Study 03's setting


def test_table2_gamma_goes_to_the_stand_in_of_each_paper_data_set():
    assert hozog_logreg.STAND_INS == {"news20": "News20", "a9a": "Covtype", "w8a": "Real-sim"}
    assert [hozog_logreg.table2_gamma(d) for d in ("news20", "a9a", "w8a")] == [0.05, 0.03, 0.005]
    assert hozog_logreg.table2_gamma("Real-sim") == 0.005


def test_a_subset_scales_gamma_by_how_much_smaller_its_validation_sum_is():
    x = torch.zeros(8, 1)
    split = Split((x, x), (x[:2], x[:2]), (x, x), name="a9a", examples=4000)
    assert hozog_logreg.subset_factor(split) == 1000 / 2
    assert hozog_logreg.subset_factor(Split((x, x), (x, x), (x, x), name="a9a")) == 1.0


def test_the_adam_step_is_the_one_with_the_smallest_worst_gap():
    table = pd.DataFrame({"adam step": [0.1, 0.1, 0.3, 0.3], "lambda": [-10, 10, -10, 10],
                          "relative gap": [0.05, 0.001, 0.02, 0.03]})
    assert hozog_logreg.pick_adam_step(table) == 0.3


@needs_libsvm
def test_adam_step_table_measures_the_gap_to_the_training_minimizer():
    split = libsvm_split("a9a", limit=400)
    table = hozog_logreg.adam_step_table(split, 20, steps=(0.001, 0.1), lambdas=(-2.0, 2.0))
    assert len(table) == 4 and table["relative gap"].between(0, 1).all()
    worst = table.groupby("adam step")["relative gap"].max()
    assert worst[0.1] < worst[0.001]  # 20 steps of 0.001 barely move w


@needs_libsvm
def test_every_method_gets_the_papers_gradient_norm_column():
    split = libsvm_split("a9a", limit=400)
    task, hyper, limits_range = hozog_logreg.logistic_regression_setting(split, 10, 0.1)
    limits = box(hyper, {"log_l2": limits_range})
    runs = []
    for name in ("hozog", "reverse", "implicit", "random-search"):
        history = run(hozog.tuning_method(name, task, hyper, limits, gamma=0.1), tuning_problem(task, hyper), 120)
        history.config["method"] = name
        runs.append(history)
    own = runs[2].frame["objective"].copy()
    hozog_logreg.add_paper_measures(runs, task, hyper, q=1, mu=0.01, points=3, hoag_points=4)
    for history in runs[:2]:
        assert history.frame["grad_norm2"].equals(history.frame["hypergradient_norm2"])
    for history, count in zip(runs[2:], (4, 3)):
        estimated = history.frame["grad_norm2_estimated"]
        assert estimated.sum() == min(count, len(history.frame) - 1) and not estimated.iloc[0]
        assert (history.frame.loc[estimated, "grad_norm2"] >= 0).all()
    hoag_frame = runs[2].frame  # HOAG's lambdas judged by the others' solver (T Adam steps, seed 0)
    assert hoag_frame["lbfgs_objective"].equals(own)
    row = int(np.flatnonzero(hoag_frame["grad_norm2_estimated"])[0])
    at = hyper.replace(log_l2=torch.tensor(hoag_frame["log_l2"].iloc[row - 1], dtype=torch.float64))
    assert hoag_frame["objective"].iloc[row] == pytest.approx(float(task.val_loss(train(task, at, 0).theta)), rel=1e-9)
    assert hoag_frame["best_objective"].equals(hoag_frame["objective"].cummin())


# ---------------------------------------------------------------------------------------------
# Study 03's claims, each on a constructed result where it holds and one where it fails


def run_of(dataset, label, objectives, times, **columns):
    frame = pd.DataFrame({"objective": objectives, "best_objective": pd.Series(objectives).cummin(),
                          "wall_time": times, "kind": "step", **columns})
    return History(frame, label, label, dataset, 0)


def result_of(*histories):
    return SimpleNamespace(histories=list(histories))


def test_claim_cheaper_hypergradient():
    check = hozog_logreg_claims.check_cheaper_hypergradient
    runs = [run_of("a", "FOR", [3, 2, 1], [0, 3, 6]), run_of("a", "REV", [3, 2, 1], [0, 2, 4])]
    assert check(result_of(run_of("a", "HOZOG", [3, 2, 1, 1], [0, 1, 2, 3]), *runs)).status == claims.HOLDS
    found = check(result_of(run_of("a", "HOZOG", [3, 2, 1], [0, 5, 10]), *runs))
    assert found.status == claims.FAILS and "HOZOG 5, FOR 3, REV 2" in found.measured
    assert check(result_of(*runs)).status == claims.UNTESTABLE


def test_claim_faster_than_the_gradient_methods():
    check = hozog_logreg_claims.check_faster_than_gradient_methods
    others = [run_of("a", m, [110, 105, 100], [0, 1, 2]) for m in ("FOR", "REV")]
    hozog_run = run_of("a", "HOZOG", [110, 100], [0, 1])
    assert check(result_of(hozog_run, *others, run_of("a", "HOAG", [110, 100], [0, 3]))).status == claims.HOLDS
    found = check(result_of(hozog_run, *others, run_of("a", "HOAG", [110, 100], [0, 0.5])))
    assert found.status == claims.FAILS and "HOAG 0.5 s" in found.measured
    never = check(result_of(run_of("a", "HOZOG", [110, 101], [0, 1]), *others, run_of("a", "HOAG", [110, 105], [0, 3])))
    assert never.status == claims.FAILS and "HOZOG never" in never.measured


def test_claim_faster_than_the_blackbox_methods_on_every_data_set():
    check = hozog_logreg_claims.check_faster_than_blackbox

    def dataset(name, hozog_time):
        return [run_of(name, "HOZOG", [110, 100], [0, hozog_time]),
                *(run_of(name, m, [110, 104, 100], [0, 1, 2]) for m in ("RS", "GP-BO", "BOHB-like"))]

    assert check(result_of(*dataset("a", 1), *dataset("b", 1.5))).status == claims.HOLDS
    assert check(result_of(*dataset("a", 1), *dataset("b", 3))).status == claims.FAILS


def test_claim_hoag_fast_start_slow_finish():
    check = hozog_logreg_claims.check_hoag_fast_start
    others = [run_of("a", m, [110, 110], [0, 10]) for m in ("FOR", "REV")]
    hoag_run = run_of("a", "HOAG", [110, 101, 100.5], [0, 0.5, 10])
    assert check(result_of(hoag_run, run_of("a", "HOZOG", [110, 110, 100], [0, 0.5, 10]), *others)).status == \
        claims.HOLDS
    late = check(result_of(run_of("a", "HOAG", [110, 101, 100], [0, 0.5, 10]),
                           run_of("a", "HOZOG", [110, 110, 100.5], [0, 0.5, 10]), *others))
    assert late.status == claims.FAILS  # HOAG still ahead at the end
    slow = check(result_of(run_of("a", "HOAG", [110, 110, 100.5], [0, 0.5, 10]),
                           run_of("a", "HOZOG", [110, 105, 100], [0, 0.5, 10]), *others))
    assert slow.status == claims.FAILS  # no early lead


def test_claim_blackbox_gradient_norm_does_not_strictly_go_down():
    check = hozog_logreg_claims.check_blackbox_gradient_norm_not_decreasing

    def bb(label, norms):
        n = len(norms)
        return run_of("a", label, list(range(n + 1)), list(range(n + 1)), grad_norm2=[np.nan, *norms],
                      grad_norm2_estimated=[False] + [True] * n)

    falling = [8.0, 7, 6, 5, 4, 3, 2, 1]
    rising = [8.0, 9, 6, 5, 4, 3, 2, 1]
    assert check(result_of(bb("GP-BO", rising), bb("BOHB-like", rising))).status == claims.HOLDS
    assert check(result_of(bb("GP-BO", rising), bb("BOHB-like", falling))).status == claims.FAILS
    assert check(result_of(bb("GP-BO", rising), bb("BOHB-like", [1.0, 2]))).status == claims.UNTESTABLE


def test_the_study_declares_its_claims_for_notebook_03():
    declared = claims.claims_for("03_hozog_logreg")
    assert {c.id for c in declared} == {"hozog-cheaper-hypergradient", "hozog-faster-than-gradient-methods",
                                        "hoag-fast-start-slow-finish", "blackbox-gradient-norm-not-decreasing",
                                        "hozog-faster-than-blackbox"}
    assert all(c.source.startswith("HOZOG, section 3.1") for c in declared)


def test_time_based_claims_are_not_shown_at_smoke_scale():
    runs = [run_of("a", m, [3, 2, 1], [0, 1, 2]) for m in ("HOZOG", "FOR", "REV", "HOAG", "RS", "GP-BO", "BOHB-like")]
    smoke = SimpleNamespace(histories=runs, parameters={"scale": "smoke"})
    for check in (hozog_logreg_claims.check_cheaper_hypergradient, hozog_logreg_claims.check_faster_than_gradient_methods,
                  hozog_logreg_claims.check_faster_than_blackbox, hozog_logreg_claims.check_hoag_fast_start):
        assert check(smoke) == claims.untestable(hozog.SMOKE_TIMES)
