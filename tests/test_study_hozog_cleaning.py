"""Study 05 (data hyper-cleaning): the paper's setting, the gamma pilot, and the claims' checks."""

import math
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from hpolab import claims
from hpolab.data import data_root
from hpolab.history import History
from hpolab.studies import hozog_cleaning as study
from hpolab.studies import hozog_cleaning_claims
from hpolab.studies import hozog_cleaning_setting

needs_mnist = pytest.mark.skipif(not (data_root() / "MNIST" / "raw").exists(),
                                 reason="real MNIST not in data/: copy ../shared/data into data/, see data/README.md")


def test_settings_are_the_papers_section_3_3_and_table_2():
    paper = [(s.n_train, s.n_val, s.n_test, s.groups, s.horizon) for s in study.CLEANING_SIZES["paper"]]
    assert paper == [(1000, 1000, 4000, 500, 4000), (5000, 5000, 10000, 1250, 4000)]
    assert study.CLEANING_SIZES["cpu"][0][:4] == (1000, 1000, 4000, 500)
    assert (hozog_cleaning_setting.CLEANING_LR, study.CLEANING_Q, study.CLEANING_MU) == (0.05, 5, 1.0)
    assert set(study.CLEANING_METHODS) == {"hozog", "random-search", "bohb", "reverse"}


def test_groups_are_a_random_partition_into_groups_of_equal_size():
    """The old draw (a random group per example) left some of the 500 groups empty: a
    hyperparameter that acts on nothing."""
    groups = hozog_cleaning_setting.random_groups(1000, 500, torch.Generator().manual_seed(0))
    assert torch.bincount(groups, minlength=500).tolist() == [2] * 500
    sizes = torch.bincount(hozog_cleaning_setting.random_groups(1003, 10, torch.Generator().manual_seed(1)), minlength=10)
    assert int(sizes.max() - sizes.min()) <= 1
    other = hozog_cleaning_setting.random_groups(1000, 500, torch.Generator().manual_seed(2))
    assert not torch.equal(groups, other)
    with pytest.raises(ValueError, match="n_groups must be <= the 10 training examples"):
        hozog_cleaning_setting.random_groups(10, 11, torch.Generator())


@needs_mnist
def test_cleaning_data_groups_every_example_into_equal_groups():
    data = study.cleaning_data(200, 100, 100, 20)
    assert int(data.corrupted.sum()) == 100
    assert torch.bincount(data.groups, minlength=20).tolist() == [10] * 20


def test_hozog_and_rev_are_unbounded_the_black_box_methods_boxed():
    """Eq. 6 searches lambda in R^Nh; only random search and BOHB need a box."""
    from hpolab.hypergrad import schedule

    hyper = schedule(3, lr=0.05, learn=("example_weights",), example_weights=torch.zeros(4, dtype=torch.float64))
    seen = {}

    def spy(name, task, hyper, limits, *args, **kwargs):
        seen[name] = limits
        return name

    original = study.tuning_method
    study.tuning_method = spy
    try:
        for name in study.CLEANING_METHODS:
            study._method(name, None, hyper, 5, 1.0, 10.0)
    finally:
        study.tuning_method = original
    assert seen["hozog"] is None and seen["reverse"] is None
    low, high = seen["random-search"]
    assert low.tolist() == [-6.0] * 4 and high.tolist() == [6.0] * 4


@needs_mnist
def test_gamma_pilot_picks_each_methods_own_lowest_loss_and_grows_the_grid_at_an_edge():
    from hpolab.problems.tuning import tuning_problem

    data = study.cleaning_data(200, 200, 100, 50)
    task, hyper = study.cleaning_setting(data, 20)
    problem = tuning_problem(task, hyper)
    gamma, rows = study.pick_gamma("reverse", task, hyper, problem, steps=2, gammas=(0.1, 1.0), extend=2)
    table = pd.DataFrame(rows)
    assert table["gamma"].tolist()[:2] == [0.1, 1.0]
    assert len(table) > 2  # a tiny step loses to a larger one: the grid grew upwards
    best = table.loc[table["best val loss"].idxmin()]
    assert gamma == best["gamma"] and table["chosen"].sum() == 1 and bool(table.loc[table["chosen"], "gamma"].iloc[0] == gamma)
    assert (table["steps"] == 2).all()


# ---------------------------------------------------------------------------------------------
# The claims, on constructed results


