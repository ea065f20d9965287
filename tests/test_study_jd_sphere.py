"""The sphere study: its configurations, summary, findings, bad input and widget panel."""

import pytest

from hpolab.studies import jd_sphere


@pytest.fixture(scope="module")
def smoke():
    return jd_sphere.run_study("smoke", iterations=40, progress=False, ajd_step_scales=[1.0, 4.0])


def test_smoke_study_runs_every_configuration_for_every_function(smoke):
    # 5 p x (JD + 2 AJD step scales) + 2 baselines, for 2 functions, 1 seed
    assert len(smoke.histories) == 2 * (5 * 3 + 2)
    assert set(smoke.summary["method"]) == {"JD", "AJD", "AJD step x4", "Alternating BO", "Alternating ZO"}
    assert (smoke.summary["runs"] == 1).all()


def test_summary_is_the_mean_over_seeds_of_each_configuration():
    result = jd_sphere.run_study("smoke", functions=["sphere"], methods=["jd"], p_values=[0.5],
                                 iterations=30, seeds=3, progress=False)
    row = result.summary.iloc[0]
    finals = [h.final_objective for h in result.histories]
    assert row["runs"] == 3
    assert row["final"] == pytest.approx(sum(finals) / 3)
    assert len({h.seed for h in result.histories}) == 3


def test_findings_name_best_p_and_compare_methods(smoke):
    text = "\n".join(jd_sphere.findings(smoke))
    assert "sphere, JD: best p = " in text
    assert "ill-conditioned sphere, AJD: best p = " in text
    assert "AJD loses to JD" in text or "AJD beats JD" in text
    assert "when Alternating BO picks its second y" in text


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
        "method=ajd, p=0.3, mu=0.001, iterations=60, seed=0, device=cpu, function=sphere, ajd_step_scale=1",
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
