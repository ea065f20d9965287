"""The report of a sweep: one table and one figure across its runs (``hpolab report``).

Reads what :mod:`hpolab.sweep` wrote: ``sweep.json`` (the grid and its runs) and each run's
``status.json`` and ``summary.csv``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

import pandas as pd

from hpolab import notebooks
from hpolab.sweep import FAILED, FINISHED, INTERRUPTED, MANIFEST, PENDING, RUNNING, STATUS, read_status, sweeps_dir

# --- the report -----------------------------------------------------------------------------------------------


def find_sweep(target: str | None = None, root: Path | None = None) -> Path:
    """The folder of a sweep: ``target`` as a folder, as a notebook name (its last sweep), or,
    with no target, the sweep written last."""
    root = Path(root or sweeps_dir())
    if target is None:
        manifests = sorted(root.glob(f"*/{MANIFEST}"), key=lambda path: path.stat().st_mtime)
        if not manifests:
            raise ValueError(f"no sweep in {root}: run hpolab sweep NAME --grid key=v1,v2 first")
        return manifests[-1].parent
    if Path(target).is_dir():
        return Path(target)
    folder = root / notebooks.find(target).stem
    if not folder.is_dir():
        raise ValueError(f"no sweep of {folder.name} in {root}: run hpolab sweep {folder.name} --grid key=v1,v2 first")
    return folder


def read_manifest(folder: Path) -> dict:
    """The sweep's ``sweep.json``; for a folder without one, every run in it."""
    folder = Path(folder)
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        statuses = [s for s in (read_status(path) for path in sorted(folder.iterdir()) if path.is_dir()) if s]
        if not statuses:
            raise ValueError(f"{folder} holds no sweep (no {MANIFEST}, no run with a {STATUS})") from None
        keys = list(dict.fromkeys(k for s in statuses for k in s.get("point", {})))
        return {"notebook": statuses[0].get("notebook", folder.name), "scale": statuses[0].get("scale"),
                "grid": {k: sorted({repr(s["point"].get(k)) for s in statuses}) for k in keys},
                "runs": [{"key": s["key"], "point": s.get("point", {})} for s in statuses]}


def same(a, b) -> bool:
    """Whether a summary cell repeats a grid value (missing counts as repeating)."""
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return True
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    except (TypeError, ValueError):
        return str(a) == str(b)


def run_rows(folder: Path, point: dict) -> list[dict]:
    """The table rows of one run: its grid point and status, then one row per row of its
    ``summary.csv`` (one row when there is none, as for a failed run)."""
    status = read_status(folder) or {"status": PENDING}
    base = {**point, "status": status.get("status", PENDING)}
    try:
        summary = pd.read_csv(folder / "summary.csv") if status.get("status") == FINISHED else None
    except (OSError, ValueError):
        summary = None
    notes = {"error": status.get("error") or ""}
    if summary is None or summary.empty:
        return [{**base, **notes}]
    for column in [c for c in summary.columns if c in base or c in notes]:
        if column in point and all(same(value, point[column]) for value in summary[column]):
            summary = summary.drop(columns=column)  # the study's own column only repeats the swept value
        else:
            summary = summary.rename(columns={column: f"summary {column}"})
    return [{**base, **row, **notes} for row in summary.to_dict("records")]


