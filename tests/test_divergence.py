"""One divergence rule for every loop (hpolab/divergence.py), so that methods compared in one
figure are judged alike."""

import math
import re
from pathlib import Path

import pytest
import torch

from hpolab import divergence, run, sphere
from hpolab.hypergrad.unroll import Watch
from hpolab.methods import joint_descent
from hpolab.recorder import Recorder

LIBRARY = Path(__file__).resolve().parents[1] / "hpolab"


@pytest.mark.parametrize("value, reference, expected", [
    (math.nan, 1.0, True), (math.inf, 1.0, True), (-math.inf, 1.0, True),
    (1e6, 1.0, False), (1.000001e6, 1.0, True),            # 1e6 times a reference of 1
    (5e5, 1e-3, False), (2e6, 1e-3, True),                  # a small reference counts as 1
    (-2e7, 10.0, True), (9e6, 10.0, False),                 # magnitude, both signs
    (3.0, math.nan, False),                                 # no finite reference: only NaN / inf
])
def test_a_value_diverges_when_not_finite_or_beyond_a_million_times_its_reference(value, reference, expected):
    assert divergence.diverged(value, reference) is expected


def test_the_unrolled_training_watch_applies_the_same_rule():
    watch = Watch()
    assert not watch.diverged(torch.tensor(0.5), 0)  # the reference: 0.5, counted as 1
    assert not watch.diverged(torch.tensor(9e5), 1)
    assert watch.diverged(torch.tensor(2e6), 2) and "step 2" in watch.message
    assert Watch().diverged(torch.tensor(math.nan), 0)


def test_the_runner_stops_a_run_at_the_rule_and_keeps_its_rows():
    problem = sphere(4, 2, seed=0)
    history = run(joint_descent(p=0.5), problem, 40, seed=0, divergence_factor=1e-9)
    assert history.status == "diverged" and len(history.frame) == 2  # the start and the first step


def test_no_loop_in_the_library_writes_its_own_divergence_test():
    """grep finds one rule: no other module compares a loss with a factor of its start or
    tests a recorded loss for NaN on its own."""
    own_rules = re.compile(r"DIVERGENCE_FACTOR|divergence_factor \*|\b1e6 \*|max\(abs\(first\)|"
                           r"if not math\.isfinite\((loss|value|objective|rows\[-1\]\[\"objective\"\])\):$",
                           re.MULTILINE)
    offenders = [str(path.relative_to(LIBRARY)) for path in LIBRARY.rglob("*.py")
                 if path.name != "divergence.py" and own_rules.search(path.read_text())]
    assert offenders == []


def test_one_recorder_builds_every_history_row():
    """grep finds one place that builds history rows: no module but the recorder writes the
    counters of a row or its running best, or assembles a History from its own rows."""
    own_rows = re.compile(r"\"hvp_evaluations\": |\[\"best_objective\"\] = .*cummin|History\(ordered\(")
    offenders = [str(path.relative_to(LIBRARY)) for path in LIBRARY.rglob("*.py")
                 if path.name != "recorder.py" and own_rows.search(path.read_text())]
    assert offenders == []


def test_the_recorder_keeps_the_best_finite_objective_and_ends_a_diverged_run():
    recorder = Recorder()
    for step, value in enumerate([math.nan, 3.0, 1.0, math.inf, 2.0]):
        recorder.record(step, objective=value, kind="step", gradient_evaluations=step)
    assert [row["best_objective"] for row in recorder.rows][1:] == [3.0, 1.0, 1.0, 1.0]
    assert math.isnan(recorder.rows[0]["best_objective"])
    assert not recorder.diverged(2.0, "at step 0")          # the reference: checked for finiteness only
    assert not recorder.diverged(2e6, "at step 1")
    assert recorder.diverged(3e6, "at step 2") and recorder.status == "diverged"
    assert recorder.message == "diverged at step 2: the objective reached 3e+06"
    history = recorder.history("m", "M", "p", 0)
    assert history.status == "diverged" and list(history.frame["step"]) == [0, 1, 2, 3, 4]


def test_a_run_bounded_only_by_time_needs_a_time_budget():
    with pytest.raises(ValueError, match="max_seconds"):
        run(joint_descent(p=0.5), sphere(4, 2, seed=0), None)
    history = run(joint_descent(p=0.5), sphere(4, 2, seed=0), None, max_seconds=0.05)
    assert history.status == "finished" and history.frame["wall_time"].iloc[-1] >= 0.05
