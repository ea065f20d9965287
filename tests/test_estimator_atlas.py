"""Study 14 (the estimator atlas): growth rates, the recommendation table, every estimator
against float64 reverse mode, the claims' checks and bad input."""

import math

import numpy as np
import pandas as pd
import pytest

from hpolab import claims
from hpolab.history import History
from hpolab.studies import estimator_atlas as atlas
from hpolab.studies.estimator_atlas import AtlasResult
from hpolab.studies import estimator_atlas_claims
from hpolab.studies import estimator_atlas_panel


def test_growth_rate_recovers_a_known_slope():
    x = np.array([10, 20, 40, 80])
    assert estimator_atlas_claims.growth_rate(x, 3.0 * x**1.5) == pytest.approx(1.5)
    assert estimator_atlas_claims.growth_rate(x, 7.0 + 0 * x) == pytest.approx(0.0, abs=1e-12)
    assert estimator_atlas_claims.growth_rate(x, 1.0 / np.sqrt(x)) == pytest.approx(-0.5)
    assert estimator_atlas_claims.growth_rate(x, [0.0, 0.0, 0.0, 0.0], floor=1.0) == pytest.approx(0.0)  # floored: flat
    assert math.isnan(estimator_atlas_claims.growth_rate([10, 10], [1.0, 2.0]))  # one distinct x: no slope


def synthetic(forward_memory=0.0, reverse_memory=1.0, forward_time_k=1.0, reverse_time_k=0.0, greedy_error=0.5,
              zo_errors=None, implicit_errors=(0.1, 0.001)) -> AtlasResult:
    """Measurements with chosen growth rates: memory ~ T^a, time ~ K^b, errors as given."""
    zo_errors = zo_errors or {1: 1.0, 5: 1 / math.sqrt(5), 20: 1 / math.sqrt(20)}
    rows = []
    point = {"family": "mlp", "D": 1000}
    for T in (10, 20, 40, 80):
        for label, memory, error in (("forward", 5 * (T / 10) ** forward_memory, 1e-16),
                                     ("reverse", 5 * (T / 10) ** reverse_memory, 0.0),
                                     ("greedy H=1", 2.0, greedy_error)):
            rows.append({**point, "axis": "T", "T": T, "K": 2, "estimator": label, "error": error, "seconds": T / 100,
                         "memory": memory, "evaluations": T, "diverged": False})
    for K in (1, 2, 4, 8):
        for label, rate in (("forward", forward_time_k), ("reverse", reverse_time_k)):
            rows.append({**point, "axis": "K", "T": 40, "K": K, "estimator": label, "error": 1e-16,
                         "seconds": 0.1 * K**rate, "memory": 5.0, "evaluations": 40, "diverged": False})
        for q, error in zo_errors.items():
            rows.append({**point, "axis": "K", "T": 40, "K": K, "estimator": f"zeroth-order q={q}", "error": error,
                         "seconds": 0.1 * q, "memory": 5.0, "evaluations": 40 * q, "diverged": False})
    for T, error in zip((10, 80), implicit_errors):
        rows.append({"family": "logreg", "D": 123, "axis": "T", "T": T, "K": 3, "estimator": "implicit",
                     "error": error, "seconds": 0.5, "memory": 1.0, "evaluations": 10, "diverged": False})
    result = AtlasResult([], pd.DataFrame(), {}, pd.DataFrame(rows), pd.DataFrame())
    result.summary = atlas.slopes(result)
    return result


def test_slopes_are_the_growth_rates_of_the_measurements():
    result = synthetic(forward_memory=0.0, reverse_memory=1.0, forward_time_k=0.8)
    assert estimator_atlas_claims.slope(result, "mlp", "T", "reverse", "memory") == pytest.approx(1.0)
    assert estimator_atlas_claims.slope(result, "mlp", "T", "forward", "memory") == pytest.approx(0.0, abs=1e-12)
    assert estimator_atlas_claims.slope(result, "mlp", "K", "forward", "seconds") == pytest.approx(0.8)
    assert math.isnan(estimator_atlas_claims.slope(result, "mlp", "D", "forward", "seconds"))


