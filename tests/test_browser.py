"""The widget panel in a real browser: JupyterLab serves 01_jd_sphere to headless Chromium.

The test starts ``jupyter lab`` on 127.0.0.1 (free port, random token, settings and
runtime files in a temporary folder), opens a copy of ``notebooks/01_jd_sphere.ipynb``
whose parameters cell asks for the ``smoke`` scale, runs every cell, sets p in the panel,
presses Run and waits until the live ``FigureWidget`` gains a line for that p. No cell
may show a traceback. A screenshot of the result is saved to
``test-artifacts/browser/01_jd_sphere.png`` (git-ignored).

Chromium is the system's (``apt-get install chromium``; ``.ci/run`` installs it), driven
by Playwright's Python package; ``playwright install`` is never needed. The test skips,
saying why, only where no Chromium binary exists. Deselect it with ``-m "not browser"``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_jd_sphere.ipynb"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
NEW_P = 0.35  # not a slider default, so the line must come from the edit
# Flags that work offline and as root in a container.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
# Smoke scale, one function and two methods: the cells run in seconds.
PARAMETERS = {"scale": "smoke", "functions": ["sphere"], "methods": ["jd", "alt-bo"], "p_values": [0.5]}

NO_CHROMIUM = "no Chromium binary on PATH (Debian: apt-get install chromium; .ci/run installs it)"


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


pytestmark = [pytest.mark.browser, pytest.mark.skipif(chromium_binary() is None, reason=NO_CHROMIUM)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def smoke_copy(folder: Path, source: Path = NOTEBOOK, parameters: dict = PARAMETERS, panel_only: bool = False) -> Path:
    """The notebook with its parameters cell set to ``parameters`` (other lines kept). With
    ``panel_only``, only the parameters cell, the imports cell after it and the panel's cell
    are kept: the panel is what the test drives, the study's own runs are not needed."""
    notebook = nbformat.read(source, as_version=4)
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    lines = []
    for line in cell.source.splitlines():
        name = line.split(":", 1)[0].strip()
        if name in parameters:
            kind = line.split(":", 1)[1].split("=", 1)[0].strip()
            line = f"{name}: {kind} = {json.dumps(parameters[name])}"
        lines.append(line)
    cell.source = "\n".join(lines)
    if panel_only:
        code = [c for c in notebook.cells if c.cell_type == "code"]
        start = code.index(cell)
        notebook.cells = [cell, code[start + 1], next(c for c in code if "panel(globals()" in c.source)]
    path = folder / source.name
    nbformat.write(notebook, path)
    return path


def write_settings(folder: Path) -> None:
    """No news pop-up (offline), and every cell kept in the DOM."""
    settings = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    }
    for name, values in settings.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on a free local port serving a smoke copy of the notebook."""
    yield from serve(tmp_path, smoke_copy)


def serve(tmp_path, make_copy):
    """Run JupyterLab on a free local port over ``make_copy(folder)``'s notebook; yields its URL."""
    root = tmp_path / "notebooks"
    root.mkdir()
    notebook = make_copy(root)
    write_settings(tmp_path / "settings")
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               PYTHONWARNINGS="ignore")
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
               f"--port={port}", "--port-retries=0", f"--ServerApp.root_dir={root}",
               f"--IdentityProvider.token={token}", "--LabApp.expose_app_in_browser=True",
               f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
               f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = (tmp_path / "jupyter.log").open("w")
    server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("jupyter lab did not start:\n" + (tmp_path / "jupyter.log").read_text()[-3000:])
            time.sleep(0.5)
        yield f"{base}/lab/tree/{notebook.name}?token={token}"
    finally:
        # the server and the kernels it started (its own session)
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(server.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            server.wait(10)
        log.close()


@pytest.fixture
def page():
    binary = chromium_binary()
    if binary is None:
        pytest.skip(NO_CHROMIUM)
    from playwright.sync_api import sync_playwright  # in the test extras; a missing package fails, not skips

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=binary, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            yield context.new_page()
        finally:
            browser.close()


def panel_traces(page) -> list[str]:
    """Names of the lines in the panel's live figure (plotly's graph div keeps them in .data)."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('.hpolab-panel .js-plotly-plot'))
        .flatMap(gd => (gd.data || []).map(trace => String(trace.name || '')))""")


