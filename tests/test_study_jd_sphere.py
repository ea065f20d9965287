"""The sphere study: its configurations, summary, claims (each shown failing and holding), the radius
sweep, bad input and widget panel."""

import pandas as pd
import pytest

from hpolab import claims
from hpolab.history import History
from hpolab.studies import jd_sphere
from hpolab.studies.common import StudyResult


@pytest.fixture(scope="module")
def smoke():
    return jd_sphere.run_study("smoke", iterations=40, progress=False)


def test_smoke_study_runs_every_configuration_for_every_function(smoke):
    # 5 p x (JD + printed AJD + unbiased AJD) + 2 baselines, for 2 functions, 1 seed
    assert len(smoke.histories) == 2 * (5 * 3 + 2)
    assert set(smoke.summary["method"]) == {"JD", "AJD", "AJD unbiased (ours)", "Alternating BO", "Alternating ZO"}
    assert (smoke.summary["runs"] == 1).all()


def test_study_runs_the_printed_algorithms_by_default(smoke):
    jd = next(h for h in smoke.histories if h.method == "jd")
    assert jd.config["try_scale"] == "printed" and (jd.config["r"], jd.config["R"]) == jd_sphere.JD_RADII
    estimators = {h.config["estimator"] for h in smoke.histories if h.method == "ajd"}
    assert estimators == {"printed", "unbiased"}
    assert {h.config["v_coefficient"] for h in smoke.histories if h.method == "ajd"} == {"printed"}
    assert {h.config["step_scale"] for h in smoke.histories if h.method == "ajd"} == {1.0}


def test_summary_is_the_mean_over_seeds_of_each_configuration():
    result = jd_sphere.run_study("smoke", functions=["sphere"], methods=["jd"], p_values=[0.5],
                                 iterations=30, seeds=3, progress=False)
    row = result.summary.iloc[0]
    finals = [h.final_objective for h in result.histories]
    assert row["runs"] == 3
    assert row["final"] == pytest.approx(sum(finals) / 3)
    assert len({h.seed for h in result.histories}) == 3


def test_claims_run_on_the_smoke_result_and_are_not_decided_there(smoke):
    table = claims.evaluate("01_jd_sphere", smoke, "smoke")
    assert list(table["claim"]) == [c.id for c in jd_sphere.CLAIMS]
    assert set(table["verdict"]) == {claims.UNTESTABLE}
    assert all(text for text in table["we measured"])
    assert "OUR ADDITION" in jd_sphere.CLAIMS[-1].says


def test_radius_sweep_scores_every_grid_point_and_sorts_by_score():
    grid = [("printed", 2**-10, 2**-3), ("length", 2**-4, 2.0)]
    table = jd_sphere.radius_sweep("smoke", grid=grid, functions=["sphere"], p_values=[0.3, 0.7], iterations=30,
                                   progress=False)
    assert list(table.columns) == ["try scale", "r", "R", "tries per step", "sphere", "score"]
    assert sorted(table["tries per step"]) == [5, 7]
    assert table["score"].is_monotonic_increasing
    assert table.loc[0, "score"] == pytest.approx(table.loc[0, "sphere"])


# --- claims on constructed results: each check can fail and can hold -------------------------

def fake(method, p=None, best=1.0, seed=0, problem="sphere", estimator="printed", tunes=(), iterations=100):
    """A history ending at ``best``; ``tunes``: iterations where an alternating run picked a y."""
    marks = sorted({0, *tunes, iterations})
    rows = [{"step": i, "iteration": it, "gradient_evaluations": it, "function_evaluations": 0, "hvp_evaluations": 0,
             "wall_time": 0.0, "objective": best * (1 + 10 * (it < iterations)),
             "best_objective": best * (1 + 10 * (it < iterations)), "kind": "tune" if it in tunes else "gradient"}
            for i, it in enumerate(marks)]
    config = {"p": p} if p is not None else {}
    if method == "ajd":
        config.update(estimator=estimator, step_scale=1.0, v_coefficient="printed")
    if method == "jd":
        config.update(try_scale="printed")
    label = f"{method} p={p}" if p is not None else method
    return History(pd.DataFrame(rows), method, label, problem, seed, config)


def result_of(*histories):
    return StudyResult(list(histories), pd.DataFrame(), {})


P = (0.1, 0.3, 0.5, 0.7, 0.9)


def sweep(method, scores, **kwargs):
    return [fake(method, p, best, **kwargs) for p, best in zip(P, scores)]


CLAIM = {claim.id: claim for claim in jd_sphere.CLAIMS}


