"""The claims ledger: verdicts computed from results, one table across runs, and its page."""

import json
from pathlib import Path
import subprocess
import sys

import pandas as pd
import pytest

from hpolab import claims
from hpolab.claims import Claim

ROOT = Path(__file__).resolve().parents[1]


def larger_than(threshold):
    """A claim that the result (a number) exceeds ``threshold``."""
    return Claim("bigger", "01_jd_sphere", f"the value exceeds {threshold}", "Paper, Figure 1",
                 lambda value: claims.verdict(value > threshold, f"value {value:.3g}"))


def test_a_check_holds_or_fails_on_the_numbers_of_the_result():
    claim = larger_than(1.0)
    assert claim.evaluate(2.0, "cpu") == claims.holds("value 2")
    assert claim.evaluate(0.5, "cpu") == claims.fails("value 0.5")


def test_a_missing_number_fails_rather_than_holds():
    assert larger_than(1.0).evaluate(float("nan"), "cpu").status == claims.FAILS


def test_at_a_scale_too_small_the_check_runs_but_decides_nothing():
    found = larger_than(1.0).evaluate(2.0, "smoke")
    assert found.status == claims.UNTESTABLE
    assert found.measured.startswith("value 2 [smoke scale")


def test_an_unknown_verdict_is_refused():
    with pytest.raises(ValueError, match="verdict must be one of"):
        claims.Verdict("maybe", "")


def test_every_notebook_has_a_study_module_and_its_claims_name_it():
    for notebook in claims.STUDY_MODULES:
        assert (ROOT / "notebooks" / f"{notebook}.ipynb").exists()
        for claim in claims.claims_for(notebook):
            assert claim.notebook == notebook and claim.says and claim.source
            assert set(claim.scales) <= {"smoke", "cpu", "paper"}
    with pytest.raises(ValueError, match="notebook must be one of"):
        claims.claims_for("99_nothing")


def test_report_prints_every_claim_and_saves_claims_csv(tmp_path, capsys):
    table = claims.evaluate("01_jd_sphere", 2.0, "cpu", claims=[larger_than(1.0), larger_than(3.0)])
    claims.show(table)
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == "1 holds, 1 fails, 0 not testable here (scale cpu)"
    assert "[fails] bigger (Paper, Figure 1)" in printed
    saved = pd.read_csv(claims.save(table, tmp_path), keep_default_na=False)
    assert list(saved.columns) == claims.COLUMNS
    assert saved["verdict"].tolist() == ["holds", "fails"]


def write_run(root, notebook, name, started, scale="cpu", verdict="holds", wall=60.0):
    folder = root / notebook / name
    folder.mkdir(parents=True)
    table = claims.evaluate(notebook, 2.0, scale, claims=[larger_than(1.0 if verdict == "holds" else 3.0)])
    claims.save(table, folder)
    (folder / "run.json").write_text(json.dumps({"scale": scale, "started": started, "wall_seconds": wall}))
    (folder / "histories.csv").write_text("big\n")
    return folder


def test_collect_takes_the_latest_run_of_each_notebook_at_the_scale_asked(tmp_path):
    write_run(tmp_path, "01_jd_sphere", "cpu-1", "2026-01-01T00:00:00", verdict="fails")
    newest = write_run(tmp_path, "01_jd_sphere", "cpu-2", "2026-02-01T00:00:00", verdict="holds", wall=90.0)
    write_run(tmp_path, "01_jd_sphere", "smoke-3", "2026-03-01T00:00:00", scale="smoke")
    table = claims.collect(tmp_path, "cpu", complete=False)
    assert table["verdict"].tolist() == ["holds"]
    assert table["run"].tolist() == [str(newest)] and table["wall seconds"].tolist() == [90.0]
    assert claims.collect(tmp_path, "smoke", complete=False)["verdict"].tolist() == [claims.UNTESTABLE]


def test_collect_lists_declared_claims_that_no_run_checked_as_not_run(tmp_path):
    table = claims.collect(tmp_path, "cpu")
    declared = sum(len(claims.claims_for(n)) for n in claims.STUDY_MODULES)
    assert len(table) == declared and set(table["verdict"]) <= {"not run"}


def test_keep_copies_only_the_small_files_of_the_latest_runs(tmp_path):
    write_run(tmp_path / "runs", "01_jd_sphere", "cpu-1", "2026-01-01T00:00:00")
    kept = claims.keep(tmp_path / "runs", tmp_path / "results", "cpu")
    assert sorted(p.name for p in kept["01_jd_sphere"].iterdir()) == ["claims.csv", "run.json"]
    assert claims.collect(tmp_path / "results", "cpu", complete=False)["verdict"].tolist() == ["holds"]


def test_markdown_page_has_a_row_per_claim_and_each_runs_wall_time(tmp_path):
    write_run(tmp_path, "01_jd_sphere", "cpu-1", "2026-01-01T00:00:00", wall=120.0)
    page = claims.markdown(claims.collect(tmp_path, "cpu", complete=False), "Claims")
    assert page.startswith("# Claims\n")
    assert "## 01_jd_sphere" in page and "wall time 2.0 min" in page
    assert "| bigger | the value exceeds 1.0 | Paper, Figure 1 | value 2 | **holds** |" in page


def test_cli_claims_prints_the_table_and_writes_the_page(tmp_path):
    write_run(tmp_path / "runs", "01_jd_sphere", "cpu-1", "2026-01-01T00:00:00")
    page = tmp_path / "claims.md"
    result = subprocess.run([sys.executable, "-m", "hpolab.cli", "claims", "--runs", str(tmp_path / "runs"),
                             "--scale", "cpu", "--markdown", str(page)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "  holds             bigger: value 2" in result.stdout
    assert page.read_text().startswith("# Claims ledger, cpu scale")


def test_cli_claims_keep_needs_a_scale(tmp_path):
    result = subprocess.run([sys.executable, "-m", "hpolab.cli", "claims", "--keep", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--keep needs --scale" in result.stderr


def test_a_run_record_names_the_code_that_made_it(tmp_path):
    import datetime as dt

    from hpolab.cache import code_version

    path = claims.write_run_record(tmp_path, "01_jd_sphere", "smoke", dt.datetime(2026, 1, 1), 1.0, "finished", {})
    code = json.loads(path.read_text())["code"]
    assert code["source_hash"] == code_version()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(claims.__file__).parent, capture_output=True, text=True)
    if head.returncode == 0:
        assert code["commit"] == head.stdout.strip() and isinstance(code["library_modified"], bool)