def fake(label, best, wall=(0.0, 5.0, 10.0), size="500 groups", start=2.3):
    objective = [start, *best]
    frame = pd.DataFrame({"objective": objective, "best_objective": pd.Series(objective).cummin(),
                          "wall_time": list(wall)[: len(objective)]})
    return History(frame, label, label, size, 0)


def result(runs, scale="cpu"):
    return SimpleNamespace(histories=runs, parameters={"scale": scale})


def verdicts(res):
    return {claim.id: claim.evaluate(res, res.parameters["scale"]).status for claim in study.CLAIMS}


def test_claims_hold_on_a_result_shaped_like_the_papers():
    res = result([fake("HOZOG", [1.2, 1.0], wall=(0.0, 0.5, 10.0)), fake("RS", [1.5, 1.4]),
                  fake("BOHB-like", [1.3, 1.25]), fake("REV", [2.0, 0.8], wall=(0.0, 9.0, 18.0))])
    assert set(verdicts(res).values()) == {claims.HOLDS}


def test_claims_fail_on_a_result_where_the_paper_is_wrong():
    res = result([fake("HOZOG", [1.6, 1.5], wall=(0.0, 9.0, 18.0)), fake("RS", [1.4, 1.3]),
                  fake("BOHB-like", [1.3, 1.25]), fake("REV", [1.7, 1.6], wall=(0.0, 0.05, 1.0))])
    assert set(verdicts(res).values()) == {claims.FAILS}


def test_claims_need_both_methods_and_hide_wall_times_at_smoke_scale():
    res = result([fake("HOZOG", [1.2, 1.0])])
    assert set(verdicts(res).values()) == {claims.UNTESTABLE}
    smoke = result([fake("HOZOG", [1.2, 1.0]), fake("REV", [2.0, 0.8])], scale="smoke")
    found = {c.id: c.check(smoke).measured for c in study.CLAIMS}
    assert found["cleaning-rev-costlier-per-hypergradient"] == "wall times vary from run to run; not shown at smoke scale"
    assert found["cleaning-hozog-faster-than-rev-early"] == found["cleaning-rev-costlier-per-hypergradient"]


def test_early_stage_is_not_decided_before_either_method_took_a_step():
    res = result([fake("HOZOG", [1.2], wall=(0.0, 50.0)), fake("REV", [1.0], wall=(0.0, 60.0))])
    found = hozog_cleaning_claims.check_hozog_faster_early(res)
    assert found.status == claims.UNTESTABLE and "neither method finished a step" in found.measured


def test_reverse_cost_is_compared_at_the_largest_size_run():
    runs = [fake("HOZOG", [1.0, 0.9], wall=(0, 1, 2)), fake("REV", [1.0, 0.9], wall=(0, 5, 10)),
            fake("HOZOG", [1.0, 0.9], wall=(0, 10, 20), size="1250 groups"),
            fake("REV", [1.0, 0.9], wall=(0, 2, 4), size="1250 groups")]
    found = hozog_cleaning_claims.check_reverse_costlier_per_hypergradient(result(runs))
    assert found.status == claims.FAILS and found.measured.startswith("1250 groups: 2 s per hypergradient for REV, 10 s")


@pytest.mark.parametrize("kwargs, message", [
    ({"scale": "huge"}, "scale must be one of"),
    ({"q": 0}, "q must be an integer >= 1"),
    ({"mu": -1.0}, "mu must be a finite number > 0"),
    ({"gamma": 0.0}, "gamma must be a finite number > 0"),
    ({"methods": ["hozog", "sgd"]}, "method must be one of"),
])
def test_bad_study_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        study.run_study(progress=False, **{"scale": "smoke", **kwargs})


@needs_mnist
def test_smoke_study_runs_every_method_with_picked_steps_and_checks_every_claim():
    res = study.run_study("smoke", progress=False)
    assert res.summary["method"].tolist() == ["HOZOG", "RS", "BOHB-like", "REV"]
    pilot = study.pilot_table(res)
    assert set(pilot["method"]) == {"HOZOG", "REV"}
    for method in ("HOZOG", "REV"):
        rows = pilot[pilot["method"] == method]
        assert rows.loc[rows["chosen"], "gamma"].item() == res.parameters["gamma_chosen"]["50 groups"][method]
        assert rows.loc[rows["chosen"], "best val loss"].item() == rows["best val loss"].min()
    table = claims.evaluate("05_hozog_hypercleaning", res, "smoke")
    assert len(table) == len(study.CLAIMS) and (table["verdict"] == claims.UNTESTABLE).all()
    assert math.isfinite(res.summary["best val loss"].max())
