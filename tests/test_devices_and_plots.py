"""Device selection, seeding, and the numbers behind the figures."""

import numpy as np
import pandas as pd
import pytest
import torch

from hpolab import History, available_devices, make_generator, resolve_device
from hpolab.plots import curves, final_values, objective_figure, sweep_figure
from hpolab.tables import significant


def test_auto_device_is_first_gpu_or_cpu():
    expected = "cuda:0" if torch.cuda.is_available() else "mps" if "mps" in available_devices() else "cpu"
    assert str(resolve_device("auto")) == expected
    assert str(resolve_device("cpu")) == "cpu"


@pytest.mark.parametrize("device", ["cuda:99", "tpu", "mps:3"])
def test_missing_device_error_names_available_devices(device):
    with pytest.raises(ValueError, match=r"device must be 'auto' or one of \['cpu'"):
        resolve_device(device)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed_is_rejected(seed):
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        make_generator(seed)


def history(label, seed, iterations, values, problem="sphere", p=0.5):
    frame = pd.DataFrame({"iteration": iterations, "objective": values,
                          "best_objective": np.minimum.accumulate(values)})
    return History(frame, "jd", label, problem, seed, {"p": p})


def test_curves_align_runs_on_a_common_grid_with_geometric_mean():
    runs = [history("JD", 0, [0, 5, 10], [100.0, 10.0, 1.0]), history("JD", 1, [0, 2, 10], [100.0, 1000.0, 100.0])]
    data = curves(runs, points=11)
    at = data.set_index("x")
    assert list(at.index) == list(np.linspace(0, 10, 11))
    assert at.loc[4.0, "mean"] == pytest.approx(np.sqrt(100.0 * 1000.0))  # run 0 at 100, run 1 at 1000
    assert at.loc[10.0, "mean"] == pytest.approx(10.0)
    assert (at.loc[10.0, "low"], at.loc[10.0, "high"]) == (1.0, 100.0)


def test_curves_count_runs_that_ended_early_only_where_they_have_values():
    runs = [history("JD", 0, [0, 10], [4.0, 1.0]), history("JD", 1, [0, 5], [4.0, 2.0])]
    data = curves(runs, points=11).set_index("x")
    assert data.loc[10.0, "runs"] == 1 and data.loc[5.0, "runs"] == 2


def test_final_values_average_over_seeds_per_p():
    runs = [history("JD p=0.5", 0, [0, 1], [3.0, 2.0]), history("JD p=0.5", 1, [0, 1], [3.0, 4.0]),
            history("JD p=0.1", 0, [0, 1], [3.0, 1.0], p=0.1)]
    data = final_values(runs).set_index("p")
    assert data.loc[0.5, "mean"] == pytest.approx(2.5) and data.loc[0.1, "mean"] == 1.0
    assert list(data["method"]) == list(data["line"]) == ["jd", "jd"]
    by_label = final_values(runs, line=lambda h: h.label).set_index("line")
    assert by_label.loc["JD p=0.5", "runs"] == 2 and by_label.loc["JD p=0.5", "method"] == "jd"


def test_figures_have_one_line_per_label():
    runs = [history("JD p=0.5", 0, [0, 1], [3.0, 2.0]), history("JD p=0.1", 0, [0, 1], [3.0, 1.0], p=0.1)]
    assert [t.name for t in objective_figure(runs).data] == ["JD p=0.5", "JD p=0.1"]
    assert len(sweep_figure(runs).data) == 1


def test_significant_rounding_keeps_three_digits():
    assert significant(123456.0) == 123000.0
    assert significant(0.00123456) == 0.00123


def test_tidy_frame_keeps_identity_and_flattens_structured_settings():
    run = history("JD", 3, [0, 1], [2.0, 1.0])
    run.config.update({"range": (-10.0, 1.5), "grid": [1, 2], "method": "ignored: the run's own name wins"})
    tidy = run.tidy()
    assert (tidy["seed"] == 3).all() and (tidy["method"] == "jd").all()
    assert tidy["range"].iloc[0] == "(-10.0, 1.5)" and tidy["grid"].iloc[0] == "[1, 2]"