def test_the_recommendation_table_follows_from_the_measurements():
    table = atlas.recommendations(synthetic()).set_index("estimator")
    assert table.loc["forward", "use when"].startswith("long horizons: memory flat in T")
    assert "few hyperparameters: time ~ K^1.0" in table.loc["forward", "use when"]
    assert table.loc["reverse", "use when"].startswith("many hyperparameters")
    assert table.loc["greedy H=1", "use when"].startswith("a cheap biased direction suffices")
    assert "error 0.5" in table.loc["greedy H=1", "use when"]
    assert table.loc["forward", "memory ~ T^"] == pytest.approx(0.0, abs=1e-12)
    # the same labels with the growth rates swapped swap the sentences
    swapped = atlas.recommendations(synthetic(forward_memory=1.0, reverse_memory=0.0, forward_time_k=0.0,
                                              reverse_time_k=1.0)).set_index("estimator")
    assert swapped.loc["forward", "use when"].startswith("many hyperparameters")
    assert swapped.loc["reverse", "use when"].startswith("long horizons")
    flat = atlas.recommendations(synthetic(forward_time_k=0.0)).set_index("estimator")
    assert "any K measured: time nearly flat, ~ K^0.0" in flat.loc["forward", "use when"]
    # an exact estimator: no bias sentence however large greedy's error
    assert not atlas.recommendations(synthetic(greedy_error=1e-12)).set_index("estimator").loc[
        "greedy H=1", "use when"].startswith("a cheap biased")


def test_claims_hold_on_textbook_measurements_and_fail_on_the_opposite():
    good = synthetic()
    verdicts = {c.id: c.evaluate(good, "cpu").status for c in atlas.CLAIMS}
    assert verdicts["reverse-memory-grows-with-T"] == claims.HOLDS
    assert verdicts["forward-memory-flat-in-T"] == claims.HOLDS
    assert verdicts["forward-time-grows-with-K"] == claims.HOLDS
    assert verdicts["reverse-time-flat-in-K"] == claims.HOLDS
    assert verdicts["zeroth-order-error-falls-with-q"] == claims.HOLDS
    assert verdicts["implicit-needs-a-minimizer"] == claims.HOLDS
    assert verdicts["exact-estimators-agree"] == claims.HOLDS
    both_flat = synthetic(forward_time_k=0.0, reverse_time_k=-0.5)  # a larger gap, but forward's time is flat
    (claim,) = [c for c in atlas.CLAIMS if c.id == "forward-time-grows-with-K"]
    assert claim.evaluate(both_flat, "cpu").status == claims.FAILS
    bad = synthetic(forward_memory=1.0, reverse_memory=0.0, forward_time_k=0.0, reverse_time_k=1.0,
                    greedy_error=1e-3, zo_errors={1: 1.0, 5: 1.0, 20: 1.0}, implicit_errors=(0.001, 0.1))
    assert {c.id: c.evaluate(bad, "cpu").status for c in atlas.CLAIMS} == {
        **{c.id: claims.FAILS for c in atlas.CLAIMS}, "exact-estimators-agree": claims.HOLDS}
    assert all(c.evaluate(good, "smoke").status == claims.UNTESTABLE for c in atlas.CLAIMS)
    assert claims.claims_for("14_estimator_atlas") == atlas.CLAIMS


@pytest.fixture(scope="module")
def logreg():
    data = atlas.family_data("logreg", "smoke", "cpu")
    return atlas.setting("logreg", data, "smoke", 40, 20)


@pytest.fixture(scope="module")
def mlp():
    data = atlas.family_data("mlp", "smoke", "cpu")
    return atlas.setting("mlp", data, "smoke", 20, 10, width=8)


# (label, most relative error, least relative error): exact ones to float64 rounding, finite
# differences to their truncation, greedy biased, zeroth-order about sqrt(K / q)
EXPECTED = {"forward": (1e-10, 0), "unrolled-forward": (1e-10, 0), "reverse": (0, 0), "finite-differences": (1e-5, 0),
            "greedy H=1": (20, 1e-3), "zeroth-order q=20": (1.5, 0.01)}


@pytest.mark.parametrize("family", ["mlp", "logreg"])
def test_every_estimator_at_smoke_agrees_with_float64_reverse_within_its_tolerance(family, mlp, logreg):
    task, hyper = mlp if family == "mlp" else logreg
    reference = atlas.make_estimator("reverse")(task, hyper, 0)
    for label, name, settings in atlas.variants(atlas.ATLAS_ESTIMATORS, [1], [20]):
        if atlas.applies(label, name, settings, family, hyper.horizon):
            assert name == "implicit" and family == "mlp"
            continue
        found = atlas.measure(task, hyper, label, name, settings, reference.grad, 0, 1e-3, 4, reference)
        if name == "implicit":  # after 40 steps of a well-conditioned problem: near its minimizer
            assert found["error"] < 0.01
            continue
        most, least = EXPECTED[label]
        assert least <= found["error"] <= most, (label, found["error"])
        assert found["seconds"] > 0 and found["evaluations"] > 0 and not found["diverged"]


