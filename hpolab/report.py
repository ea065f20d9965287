"""Export an executed notebook to one self-contained, offline HTML report.

Plotly's in-kernel renderer (``plotly_mimetype``) stores figures as
``application/vnd.plotly.v1+json``, which ``jupyter nbconvert --to html``
silently drops.  :func:`export_html` therefore adds a ``text/html`` rendering
of every plotly output (plotly.js is inlined once, with the first figure), drops
ipywidget views (they need a widget manager from a CDN) and uses the ``lab``
template without its CDN ``<script src=...>`` tags (require.js, MathJax, the
widget manager), so the report opens offline with interactive figures.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import plotly.io as pio
from jinja2 import DictLoader
from nbconvert import HTMLExporter
from nbconvert.preprocessors import Preprocessor

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = "(interactive widget: open the notebook in JupyterLab)"

# The lab template, minus the <script src="https://..."> tags it would add.
_TEMPLATE = "hpolab_report.html.j2"
_TEMPLATE_SOURCE = """{%- extends 'index.html.j2' -%}
{% block html_head_js_requirejs %}{% endblock html_head_js_requirejs %}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block html_head_js_mathjax %}{% endblock html_head_js_mathjax %}
"""


class PlotlyWidgetPreprocessor(Preprocessor):
    """Make plotly figures and ipywidget outputs renderable in static HTML.

    * each output holding ``application/vnd.plotly.v1+json`` gets a
      ``text/html`` rendering from :func:`plotly.io.to_html`; the first one
      embeds the plotly.js bundle, later ones reuse it.  The other rich
      representations of that output are dropped so that the HTML exporter's
      mimetype priority (JavaScript and widget views before ``text/html``)
      cannot pick something else.
    * each ipywidget view is dropped; a short ``text/plain`` fallback is kept,
      a missing or long one (e.g. a ``FigureWidget`` dict dump) is replaced by
      :data:`WIDGET_NOTE`.
    """

    def preprocess(self, nb, resources):
        self._plotlyjs_done = False
        nb.metadata.pop("widgets", None)  # widget state -> widget manager script
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        for output in cell.get("outputs", []):
            data = output.get("data")
            if not data:
                continue
            if PLOTLY_MIME in data:
                output["data"] = {"text/html": self._figure_html(data[PLOTLY_MIME])}
                if "text/plain" in data:
                    output["data"]["text/plain"] = data["text/plain"]
            elif WIDGET_MIME in data:
                text = data.get("text/plain", "")
                if not text or len(text) > 200 or "\n" in text.strip():
                    text = WIDGET_NOTE
                output["data"] = {"text/plain": text}
        return cell, resources

    def _figure_html(self, fig: dict) -> str:
        fig = dict(fig)
        config = fig.pop("config", None)
        html = pio.to_html(
            fig,
            config=config,
            include_plotlyjs=not self._plotlyjs_done,
            full_html=False,
            default_height=525,  # as plotly's notebook renderers
            validate=False,
        )
        self._plotlyjs_done = True
        return html


def export_html(notebook: str | Path, html: str | Path | None = None) -> Path:
    """Convert an executed notebook into one self-contained HTML report.

    Parameters
    ----------
    notebook:
        Path of an executed ``.ipynb`` (for instance papermill's output).
    html:
        Path of the report; default: the notebook's folder and stem with the
        suffix ``.html``.

    Returns
    -------
    Path
        The path of the written report.  It embeds plotly.js once (about
        5 MB) and references no CDN script, so its plotly figures stay
        interactive offline.  Widgets are replaced by a note; LaTeX in markdown
        is shown as source (MathJax is not bundled).
    """
    notebook = Path(notebook)
    html = notebook.with_suffix(".html") if html is None else Path(html)
    nb = nbformat.read(notebook, as_version=4)
    exporter = HTMLExporter(
        template_name="lab",
        template_file=_TEMPLATE,
        extra_loaders=[DictLoader({_TEMPLATE: _TEMPLATE_SOURCE})],
    )
    exporter.register_preprocessor(PlotlyWidgetPreprocessor(), enabled=True)
    body, _ = exporter.from_notebook_node(
        nb, resources={"metadata": {"name": notebook.stem}}
    )
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(body, encoding="utf-8")
    return html


def export_page(html: str | Path, title: str, notes: list[str] = (), figures: list = (),
                tables: list[tuple] = ()) -> Path:
    """Write one self-contained HTML page: a title, lines of text, plotly figures and
    pandas tables, each a ``(caption, frame)`` pair (what ``hpolab report`` writes for a sweep).

    plotly.js is inlined once, with the first figure, and no CDN script is referenced, so
    the page opens offline with interactive figures.

    Returns
    -------
    Path
        The path of the written page.
    """
    import html as escape

    html = Path(html)
    parts = [f"<h1>{escape.escape(title)}</h1>"]
    parts += [f"<p>{escape.escape(str(note))}</p>" for note in notes]
    for index, figure in enumerate(figures):
        parts.append(pio.to_html(figure, include_plotlyjs=index == 0, full_html=False, default_height=560))
    for caption, table in tables:
        parts.append(f"<h2>{escape.escape(caption)}</h2>")
        parts.append(table.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}", border=0))
    style = ("body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;font-size:90%}"
             " th,td{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right} th{background:#f4f4f4}")
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{escape.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(page, encoding="utf-8")
    return html
