"""benchmarks/gpu_check.py in its test-suite form (``--device cpu --smoke``), as the device call would run it.

The script is what a session lent a GPU runs in its one device call, so it must work end to
end before any GPU is there: every section present, the smoke notebook passing, the estimators
agreeing CPU against CPU, and the README-ready table written. About a minute on 2 cores.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def check(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--smoke",
                           "--out", str(out), "--runs", str(out / "runs")],
                          cwd=REPO, env=environment, capture_output=True, text=True, timeout=300, check=False)
    return done, out


def test_exits_zero_and_writes_json_and_markdown(check):
    done, out = check
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (out / "gpu_check.json").is_file()
    assert (out / "gpu_check.md").is_file()


def test_every_section_is_reported(check):
    report = json.loads((check[1] / "gpu_check.json").read_text())
    assert list(report["sections"]) == ["notebooks", "estimators", "benchmarks", "paper_scale"]
    for name, section in report["sections"].items():
        assert section["status"] == "pass", (name, section.get("error"))
        assert section["rows"] and section["seconds"] >= 0
    assert report["environment"]["device"] == "cpu" and report["smoke"] is True


def test_smoke_notebooks_passed(check):
    rows = json.loads((check[1] / "gpu_check.json").read_text())["sections"]["notebooks"]["rows"]
    assert [row["notebook"] for row in rows] == ["09_fds_lr_schedules"]
    assert all(row["status"] == "pass" and row["seconds"] > 0 for row in rows)
    assert (check[1] / "runs" / "09_fds_lr_schedules" / "summary.csv").is_file()


def test_estimators_agree_cpu_against_cpu(check):
    rows = json.loads((check[1] / "gpu_check.json").read_text())["sections"]["estimators"]["rows"]
    compared = {row["estimator"]: row for row in rows if row["status"] != "info"}
    assert set(compared) == {"forward", "forward, double-backward", "reverse", "zeroth-order", "implicit"}
    for row in compared.values():
        assert row["dtype"] == "float64"
        assert row["max_rel_error"] <= row["tolerance"]
        assert row["cpu_s"] > 0 and row["device_s"] > 0


def test_benchmarks_time_both_modes_and_they_agree(check):
    rows = json.loads((check[1] / "gpu_check.json").read_text())["sections"]["benchmarks"]["rows"]
    assert [row["T"] for row in rows] == [10, 20]
    for row in rows:
        assert row["forward_s"] > 0 and row["reverse_s"] > 0
        assert row["forward_peak_mb"] is None  # no device memory on a CPU
        assert row["rel_diff"] < 1e-4  # float32


def test_paper_scale_lists_every_notebook(check):
    rows = json.loads((check[1] / "gpu_check.json").read_text())["sections"]["paper_scale"]["rows"]
    statuses = {row["notebook"][:2]: row["status"] for row in rows}
    assert statuses["09"] == "pass" and statuses["10"] == "skipped"
    assert len(statuses) == len(list((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")))


def test_markdown_has_a_table_per_section(check):
    text = (check[1] / "gpu_check.md").read_text()
    for heading in ("**notebooks**: pass", "**estimators**: pass", "**benchmarks**: pass", "**paper_scale**: pass"):
        assert heading in text
    assert "| notebook (smoke) | status | wall | error |" in text
    assert "| 09_fds_lr_schedules | pass |" in text
