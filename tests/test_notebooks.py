"""The notebooks as a user and as CI meet them: clean sources, smoke references, batch runs.

nbval itself re-executes tests/notebooks/*.ipynb (smoke-scale references made by
tools/refresh_references.py) and compares the cells tagged ``nbval-check-output``.
"""

import ast
import inspect
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from hpolab import notebooks

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def code_cells(notebook):
    return [c.source for c in notebook.cells
            if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_committed_notebook_is_clean_and_defaults_to_cpu_scale(source):
    notebook = nbformat.read(source, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")
    params = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    assert notebooks.parameters(source)["scale"].default == "cpu"
    assert any("nbval-check-output" in c.metadata.get("tags", []) for c in notebook.cells)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_every_line_of_the_parameters_cell_is_a_parameter_papermill_can_read(source):
    notebook = nbformat.read(source, as_version=4)
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assigned = [node.target.id for node in ast.parse(cell.source).body if isinstance(node, ast.AnnAssign)]
    assert list(notebooks.parameters(source)) == assigned  # papermill skips lines it cannot parse (an '=' in a comment)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_smoke_reference_is_in_sync_with_its_notebook(source):
    reference = ROOT / "tests" / "notebooks" / source.name
    assert reference.exists(), f"run: python tools/refresh_references.py {source.stem}"
    ref = nbformat.read(reference, as_version=4)
    assert code_cells(ref) == code_cells(nbformat.read(source, as_version=4)), (
        f"{source.name} changed: run python tools/refresh_references.py {source.stem}")
    injected = [c.source for c in ref.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'scale = "smoke"' in injected[0]
    errors = [o for c in ref.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_smoke_reference_shows_no_stderr_progress_lines(source):
    """The references are smoke runs through papermill, as `hpolab run` makes them: a
    progress bar there would be a block of red stderr lines in every report."""
    reference = nbformat.read(ROOT / "tests" / "notebooks" / source.name, as_version=4)
    streams = [o for c in reference.cells for o in c.get("outputs", []) if o.get("name") == "stderr"]
    assert not [o["text"][:80] for o in streams if "it/s]" in o["text"] or "%|" in o["text"]]


def test_hpolab_run_at_smoke_writes_notebook_tables_and_offline_report(tmp_path):
    written = notebooks.execute("01_jd_sphere", {"iterations": 30, "functions": ["sphere"]}, scale="smoke",
                                output=tmp_path / "run", progress=False)
    assert {"notebook", "run", "summary", "histories", "claims", "report"} <= set(written)
    summary = written["summary"].read_text().splitlines()
    assert summary[0] == "function,method,p,final,best,runs,diverged"
    assert len(summary) == 1 + 5 * 3 + 2  # JD, printed AJD and our unbiased AJD per p, two baselines
    html = written["report"].read_text()
    assert html.count("Plotly.newPlot") == 1 + 1 + 1 + 1  # figure 1, figure 2, unbiased AJD (ours), p sweep
    assert '<script src="http' not in html
    executed = nbformat.read(written["notebook"], as_version=4)
    assert not [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_leaves_saving_its_results_to_the_study(source):
    cells = code_cells(nbformat.read(source, as_version=4))
    assert not [c for c in cells if ".save(results_dir)" in c]
    assert [c for c in cells if "results_dir=results_dir" in c and ("run_study(" in c or "run_sensitivity(" in c)]


def test_run_study_with_results_dir_writes_the_files_and_prints_their_paths(tmp_path, capsys):
    """hpolab.studies.common.saves_results: what the notebooks did themselves before."""
    from hpolab.studies import jd_sphere

    folder = tmp_path / "results"
    result = jd_sphere.run_study("smoke", functions=["sphere"], methods=["jd"], p_values=[0.5], iterations=20,
                                 seeds=1, progress=False, results_dir=folder)
    files = {"summary": "summary.csv", "histories": "histories.csv.gz", "parameters": "parameters.json"}
    assert capsys.readouterr().out.splitlines() == [f"{kind}: {folder / name}" for kind, name in files.items()]
    assert all((folder / name).is_file() for name in files.values())
    assert (folder / "summary.csv").read_text() == result.summary.to_csv(index=False)
    assert "results_dir" in inspect.signature(jd_sphere.run_study).parameters


def test_a_study_result_saves_the_tables_its_class_names_beside_the_common_files(tmp_path):
    """StudyResult.tables: one save for every study's further tables (study 12's ``sweep`` field
    goes to sigma_sweep.csv), instead of a save method per study."""
    import pandas as pd

    from hpolab.history import History
    from hpolab.studies.stn import STNResult

    run = History(pd.DataFrame({"iteration": [0, 1], "objective": [2.0, 1.0]}), "stn", "STN", "ridge", 0, {})
    sweep = pd.DataFrame({"sigma": [0.1, 0.3], "relative error": [1 / 3, 2 / 3]})
    paths = STNResult([run], pd.DataFrame({"a": [1]}), {"scale": "smoke"}, sweep=sweep).save(tmp_path)
    assert list(paths) == ["summary", "histories", "parameters", "sigma_sweep"]
    assert paths["sigma_sweep"] == tmp_path / "sigma_sweep.csv"
    assert paths["sigma_sweep"].read_text().splitlines() == ["sigma,relative error", "0.1,0.33333333", "0.3,0.66666667"]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "hpolab.cli", *args], capture_output=True, text=True, timeout=120)


def test_cli_list_shows_parameters_with_types_and_defaults():
    result = cli("list")
    assert result.returncode == 0
    assert "01_jd_sphere" in result.stdout
    assert "  scale: str = 'cpu'  # smoke" in result.stdout
    assert "  p_values: list = [0.1, 0.3, 0.5, 0.7, 0.9]" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["run", "99_nothing"], "notebook must be one of ['01_jd_sphere', "),
    (["run", "01", "-p", "learning_rate", "0.1"], "parameter 'learning_rate' is not in 01_jd_sphere's parameters"),
    (["run", "01", "-p", "seeds", "many"], "parameter seeds takes int, got 'many'"),
    (["run", "01", "-p", "mu", "[1]"], "parameter mu takes float, got '[1]'"),
    (["run", "01", "--scale", "huge"], "invalid choice: 'huge'"),
])
def test_cli_bad_input_ends_with_one_line_and_status_2(args, message):
    result = cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("hpolab") and result.stdout == ""



def test_references_are_made_on_the_cpu_code_path_the_tests_pin():
    """The smoke references and the nbval kernels must run on one CPU code path (tests/conftest.py),
    or a table's last digits follow the machine that made the reference."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    modules = {}
    for name, path in {"conftest": root / "tests" / "conftest.py",
                       "refresh": root / "tools" / "refresh_references.py"}.items():
        spec = importlib.util.spec_from_file_location(f"_pins_{name}", path)
        modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(modules[name])
    assert modules["refresh"].REPRODUCIBLE_CPU == modules["conftest"].REPRODUCIBLE_CPU
    assert all(os.environ.get(key) == value for key, value in modules["conftest"].REPRODUCIBLE_CPU.items())
