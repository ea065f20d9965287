"""hpolab sweep and hpolab report: the grid, the cache, failed runs, a local pool and a Dask cluster.

The runs are real papermill runs of 01_jd_sphere at smoke scale with tiny parameters
(30 evaluations, one function, two methods), and of a toy notebook written here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from hpolab import notebooks, sweep, sweep_grid, sweep_report

TINY = [("iterations", "30"), ("functions", "['sphere']"), ("methods", "['jd', 'ajd']")]
TINY_ARGS = [arg for key, value in TINY for arg in ("-p", key, value)]


def cli(*args, runs: Path, timeout: int = 300):
    environment = {**os.environ, "HPOLAB_RUNS": str(runs)}
    return subprocess.run([sys.executable, "-m", "hpolab.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=environment)


# --- the grid and the cache key, without running anything ---------------------------------------------------


def test_grid_values_split_at_commas_outside_brackets_and_quotes():
    assert sweep_grid.split_values("0.1, 0.5,0.9") == ["0.1", "0.5", "0.9"]
    assert sweep_grid.split_values("[1, 2],[3],'a,b'") == ["[1, 2]", "[3]", "'a,b'"]


def test_a_grid_key_names_a_parameter_or_one_element_of_its_list_parameter():
    declared = notebooks.parameters(notebooks.find("01"))
    assert sweep_grid.resolve_key("mu", declared, "01") == ("mu", False)
    assert sweep_grid.resolve_key("p", declared, "01") == ("p_values", True)          # <key>_values
    assert sweep_grid.resolve_key("function", declared, "01") == ("functions", True)  # <key>s
    with pytest.raises(ValueError, match="parameter 'q' is not in 01's parameters"):
        sweep_grid.resolve_key("q", declared, "01")


def test_plan_runs_every_combination_with_stable_keys(tmp_path):
    plan = sweep.plan("01", ["p=0.1,0.5", "mu=0.001,0.01"], TINY, scale="smoke", root=tmp_path)
    assert len(plan.runs) == 4 and len({run.key for run in plan.runs}) == 4
    first = plan.runs[0]
    assert first.point == {"p": 0.1, "mu": 0.001}
    assert first.values == {"iterations": 30, "functions": ["sphere"], "methods": ["jd", "ajd"], "scale": "smoke",
                            "p_values": [0.1], "mu": 0.001}
    assert first.folder == tmp_path.resolve() / "01_jd_sphere" / first.key
    again = sweep.plan("01_jd_sphere", ["mu=0.001,0.01", "p=0.1,0.5"], TINY[::-1], scale="smoke", root=tmp_path)
    assert {run.key for run in again.runs} == {run.key for run in plan.runs}  # order of options does not matter
    # a default given explicitly, an int for a float, the list spelled out: the same run
    same = sweep.plan("01", ["p_values=[0.1]"], TINY + [("seeds", "0"), ("mu", "1e-3")], scale="smoke", root=tmp_path)
    assert same.runs[0].key == first.key
    keys = [sweep.plan("01", [f"mu={mu}"], root=tmp_path).runs[0].key for mu in ("1", "1.0")]
    assert keys[0] == keys[1]
    other_scale = sweep.plan("01", ["p=0.1", "mu=0.001"], TINY, scale="cpu", root=tmp_path)
    assert other_scale.runs[0].key != first.key


@pytest.mark.parametrize("grid, fixed, message", [
    (["p=0.1,zero"], [], "parameter p takes float, got 'zero'"),
    (["seeds=1,2.5"], [], "parameter seeds takes int, got '2.5'"),
    (["p=0.1"], [("p_values", "[0.5]")], "parameter 'p_values' is set more than once"),
    (["results_dir=a"], [], "set by hpolab itself"),
    (["p"], [], "--grid takes key=value1,value2"),
])
def test_plan_rejects_bad_input(tmp_path, grid, fixed, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        sweep.plan("01", grid, fixed, root=tmp_path)


def test_finished_runs_are_skipped_failed_ones_only_when_asked(tmp_path):
    plan = sweep.plan("01", ["p=0.1,0.3,0.5,0.7"], root=tmp_path)
    for run, state in zip(plan.runs, ["finished", "failed", "running"]):  # the fourth never started
        run.folder.mkdir(parents=True)
        sweep.write_status(run.folder, {"status": state})
    assert [run.point["p"] for run in sweep.to_do(plan)] == [0.5, 0.7]
    assert [run.point["p"] for run in sweep.to_do(plan, retry_failed=True)] == [0.3, 0.5, 0.7]


def test_a_change_to_the_library_code_gives_new_run_keys(tmp_path, monkeypatch):
    """A finished run is reused only while the notebook's code cells and the hpolab/ sources that
    computed it are unchanged (issue 14: stale results came back silently after a code change)."""
    before = [run.folder.name for run in sweep.plan("01", ["p=0.3,0.5"], root=tmp_path).runs]
    assert before == [run.folder.name for run in sweep.plan("01", ["p=0.3,0.5"], root=tmp_path).runs]
    monkeypatch.setattr(sweep, "code_version", lambda: "another-library")
    after = [run.folder.name for run in sweep.plan("01", ["p=0.3,0.5"], root=tmp_path).runs]
    assert set(after).isdisjoint(before)


# --- runs of a toy notebook: divergence ---------------------------------------------------------------------


def toy_notebook(path: Path) -> Path:
    """A notebook whose study waits ``wait`` seconds, then writes a summary.csv with
    ``diverged`` of its two trainings diverged."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell('scale: str = "cpu"\ndiverged: int = 0\nwait: float = 0.0\n'
                                           'results_dir: str = ""')
    parameters.metadata["tags"] = ["parameters"]
    study = nbformat.v4.new_code_cell(
        "import pathlib, time\n"
        "if results_dir:\n    pathlib.Path(results_dir, 'started').touch()  # the kernel is up and running\n"
        "time.sleep(wait)\n"
        "rows = ['method,runs,diverged', f'a,1,{min(diverged, 1)}', f'b,1,{max(diverged - 1, 0)}']\n"
        "pathlib.Path(results_dir, 'summary.csv').write_text('\\n'.join(rows))")
    notebook.cells = [parameters, study]
    nbformat.write(notebook, path)
    return path