def error_outputs(page) -> list[str]:
    texts = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    return [t for t in texts if "Traceback" in t or re.search(r"^\w*Error\b", t, re.M)]


def test_panel_run_in_jupyterlab_adds_a_live_trace_for_the_new_p(lab, page):
    started = time.monotonic()
    page.set_default_timeout(60_000)
    page.goto(lab)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext", timeout=120_000)
    page.wait_for_function("""() => {
        const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel;
        return kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
    }""", timeout=120_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

    # the panel renders once the last code cells ran
    p_control = page.locator(".hpolab-panel .hpolab-control-p")
    p_control.wait_for(state="visible", timeout=300_000)
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status "
                           "=== 'idle'", timeout=300_000)
    before = panel_traces(page)

    # type the new p into the slider's readout (the slider clamps it to its range itself)
    readout = p_control.locator(".widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(f"{NEW_P}")
    page.keyboard.press("Enter")
    page.wait_for_function("(value) => document.querySelector('.hpolab-panel .hpolab-control-p .widget-readout')"
                           ".textContent.trim() === value", arg=f"{NEW_P:.2f}")

    page.locator(".hpolab-panel .hpolab-run").click()
    wanted = f"p={NEW_P:g}"
    page.wait_for_function("""(wanted) => Array.from(document.querySelectorAll('.hpolab-panel .js-plotly-plot'))
        .some(gd => (gd.data || []).some(t => String(t.name || '').includes(wanted) && (t.x || []).length > 0))""",
                           arg=wanted, timeout=180_000)
    # the run finishes: Run is enabled again and the status names the result
    page.wait_for_function("() => !document.querySelector('.hpolab-panel .hpolab-run').disabled", timeout=180_000)
    status = page.locator(".hpolab-panel .hpolab-status").inner_text()

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator(".hpolab-panel").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "01_jd_sphere.png"))

    after = panel_traces(page)
    assert len(after) == len(before) + 1
    assert wanted in after[-1]
    assert not status.startswith("error"), status
    assert wanted in status, status
    assert error_outputs(page) == []
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']").count() == 0
    print(f"browser test: {time.monotonic() - started:.0f} s")


# --- one notebook of each family, through its panel only -------------------------------------

def open_and_run_all(page, url) -> None:
    """Open a notebook in JupyterLab, run every cell, wait until the panel is drawn and idle."""
    page.set_default_timeout(60_000)
    page.goto(url)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext", timeout=120_000)
    page.wait_for_function("""() => {
        const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel;
        return kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
    }""", timeout=120_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.locator(".hpolab-panel .hpolab-run").wait_for(state="visible", timeout=300_000)
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status "
                           "=== 'idle'", timeout=300_000)


def set_number(page, name: str, value) -> None:
    """Type ``value`` into the panel's number box ``name`` (a BoundedIntText / FloatText)."""
    box = page.locator(f".hpolab-panel .hpolab-control-{name} input")
    box.fill(str(value))
    box.press("Enter")
    page.wait_for_function("([name, value]) => document.querySelector(`.hpolab-panel .hpolab-control-${name} input`)"
                           ".value === value", arg=[name, str(value)])


