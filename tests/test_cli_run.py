"""``hpolab run`` as a user meets it: bad values stop with one line, progress stays out of reports."""

import subprocess
import sys

import nbformat

from hpolab import notebooks


def run_cli(*args, runs):
    return subprocess.run([sys.executable, "-m", "hpolab.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "HPOLAB_RUNS": str(runs)})


def test_a_value_the_study_rejects_ends_with_one_line_status_2_and_no_run_folder(tmp_path):
    result = run_cli("run", "01", "--scale", "smoke", "-p", "seeds", "-1", runs=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "hpolab: error: 01_jd_sphere: seeds must be an integer >= 1, got -1")
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "01_jd_sphere").exists()


def test_progress_bars_go_to_the_terminal_not_into_the_executed_notebook(tmp_path, capsys):
    written = notebooks.execute("01_jd_sphere", {"iterations": 30, "functions": ["sphere"]}, scale="smoke",
                                output=tmp_path / "run", report=False, progress=True)
    relayed = capsys.readouterr().err
    assert "it/s]" in relayed or "s/it]" in relayed
    executed = nbformat.read(written["notebook"], as_version=4)
    streams = [o.get("text", "") for c in executed.cells for o in c.get("outputs", []) if o.get("name") == "stderr"]
    assert not any("it/s]" in text or "s/it]" in text for text in streams)
    assert (tmp_path / "run" / "progress.log").stat().st_size > 0


def test_the_kernels_own_process_output_goes_to_kernel_log_not_the_terminal(tmp_path):
    """What the kernel process writes to its file descriptors itself (a C library's abort message
    while the kernel is stopped, say) would add lines to ``hpolab run``'s one-line errors; it goes
    to the run folder's kernel.log. Cells' own output still reaches the executed notebook."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell('scale: str = "smoke"')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell(
        "import os\nos.write(1, b'fd 1 of the kernel\\n')\nos.write(2, b'fd 2 of the kernel\\n')\nprint('a cell')")]
    nbformat.write(notebook, tmp_path / "91_loud.ipynb")
    result = subprocess.run([sys.executable, "-m", "hpolab.cli", "run", "91", "--output", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=300,
                            env={**__import__("os").environ, "HPOLAB_NOTEBOOKS": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "of the kernel" not in result.stdout + result.stderr
    assert (tmp_path / "run" / "kernel.log").read_text().splitlines() == ["fd 1 of the kernel", "fd 2 of the kernel"]
    executed = nbformat.read(tmp_path / "run" / "91_loud.ipynb", as_version=4)
    assert "a cell" in executed.cells[-1].outputs[0]["text"]
