"""``hpolab site``: built from real smoke runs, every link resolves, it opens in a browser cleanly."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpolab import claims, notebooks, site

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A smoke run of 01 (with its report and claims) under a runs folder."""
    root = tmp_path_factory.mktemp("runs")
    notebooks.execute("01_jd_sphere", {"iterations": 30, "functions": ["sphere"]}, scale="smoke",
                      output=root / "01_jd_sphere" / "smoke-20260101-000000", progress=False)
    return root


def test_describe_reads_title_paper_and_figure_from_the_notebook():
    found = site.describe(ROOT / "notebooks" / "03_hozog_logreg.ipynb")
    assert found["title"].startswith("03")
    assert "HOZOG" in found["paper"] and found["figure"] == "Figure 1"


def test_the_site_links_every_run_report_and_lists_every_notebook(runs, tmp_path):
    index = site.build(runs, tmp_path / "site")
    page = index.read_text()
    links = re.findall(r"href='([^']+)'", page)
    assert links == ["reports/01_jd_sphere.html"]
    assert all((index.parent / link).is_file() for link in links)
    for name in notebooks.available():
        assert name in page or site.describe(notebooks.find(name))["title"] in page
    verdicts = set(claims.collect(runs, complete=False)["verdict"])
    assert all(v in page for v in verdicts)
    assert "smoke" in page and "min</td>" in page
    assert "<script src=\"http" not in (index.parent / links[0]).read_text()


def test_no_run_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no finished run with an HTML report"):
        site.build(tmp_path, tmp_path / "site")
    result = subprocess.run([sys.executable, "-m", "hpolab.cli", "site", "--runs", str(tmp_path), "--output",
                             str(tmp_path / "site")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("hpolab: error: no finished run")


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="no Chromium binary on PATH (apt-get install chromium)")
def test_the_site_opens_in_chromium_without_console_errors(runs, tmp_path):
    from playwright.sync_api import sync_playwright

    from test_browser import CHROMIUM_ARGS

    index = site.build(runs, tmp_path / "site")
    errors = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(index.as_uri())
        page.click("text=01")
        page.wait_for_selector(".plotly-graph-div", timeout=60_000)
        browser.close()
    assert not errors
