"""A static results site for teaching: the latest executed run of every notebook, one folder.

``hpolab site`` copies each notebook's latest HTML report (already offline: plotly.js
inlined) into ``site/`` and writes ``index.html``: per notebook its title, paper and figure,
the run's scale, date and wall time, and the claims verdicts with the numbers behind them.
Students open ``site/index.html`` without running anything, and without a network.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd

from hpolab.notebooks import available

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
table { border-collapse: collapse; width: 100%; margin-bottom: 1.5rem; }
th, td { border-bottom: 1px solid #ddd; padding: .35rem .5rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.holds { color: #1a7f37; font-weight: 600; } .fails { color: #b42318; font-weight: 600; }
.untestable, .notrun { color: #777; }
small { color: #555; }
"""


def describe(notebook: Path) -> dict:
    """Title, paper and figure of a study notebook, read from its first Markdown cell."""
    cell = next((c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "markdown"), None)
    text = cell.source if cell is not None else ""
    title = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), notebook.stem)
    paper_line = next((line for line in text.splitlines() if "Paper:" in line), "")
    paper = _plain(re.sub(r"\*?Paper:\*?", "", paper_line)).strip(" .")
    figures = re.findall(r"Figures? [0-9][0-9\-–, ]*", _plain(text))
    return {"title": title, "paper": paper, "figure": figures[0].strip(" ,") if figures else ""}


def _plain(markdown: str) -> str:
    """Markdown emphasis, code and links reduced to their text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    return re.sub(r"[*`_]", "", text)


def latest_reports(root: str | Path, scale: str | None = None) -> dict[str, Path]:
    """The newest finished run folder with an HTML report, per notebook (``root/<notebook>/<run>/``)."""
    found: dict[str, tuple[str, Path]] = {}
    for report in Path(root).glob("*/*/*.html"):
        folder = report.parent
        if report.stem != folder.parent.name:
            continue
        record = _record(folder)
        if record.get("status", "finished") != "finished":
            continue
        if scale is not None and record.get("scale", folder.name.split("-")[0]) != scale:
            continue
        stamp = record.get("started", "") or folder.name
        if folder.parent.name not in found or stamp > found[folder.parent.name][0]:
            found[folder.parent.name] = (stamp, folder)
    return {name: folder for name, (_, folder) in sorted(found.items())}


def _record(folder: Path) -> dict:
    path = folder / "run.json"
    return json.loads(path.read_text()) if path.exists() else {}


def build(root: str | Path, output: str | Path, scale: str | None = None) -> Path:
    """Build the site from the runs under ``root`` into ``output``; returns ``index.html``."""
    output = Path(output)
    runs = latest_reports(root, scale)
    if not runs:
        raise ValueError(f"no finished run with an HTML report under {root}"
                         + (f" at scale {scale}" if scale else "") + ": run `hpolab run NAME` first")
    if output.exists():
        shutil.rmtree(output)
    (output / "reports").mkdir(parents=True)
    rows = []
    for name, path in available().items():
        folder = runs.get(name)
        entry = {"name": name, **describe(path), "folder": folder}
        if folder is not None:
            shutil.copy2(folder / f"{name}.html", output / "reports" / f"{name}.html")
            entry["record"] = _record(folder)
            claims_file = folder / "claims.csv"
            entry["claims"] = pd.read_csv(claims_file, keep_default_na=False) if claims_file.exists() else None
        rows.append(entry)
    index = output / "index.html"
    index.write_text(_index_page(rows, scale))
    return index


def _index_page(rows: list[dict], scale: str | None) -> str:
    escape = html.escape
    lines = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             "<title>hpolab results</title>", f"<style>{STYLE}</style></head><body>",
             "<h1>hpolab: the studies, executed</h1>",
             "<p>The latest run of every study notebook" + (f" at <code>{escape(scale)}</code> scale" if scale else "")
             + ". Each report holds the notebook's text, tables and interactive figures, and opens offline. "
             "The verdicts are computed by each run from its own results.</p>",
             "<table><tr><th>notebook</th><th>paper</th><th>figure</th><th>scale</th><th>run</th>"
             "<th>wall time</th><th>claims</th></tr>"]
    for row in rows:
        record = row.get("record") or {}
        name = escape(row["title"])
        link = f"<a href='reports/{escape(row['name'])}.html'>{name}</a>" if row["folder"] else f"{name} <small>(not run)</small>"
        wall = record.get("wall_seconds")
        lines.append(
            f"<tr><td>{link}</td><td>{escape(row['paper'])}</td><td>{escape(row['figure'])}</td>"
            f"<td>{escape(str(record.get('scale', '')))}</td><td>{escape(str(record.get('started', '')))}</td>"
            f"<td>{'' if wall is None else f'{wall / 60:.1f} min'}</td><td>{_counts(row.get('claims'))}</td></tr>")
    lines.append("</table>")
    for row in rows:
        table = row.get("claims")
        if table is None or not len(table):
            continue
        lines.append(f"<h2 id='{escape(row['name'])}'>{escape(row['title'])}</h2>")
        lines.append("<table><tr><th>verdict</th><th>claim</th><th>paper says</th><th>we measured</th></tr>")
        for claim in table.to_dict("records"):
            verdict = claim["verdict"]
            css = {"holds": "holds", "fails": "fails"}.get(verdict, "untestable")
            lines.append(f"<tr><td class='{css}'>{escape(verdict)}</td><td>{escape(claim['claim'])}"
                         f"<br><small>{escape(claim['source'])}</small></td><td>{escape(claim['paper says'])}</td>"
                         f"<td>{escape(claim['we measured'])}</td></tr>")
        lines.append("</table>")
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"


def _counts(table: pd.DataFrame | None) -> str:
    if table is None or not len(table):
        return ""
    counts = table["verdict"].value_counts()
    parts = [f"<span class='{ {'holds': 'holds', 'fails': 'fails'}.get(v, 'untestable') }'>{int(n)} {html.escape(v)}</span>"
             for v, n in counts.items()]
    return ", ".join(parts)