def test_a_run_whose_every_training_diverged_is_failed_a_partial_divergence_is_counted(tmp_path):
    path = toy_notebook(tmp_path / "90_toy.ipynb")
    plan = sweep.plan(str(path), ["diverged=1,2"], root=tmp_path / "sweeps")
    statuses = [sweep.execute_run(sweep.task(plan, run, report=False)) for run in plan.runs]
    assert [s["status"] for s in statuses] == ["finished", "failed"]
    assert statuses[0]["error"] is None and statuses[0]["diverged"] == "1 of 2 trainings diverged"
    assert statuses[1]["error"] == "diverged: all 2 trainings diverged"
    assert sweep.read_status(plan.runs[1].folder) == statuses[1]


def test_an_interrupted_sweep_resumes_where_it_stopped(tmp_path):
    toy_notebook(tmp_path / "90_toy.ipynb")
    environment = {**os.environ, "HPOLAB_RUNS": str(tmp_path), "HPOLAB_NOTEBOOKS": str(tmp_path)}
    command = [sys.executable, "-m", "hpolab.cli", "sweep", "90", "--grid", "wait=0,600", "--no-report"]
    # a terminal's Ctrl-C: SIGINT at its default in the child, whatever an earlier test left in this
    # process (an ignored SIGINT is inherited across exec, and Python then never raises KeyboardInterrupt)
    process = subprocess.Popen(command, env=environment, start_new_session=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    plan = sweep.plan(str(tmp_path / "90_toy.ipynb"), ["wait=0,600"], root=tmp_path / "sweeps")
    quick, slow = plan.runs
    try:
        deadline = time.monotonic() + 120
        # "running" is written before the kernel starts; Ctrl-C inside a kernel's start-up leaves
        # nbclient waiting out its 60 s start-up timeout (seen in the full suite), so interrupt
        # once the slow run's study cell has begun its 600 s wait.
        while not (Path(slow.folder) / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1)
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole process group
        _, stderr = process.communicate(timeout=240)  # in the full suite it has taken over 60 s (not alone: ~8 s)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130
    # (a pool process may still report its dying kernel after this line)
    assert "interrupted: run the same command again to resume (finished runs are kept)" in stderr.splitlines()
    assert sweep.read_status(quick.folder)["status"] == "finished"
    assert sweep.read_status(slow.folder)["status"] == "interrupted"
    assert sweep.to_do(plan) == [slow]  # the same command runs only what is left


# --- the command line ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["sweep", "99_nothing", "--grid", "p=0.1"], "notebook must be one of ['01_jd_sphere', "),
    (["sweep", "01", "--grid", "q=1,2"], "parameter 'q' is not in 01_jd_sphere's parameters"),
    (["sweep", "01", "--grid", "p=0.1", "-p", "learning_rate", "0.1"],
     "parameter 'learning_rate' is not in 01_jd_sphere's parameters"),
    (["sweep", "01", "--grid", "p=0.1,high"], "parameter p takes float, got 'high'"),
    (["sweep", "01", "--grid", "p=0.1", "--address", "tcp://127.0.0.1:1", "--timeout", "2"],
     "cannot reach the Dask scheduler at 'tcp://127.0.0.1:1'"),
])
def test_cli_bad_sweep_input_ends_with_one_line_and_status_2(tmp_path, args, message):
    result = cli(*args, runs=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and result.stdout == ""
    assert result.stderr.startswith("hpolab: error: ")
    assert not (tmp_path / "sweeps").exists()


def test_cli_sweep_records_a_failed_run_goes_on_recomputes_nothing_the_second_time_and_reports(tmp_path):
    command = ["sweep", "01_jd_sphere", "--grid", "p=0.1,1.5", *TINY_ARGS, "--scale", "smoke", "--no-report"]
    first = cli(*command, runs=tmp_path)
    assert first.returncode == 1, first.stderr  # one run failed; the other finished
    assert "2 runs, 0 already done, 2 to run" in first.stdout
    assert "p=1.5: failed: ValueError: p must lie in the open interval (0, 1), got 1.5" in first.stdout
    folder = tmp_path / "sweeps" / "01_jd_sphere"
    statuses = {s["point"]["p"]: s for s in map(sweep.read_status, folder.iterdir()) if s}
    assert statuses[0.1]["status"] == "finished" and statuses[0.1]["parameters"]["p_values"] == [0.1]
    assert statuses[1.5]["status"] == "failed" and "open interval" in statuses[1.5]["error"]
    files = sorted(path for path in folder.rglob("*") if path.is_file() and path.name != "sweep.json")
    stamps = {path: path.stat().st_mtime_ns for path in files}
    assert folder / statuses[0.1]["key"] / "summary.csv" in stamps

    second = cli(*command, runs=tmp_path)
    assert second.returncode == 1
    assert "2 runs, 2 already done, 0 to run" in second.stdout
    assert {path: path.stat().st_mtime_ns for path in files} == stamps  # nothing recomputed, nothing rewritten

    report = cli("report", runs=tmp_path)
    assert report.returncode == 0, report.stderr
    lines = report.stdout.splitlines()
    assert lines[0] == "sweep of 01_jd_sphere (smoke scale) over p in [0.1, 1.5]: 1 finished, 1 failed"
    table = lines[lines.index("best by p (one column per run):") + 1:]
    assert table[0].split() == ["function", "method", "p=0.1", "p=1.5"]
    jd = next(line.split() for line in table if line.split()[:2] == ["sphere", "JD"])
    assert len(jd) == 3 and float(jd[2]) > 0  # p=0.1's best objective; nothing for the failed p=1.5
    assert next(line.split() for line in table if line.split()[0] == "status") == ["status", "finished", "failed"]
    assert "p=1.5: failed: ValueError: p must lie in the open interval (0, 1), got 1.5" in lines
    html = (folder / "report.html").read_text()
    assert html.count("Plotly.newPlot") == 1 and '<script src="http' not in html
    assert "ValueError: p must lie in the open interval" in html
    assert (folder / "report.csv").read_text().startswith("p,status,function,method,final,best,runs,diverged,error")


def test_sweep_on_a_local_dask_cluster_of_two_worker_processes(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        client = sweep.connect(address, timeout=30)
        try:
            workers = set(client.run(os.getpid).values())
            assert len(workers) == 2 and os.getpid() not in workers
            plan = sweep.plan("01", ["p=0.1,0.9"], TINY, scale="smoke", root=tmp_path)
            counts = sweep.run_sweep(plan, lambda tasks: sweep.run_dask(tasks, client), report=False, progress=False)
        finally:
            client.close()
    assert counts == {"runs": 2, "cached": 0, "finished": 2, "failed": 0}
    statuses = [sweep.read_status(run.folder) for run in plan.runs]
    assert {status["pid"] for status in statuses} <= workers  # each ran in a worker process of the cluster
    written = sweep_report.write_report(plan.folder)
    assert written["metric"] == "best"
    assert list(written["table"]["p"].unique()) == [0.1, 0.9] and set(written["table"]["status"]) == {"finished"}
    compared = written["comparison"]  # best by p: a row per function and method, a column per run
    assert list(compared.columns) == ["function", "method", "p=0.1", "p=0.9"]
    assert compared.iloc[-1].tolist() == ["status", "", "finished", "finished"]
    jd = compared[compared["method"] == "JD"].iloc[0]
    assert float(jd["p=0.1"]) > 0 and float(jd["p=0.9"]) > 0
    assert json.loads((plan.folder / "sweep.json").read_text())["grid"] == {"p": [0.1, 0.9]}
