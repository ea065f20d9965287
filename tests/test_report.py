"""hpolab.report.export_html: an executed notebook -> one offline HTML report."""

from __future__ import annotations

import nbformat
import pytest

from hpolab.report import export_html

papermill = pytest.importorskip("papermill")

FIGURES = """\
import plotly.graph_objects as go
import plotly.io as pio
pio.renderers.default = "plotly_mimetype"
fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], name="trace_alpha_loss"))
fig.show()
"""
SECOND = """\
go.Figure(go.Bar(x=["a", "b"], y=[4, 5], name="trace_beta_bars")).show()
"""
TABLE = """\
import pandas as pd
print(pd.DataFrame({"method": ["hypergrad_zo", "tpe_baseline"], "acc": [0.91, 0.88]}))
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Study report"),
        nbformat.v4.new_code_cell(FIGURES),
        nbformat.v4.new_code_cell(SECOND),
        nbformat.v4.new_code_cell(TABLE),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src, out = tmp / "src.ipynb", tmp / "study.ipynb"
    nbformat.write(nb, src)
    papermill.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False)
    return out, export_html(out)


def test_default_path_and_title(report):
    notebook, html = report
    assert html == notebook.with_suffix(".html") and html.is_file()
    assert "<title>study</title>" in html.read_text(encoding="utf-8")


def test_figures_embedded_once_and_offline(report):
    text = report[1].read_text(encoding="utf-8")
    assert "trace_alpha_loss" in text and "trace_beta_bars" in text
    assert text.count("Plotly.newPlot") == 2
    assert text.count("plotly.js v") == 1  # plotly.min.js license header
    assert '<script src="http' not in text
    assert "Study report" in text


def test_printed_table(report):
    text = report[1].read_text(encoding="utf-8")
    assert "hypergrad_zo" in text and "tpe_baseline" in text


def test_custom_path_and_widget_note(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("w")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={
                "application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2},
                "text/plain": "FigureWidget({\n    'data': [...]\n})",
            },
        )
    ]
    nb.cells = [cell]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nbformat.write(nb, tmp_path / "w.ipynb")
    html = export_html(tmp_path / "w.ipynb", tmp_path / "out" / "r.html")
    text = html.read_text(encoding="utf-8")
    assert html == tmp_path / "out" / "r.html"
    assert "interactive widget: open the notebook in JupyterLab" in text
    assert "widget-view+json" not in text and "widget-state+json" not in text
    assert '<script src="http' not in text