def sweep_table(folder: Path) -> tuple[dict, pd.DataFrame]:
    """The sweep's manifest and one table of all its runs: grid values, status, the rows of
    each run's ``summary.csv`` and the error of each failed run."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    rows = [row for entry in manifest["runs"] for row in run_rows(folder / entry["key"], entry["point"])]
    table = pd.DataFrame(rows)
    if "error" in table and not table["error"].astype(bool).any():
        table = table.drop(columns="error")
    elif "error" in table:
        table = table[[c for c in table.columns if c != "error"] + ["error"]]
    return manifest, table


def default_metric(table: pd.DataFrame, grid: Iterable[str]) -> str | None:
    """The column a report plots: the first numeric summary column named ``best...``,
    else the first numeric summary column."""
    skip = set(grid) | {"status", "error", "runs", "diverged"}
    numeric = [c for c in table.columns if c not in skip and pd.api.types.is_numeric_dtype(table[c])]
    best = [c for c in numeric if c.lower().startswith("best")]
    return (best or numeric or [None])[0]


def label_columns(table: pd.DataFrame, grid: Iterable[str]) -> list[str]:
    """The summary's text columns, which name a row within a run (function, method...)."""
    skip = set(grid) | {"status", "error"}
    return [c for c in table.columns if c not in skip and not pd.api.types.is_numeric_dtype(table[c])]


def point_label(point: dict) -> str:
    """``p=0.1, mu=0.01``: a grid point as text."""
    return ", ".join(f"{key}={value}" for key, value in point.items())


def point_labels(table: pd.DataFrame, grid: list[str]) -> pd.Series:
    """The grid point of each row of the table, as text (grid values may be lists)."""
    return pd.Series([point_label({key: row[key] for key in grid}) for _, row in table.iterrows()], index=table.index,
                     dtype=object)


def comparison(table: pd.DataFrame, grid: list[str], metric: str | None, digits: int = 4) -> pd.DataFrame | None:
    """``metric`` with one row per label (function, method...) and one column per grid point, and
    a last row with each point's status; None when a run has several rows with the same label."""
    from hpolab.tables import significant

    if not grid or metric is None or table.empty:
        return None
    labels = label_columns(table, grid)
    points = point_labels(table, grid)
    order = list(dict.fromkeys(points))
    done = table[table["status"] == FINISHED].assign(_point=points)
    if done.duplicated(labels + ["_point"]).any():
        return None
    cells: dict[tuple, dict] = {}
    for _, row in done.iterrows():
        value = row[metric]
        text = "" if pd.isna(value) else f"{significant(float(value), digits):g}"
        cells.setdefault(tuple(row[c] for c in labels) or (metric,), {})[row["_point"]] = text
    names = labels or [""]
    rows = [{**dict(zip(names, label)), **{point: values.get(point, "") for point in order}}
            for label, values in cells.items()]
    status = dict(zip(points, table["status"]))
    rows.append({**{name: "status" if i == 0 else "" for i, name in enumerate(names)}, **status})
    return pd.DataFrame(rows, columns=names + order)


def metric_figure(table: pd.DataFrame, grid: list[str], metric: str, title: str = ""):
    """``metric`` against the first grid key, one line per value of the other grid keys and
    of the summary's text columns (function, method...); failed runs as red crosses."""
    import plotly.graph_objects as go

    x_key, others = grid[0], grid[1:]
    labels = label_columns(table, grid)
    numeric_x = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in table[x_key])
    x_of = (lambda frame: frame[x_key]) if numeric_x else (lambda frame: frame[x_key].map(str))
    figure = go.Figure()
    done = table[table["status"] == FINISHED].assign(_others=point_labels(table, others) if others else "")
    keys = (["_others"] if others else []) + labels
    groups = done.groupby(keys, dropna=False, sort=False) if keys else [((), done)]
    for name, group in groups:
        name = name if isinstance(name, tuple) else (name,)
        group = group.sort_values(x_key) if numeric_x else group
        figure.add_trace(go.Scatter(x=x_of(group), y=group[metric], mode="lines+markers",
                                    name=" · ".join(str(part) for part in name if part != "") or metric))
    failed = table[table["status"] != FINISHED]
    failed = failed[~point_labels(failed, grid).duplicated()] if not failed.empty else failed
    if not failed.empty:
        values = pd.to_numeric(done[metric], errors="coerce")
        floor = float(values.min()) if values.notna().any() else 0.0
        text = [f"{row['status']}: {row.get('error') or ''}" for _, row in failed.iterrows()]
        figure.add_trace(go.Scatter(
            x=x_of(failed), y=[floor] * len(failed), mode="markers", marker=dict(symbol="x", size=14, color="crimson"),
            name="failed / not run", hovertext=text, hoverinfo="text+x"))
    positive = pd.to_numeric(done[metric], errors="coerce").dropna()
    log = len(positive) > 0 and (positive > 0).all() and positive.max() / positive.min() > 10
    figure.update_layout(title=title, xaxis_title=x_key, yaxis_title=metric, yaxis_type="log" if log else "linear",
                         template="plotly_white", height=560)
    if not numeric_x:
        figure.update_xaxes(type="category")
    return figure