def test_a_smoke_run_measures_every_point_and_its_errors_table_is_deterministic():
    kwargs = {"families": ["logreg"], "estimators": ["forward", "reverse", "zeroth-order"], "q_values": [1, 5],
              "horizons": [10, 20], "k_values": [1, 2], "progress": False}
    result = atlas.run_study("smoke", **kwargs)
    assert len(result.measurements) == (2 + 2) * 4
    assert set(result.measurements["axis"]) == {"T", "K"}  # no width sweep for logistic regression
    assert result.measurements.groupby("axis")["K"].apply(list)["K"][:4] == [2, 2, 2, 2]  # K = 1 window + log_l2
    assert all(isinstance(h, History) for h in result.histories) and len(result.histories) == 2 * 4
    again = atlas.run_study("smoke", **kwargs)
    pd.testing.assert_frame_equal(atlas.error_table(result), atlas.error_table(again))
    assert list(atlas.error_table(result)["estimator"]) == ["forward", "reverse", "zeroth-order q=1",
                                                            "zeroth-order q=5"]


def test_a_run_saves_its_measurements_beside_the_common_files(tmp_path):
    result = atlas.run_study("smoke", families=["logreg"], estimators=["forward", "reverse"], horizons=[10, 20],
                             k_values=[1], progress=False)
    paths = result.save(tmp_path)
    assert set(paths) == {"summary", "histories", "parameters", "measurements"}
    saved = pd.read_csv(paths["measurements"])
    assert len(saved) == 2 * 3 and {"T", "K", "D", "error", "seconds", "memory"} <= set(saved.columns)
    assert set(pd.read_csv(paths["summary"])["axis"]) == {"T", "K"}


def test_implicit_is_skipped_on_the_mlp_and_says_why():
    result = atlas.run_study("smoke", families=["mlp"], estimators=["reverse", "implicit"], horizons=[10],
                             k_values=[1], widths=[8], progress=False)
    assert set(result.measurements["estimator"]) == {"reverse"}
    (row,) = result.skipped.to_dict("records")
    assert row["estimator"] == "implicit" and row["points skipped"] == 3 and "minimizer" in row["why"]


@pytest.mark.parametrize("kwargs, message", [
    ({"q_values": [0]}, "q must be an integer >= 1"),
    ({"greedy_horizons": [0]}, "H must be an integer >= 1"),
    ({"estimators": ["backprop"]}, "estimator must be one of"),
    ({"families": ["cnn"]}, "family must be one of"),
    ({"k_values": [3]}, "K must divide T = 20"),
    ({"horizons": [15]}, "K must divide T = 15"),
    ({"mu": 0.0}, "mu must be a finite number > 0"),
    ({"repeats": 0}, "repeats must be an integer >= 1"),
    ({"scale": "huge"}, "scale must be one of"),
])
def test_bad_input_is_refused_naming_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message):
        atlas.run_study(**{"scale": "smoke", "progress": False, **kwargs})


def test_windows_must_tile_the_horizon():
    assert atlas.check_windows(20, K=4) == 5 and atlas.check_windows(20, W=20) == 20
    for W in (3, 0, 21, 2.5):
        with pytest.raises(ValueError, match="W must be an integer in \\[1, T\\] dividing T = 20"):
            atlas.check_windows(20, W=W)
    with pytest.raises(ValueError, match="W must"):
        estimator_atlas_panel.run_one("forward", W=3, scale="smoke")
    with pytest.raises(ValueError, match="implicit does not apply to mlp"):
        estimator_atlas_panel.run_one("implicit", family="mlp", scale="smoke")


def test_panel_runs_one_measurement_and_says_its_error_and_time():
    from hpolab import notebooks

    values = {key: p.default for key, p in notebooks.parameters(notebooks.find("14_estimator_atlas")).items()}
    values["scale"] = "smoke"
    panel = atlas.panel(values)
    assert panel.controls["estimator"].value == "forward" and panel.controls["W"].value == 5
    assert panel.controls["q"].value == 1 and panel.controls["mu"].value == pytest.approx(1e-3)
    rows = []
    history = estimator_atlas_panel.run_one("zeroth-order", q=3, W=10, family="logreg", scale="smoke", callback=rows.append)
    assert len(rows) == 3 and "relative error" in history.label and history.config["q"] == 3


def test_zeroth_order_repeats_draw_other_directions_at_every_point(mlp):
    """The claims take a median over points of the zeroth-order error: each point's directions
    must be independent draws (one shared set made the q sweep's slope five draws' worth), and a
    point's own draws repeat."""
    task, hyper = mlp
    reference = atlas.make_estimator("reverse")(task, hyper, 0)

    def error(point):
        return atlas.measure(task, hyper, "zeroth-order q=1", "zeroth-order", {"q": 1}, reference.grad, 0, 1e-3, 2,
                             reference, point=point)["error"]

    assert error(0) == error(0)
    assert len({error(0), error(1), error(2)}) == 3
