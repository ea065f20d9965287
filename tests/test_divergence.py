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