def run_and_wait(page, wanted: str, timeout: int = 240_000) -> dict:
    """Press Run, wait for a line whose name holds ``wanted`` to have points and for the run to
    end; returns that line (name, x, y) and the status text."""
    page.locator(".hpolab-panel .hpolab-run").click()
    page.wait_for_function("""(wanted) => Array.from(document.querySelectorAll('.hpolab-panel .js-plotly-plot'))
        .some(gd => (gd.data || []).some(t => String(t.name || '').includes(wanted) && (t.x || []).length > 0))""",
                           arg=wanted, timeout=timeout)
    page.wait_for_function("() => !document.querySelector('.hpolab-panel .hpolab-run').disabled", timeout=timeout)
    line = page.evaluate("""(wanted) => Array.from(document.querySelectorAll('.hpolab-panel .js-plotly-plot'))
        .flatMap(gd => (gd.data || []).map(t => ({name: String(t.name || ''), x: Array.from(t.x || []),
                                                   y: Array.from(t.y || []), xaxis: gd.layout.xaxis.title.text})))
        .filter(t => t.name.includes(wanted)).pop()""", arg=wanted)
    line["status"] = page.locator(".hpolab-panel .hpolab-status").inner_text()
    return line


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator(".hpolab-panel").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def assert_clean(page, line: dict) -> None:
    assert not line["status"].startswith("error"), line["status"]
    assert error_outputs(page) == []
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']").count() == 0


def panel_lab(tmp_path, name: str, parameters: dict):
    source = ROOT / "notebooks" / f"{name}.ipynb"
    return serve(tmp_path, lambda folder: smoke_copy(folder, source, parameters, panel_only=True))


@pytest.fixture
def hozog_lab(tmp_path):
    yield from panel_lab(tmp_path, "04_hozog_dnn_lr", {"scale": "smoke"})


def test_hozog_panel_takes_q_and_mu_and_draws_the_loss_against_wall_time(hozog_lab, page):
    open_and_run_all(page, hozog_lab)
    set_number(page, "q", 2)
    set_number(page, "seconds", 4)
    line = run_and_wait(page, "q=2")
    screenshot(page, "04_hozog_dnn_lr")
    assert "mu=" in line["name"] and "method=hozog" in line["name"]
    assert line["x"] == sorted(line["x"]) and line["x"][-1] > 0  # wall time grows
    assert "wall" in (line["xaxis"] or "")
    assert_clean(page, line)


@pytest.fixture
def fds_lab(tmp_path):
    yield from panel_lab(tmp_path, "09_fds_lr_schedules", {"scale": "smoke"})


def test_fds_panel_takes_the_window_and_draws_one_point_per_outer_step(fds_lab, page):
    open_and_run_all(page, fds_lab)
    set_number(page, "W", 5)
    set_number(page, "outer_steps", 2)
    line = run_and_wait(page, "W=5")
    screenshot(page, "09_fds_lr_schedules")
    assert len(line["x"]) == 3  # the start and two outer steps
    assert all(0 <= y <= 1 for y in line["y"])  # test accuracy
    assert_clean(page, line)


@pytest.fixture
def hd_lab(tmp_path):
    yield from panel_lab(tmp_path, "06_hd_vs_decay", {"scale": "smoke"})


def test_hd_panel_runs_the_optimizer_chosen(hd_lab, page):
    open_and_run_all(page, hd_lab)
    page.locator(".hpolab-panel .hpolab-control-optimizer select").select_option(label="Adam")
    line = run_and_wait(page, "optimizer=adam")
    screenshot(page, "06_hd_vs_decay")
    assert "schedule=hd" in line["name"] and len(line["x"]) > 1
    assert_clean(page, line)


def test_stop_ends_a_run_and_keeps_its_rows(lab, page):
    open_and_run_all(page, lab)
    set_number(page, "iterations", 200_000)
    page.locator(".hpolab-panel .hpolab-run").click()
    page.wait_for_function("""() => Array.from(document.querySelectorAll('.hpolab-panel .js-plotly-plot'))
        .some(gd => (gd.data || []).some(t => (t.x || []).length > 5))""", timeout=120_000)
    page.locator(".hpolab-panel .hpolab-stop").click()
    page.wait_for_function("() => !document.querySelector('.hpolab-panel .hpolab-run').disabled", timeout=60_000)
    status = page.locator(".hpolab-panel .hpolab-status").inner_text()
    points = page.evaluate("""() => Array.from(document.querySelectorAll('.hpolab-panel .js-plotly-plot'))
        .flatMap(gd => (gd.data || []).map(t => (t.x || []).length)).pop()""")
    screenshot(page, "01_jd_sphere_stopped")
    assert "stopped" in status, status
    assert points > 5