@pytest.mark.parametrize("claim_id, method, scores, status", [
    ("jd-best-p-near-half", "jd", (3, 2, 1, 2, 3), claims.HOLDS),
    ("jd-best-p-near-half", "jd", (3, 1, 1.5, 2, 3), claims.HOLDS),  # best p = 0.3 is "around 0.5"
    ("jd-best-p-near-half", "jd", (1, 2, 3, 4, 5), claims.FAILS),  # best at the grid's end
    ("jd-best-p-near-half", "jd", (3, 2, 2.5, 1, 2.6), claims.HOLDS),
    ("jd-best-p-near-half", "jd", (3, 1, 4, 2, 3.5), claims.FAILS),  # 0.5 worse than 0.1
    ("ajd-p-half-crucial", "ajd", (3, 2, 1, 2, 3), claims.HOLDS),
    ("ajd-p-half-crucial", "ajd", (3, 0.9, 1, 2, 3), claims.FAILS),  # "crucial": 0.5 itself must be best
])
def test_p_claims_fail_and_hold_on_constructed_results(claim_id, method, scores, status):
    result = result_of(*sweep(method, scores), *sweep(method, scores, problem="ill-conditioned sphere"))
    assert CLAIM[claim_id].evaluate(result, "cpu").status == status


def test_p_claim_must_hold_on_every_function():
    good, bad = (3, 2, 1, 2, 3), (1, 2, 3, 4, 5)
    result = result_of(*sweep("jd", good), *sweep("jd", bad, problem="ill-conditioned sphere"))
    verdict = CLAIM["jd-best-p-near-half"].evaluate(result, "cpu")
    assert verdict.status == claims.FAILS
    assert "ill-cond.: best p=0.1" in verdict.measured


def test_p_claim_is_untestable_without_the_grid_ends():
    result = result_of(fake("jd", 0.5), fake("jd", 0.3))
    assert CLAIM["jd-best-p-near-half"].evaluate(result, "cpu").status == claims.UNTESTABLE


def test_diverged_runs_count_as_worst_in_the_p_scores():
    runs = sweep("ajd", (3, 2, 1, 2, 3))
    runs[2].status = "diverged"
    assert CLAIM["ajd-p-half-crucial"].evaluate(result_of(*runs), "cpu").status == claims.FAILS


@pytest.mark.parametrize("ajd, jd, status", [(0.5, 1.0, claims.HOLDS), (2.0, 1.0, claims.FAILS)])
def test_ajd_beats_jd_claim(ajd, jd, status):
    result = result_of(fake("ajd", 0.5, ajd), fake("jd", 0.5, jd), fake("ajd", 0.5, ajd, estimator="unbiased"))
    verdict = CLAIM["ajd-beats-jd"].evaluate(result, "cpu")
    assert verdict.status == status and "AJD" in verdict.measured


@pytest.mark.parametrize("jd_best, status", [(0.1, claims.HOLDS), (5.0, claims.FAILS)])
def test_before_second_y_claim_compares_at_the_baselines_second_pick(jd_best, status):
    # the baselines pick their second y at iteration 10, where their best so far is 11 x 1.0;
    # JD's best so far there is 11 x jd_best
    result = result_of(fake("jd", 0.5, jd_best), fake("alt-bo", best=1.0, tunes=(10,)),
                       fake("alt-zo", best=1.0, tunes=(10,)))
    verdict = CLAIM["jd-better-before-second-y"].evaluate(result, "cpu")
    assert verdict.status == status
    assert "at iteration 10" in verdict.measured


def test_before_second_y_claim_is_untestable_without_a_baseline():
    verdict = CLAIM["jd-better-before-second-y"].evaluate(result_of(fake("jd", 0.5)), "cpu")
    assert verdict.status == claims.UNTESTABLE


@pytest.mark.parametrize("bo, zo, status", [(2.0, 3.0, claims.HOLDS), (0.5, 3.0, claims.FAILS)])
def test_jd_beats_alternating_claim(bo, zo, status):
    result = result_of(fake("jd", 0.5, 1.0), fake("alt-bo", best=bo, tunes=(5,)), fake("alt-zo", best=zo, tunes=(5,)))
    assert CLAIM["jd-beats-alternating"].evaluate(result, "cpu").status == status


@pytest.mark.parametrize("printed, unbiased, status", [
    ((10, 3, 1, 3, 10), (2, 1.5, 1, 1.5, 2), claims.HOLDS),
    ((2, 1.5, 1, 1.5, 2), (10, 3, 1, 3, 10), claims.FAILS),
])
def test_our_unbiased_claim_compares_the_spread_over_p(printed, unbiased, status):
    result = result_of(*sweep("ajd", printed), *sweep("ajd", unbiased, estimator="unbiased"))
    verdict = CLAIM["ours-unbiased-ajd-flattens-p"].evaluate(result, "cpu")
    assert verdict.status == status
    assert "printed 10" in verdict.measured or "unbiased 10" in verdict.measured


def test_claims_are_untestable_at_smoke_scale_even_when_they_hold():
    result = result_of(*sweep("jd", (3, 2, 1, 2, 3)))
    assert CLAIM["jd-best-p-near-half"].evaluate(result, "smoke").status == claims.UNTESTABLE