def format_table(table: pd.DataFrame, digits: int = 4) -> str:
    """The table as plain text, floats to ``digits`` significant digits."""
    from hpolab.tables import significant

    formatters = {c: (lambda v: "" if pd.isna(v) else f"{significant(v, digits):g}")
                  for c in table.columns if table[c].dtype.kind == "f"}
    return table.to_string(index=False, formatters=formatters, na_rep="")


def write_report(folder: Path, metric: str | None = None, html: Path | None = None) -> dict:
    """Write the sweep's full table (``report.csv``: every summary row of every run) and one
    offline HTML page (``report.html``: the figure, the comparison table, the full table).

    Returns:
      ``table`` (the full table), ``comparison`` (``metric`` by label and grid point, or
      None), ``text`` (what ``hpolab report`` prints), ``metric``, the ``csv`` and ``html``
      paths and the runs' ``counts`` by status.

    Raises:
      ValueError: no sweep there, or ``metric`` is not a column of the table.
    """
    from hpolab.report import export_page

    folder = Path(folder)
    manifest, table = sweep_table(folder)
    grid = list(manifest.get("grid", {}))
    metric = metric or default_metric(table, grid)
    if metric is not None and metric not in table:
        raise ValueError(f"metric {metric!r} is not a column of the table: {list(table.columns)}")
    statuses = [read_status(folder / entry["key"]) or {} for entry in manifest["runs"]]
    counts = {state: sum(s.get("status", PENDING) == state for s in statuses)
              for state in (FINISHED, FAILED, RUNNING, INTERRUPTED, PENDING)}
    notes = [f"sweep of {manifest['notebook']} ({manifest.get('scale')} scale) over "
             f"{', '.join(f'{k} in {v}' for k, v in manifest.get('grid', {}).items()) or 'no grid'}: "
             + ", ".join(f"{n} {state}" for state, n in counts.items() if n)]
    if manifest.get("fixed"):
        notes.append("fixed: " + ", ".join(f"{k}={v!r}" for k, v in manifest["fixed"].items()))
    problems = [f"{point_label(entry['point'])}: {status.get('status', PENDING)}"
                + (f": {status['error']}" if status.get("error") else "")
                for entry, status in zip(manifest["runs"], statuses) if status.get("status") != FINISHED]
    compared = comparison(table, grid, metric)
    csv = folder / "report.csv"
    table.to_csv(csv, index=False)
    figures = [metric_figure(table, grid, metric, f"{manifest['notebook']}: {metric} against {grid[0]}")] \
        if grid and metric else []
    tables = ([(f"{metric} by {', '.join(grid)}", compared)] if compared is not None else []) \
        + [("every summary row of every run", table)]
    html = export_page(Path(html) if html else folder / "report.html", f"{manifest['notebook']} sweep",
                       notes + problems, figures, tables)
    if compared is not None:
        body = [f"{metric} by {', '.join(grid)} (one column per run):", compared.to_string(index=False)]
    else:
        body = [format_table(table)]
    return {"table": table, "comparison": compared, "text": "\n".join(notes + [""] + body + [""] + problems).rstrip(),
            "metric": metric, "csv": csv, "html": html, "counts": counts}