def test_save_writes_summary_histories_and_parameters(smoke, tmp_path):
    paths = smoke.save(tmp_path / "out")
    assert all(path.exists() for path in paths.values())
    assert paths["summary"].read_text().startswith("function,method,p,final,best,runs,diverged")


@pytest.mark.parametrize("kwargs, message", [
    ({"scale": "huge"}, "scale must be one of"),
    ({"p_values": [0.5, 1.0]}, r"p must lie in the open interval \(0, 1\)"),
    ({"iterations": -5}, "iterations must be an integer >= 0"),
    ({"seeds": 0}, "seeds must be an integer >= 1"),
    ({"methods": ["jd", "pbt"]}, "method must be one of"),
    ({"functions": ["rosenbrock"]}, "function must be one of"),
    ({"device": "cuda:7"}, "device must be 'auto' or one of"),
    ({"mu": 0.0}, "mu must be a finite number > 0"),
    ({"ajd_estimators": ["exact"]}, "ajd_estimator must be one of"),
    ({"jd_radii": [1.0, 0.5]}, "r must be smaller than R"),
    ({"jd_radii": [0.1]}, r"jd_radii must be \(r, R\)"),
])
def test_bad_study_arguments_raise_value_error_naming_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message):
        jd_sphere.run_study(**{"scale": "smoke", "progress": False, **kwargs})


def test_panel_runs_in_background_and_adds_a_line_per_run():
    panel = jd_sphere.panel(iterations=60)
    panel.controls["p"].value = 0.3
    panel.start()
    panel.wait(60)
    panel.controls["method"].value = "ajd"
    panel.start()
    panel.wait(60)
    assert [trace.name for trace in panel.figure.data] == [
        "method=jd, p=0.3, iterations=60, seed=0, device=cpu, function=sphere",
        "method=ajd, p=0.3, mu=0.001, iterations=60, seed=0, device=cpu, function=sphere, ajd_estimator=printed",
    ]
    assert [h.label for h in panel.histories] == ["JD p=0.3", "AJD p=0.3"]
    assert len(panel.figure.data[0].y) == len(panel.histories[0].frame)
    panel.clear()
    assert panel.figure.data == () and panel.histories == []


def test_panel_hides_controls_a_method_does_not_use():
    panel = jd_sphere.panel()
    panel.controls["method"].value = "alt-bo"
    assert "p" not in panel.settings() and "mu" not in panel.settings()
    panel.controls["method"].value = "alt-zo"
    assert "mu" in panel.settings() and "p" not in panel.settings()


def test_panel_p_control_cannot_leave_open_unit_interval():
    panel = jd_sphere.panel()
    panel.controls["p"].value = 1.0
    assert panel.controls["p"].value < 1.0
    panel.controls["p"].value = 0.0
    assert panel.controls["p"].value > 0.0


def test_panel_stop_ends_run_and_keeps_its_history():
    panel = jd_sphere.panel(method="alt-bo", iterations=100_000)
    panel.start()
    panel.stop_button.click()
    panel.wait(60)
    assert panel.histories[0].status == "stopped"
    assert "stopped" in panel.status.value


def test_panel_for_builds_range_limited_controls_from_the_notebook_parameters():
    from hpolab.widgets import panel_for

    def run_one(method, p=0.5, q=2, seed=0, device="cpu", callback=None, should_stop=None):
        raise AssertionError("not run here")

    panel = panel_for(run_one, {"JD": "jd", "GP-BO": "alt-bo"}, {"jd": {"p"}, "alt-bo": {"q"}},
                      values={"p_values": [0.3, 0.7], "seeds": [4]})
    assert list(panel.controls) == ["method", "p", "q", "seed", "device"]
    assert panel.controls["p"].value == 0.3 and panel.controls["seed"].value == 4
    panel.controls["p"].value = 1.5
    assert panel.controls["p"].value < 1  # the slider keeps p inside (0, 1)
    assert "q" not in panel.settings()
    panel.controls["method"].value = "alt-bo"
    assert set(panel.settings()) == {"method", "q", "seed", "device"}


def test_p_sweep_figure_draws_each_variant_apart_and_baselines_as_lines():
    result = result_of(*sweep("jd", (3, 2, 1, 2, 3)), *sweep("ajd", (3, 2, 1, 2, 3)),
                       *sweep("ajd", (2, 2, 1, 2, 2), estimator="unbiased"), fake("alt-bo", best=0.5, tunes=(5,)))
    figure = jd_sphere.p_sweep_figure(result.histories)
    assert [trace.name for trace in figure.data] == ["JD", "AJD", "AJD unbiased (ours)"]
    assert list(figure.data[2].y) == [2, 2, 1, 2, 2]
    assert len(figure.layout.shapes) == 1  # the baseline's dashed line
