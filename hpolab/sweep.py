"""Sweeps: run a study notebook for every combination of a grid of parameters.

    hpolab sweep 01_jd_sphere --grid p=0.1,0.5,0.9 --scale smoke [--workers 2 | --address tcp://host:8786]
    hpolab report [01_jd_sphere | runs/sweeps/01_jd_sphere]

Every run lives in ``runs/sweeps/<notebook>/<key>/``, where ``key`` hashes the notebook's
name, its code cells, the library's code (every ``.py`` under ``hpolab/``), the scale and
every parameter (defaults filled in), and holds a
``status.json`` (``finished``, or ``failed`` with the error; ``running`` or ``interrupted``
while not done; the parameters, the timing). A finished run is never recomputed, so
running the same command again after an interruption resumes the sweep; a failed one is
retried only when asked
(``retry_failed``). The last sweep of each notebook is listed in
``runs/sweeps/<notebook>/sweep.json``, which :func:`write_report` reads.

Runs go to a local process pool (:func:`run_local`) or to a Dask cluster
(:func:`connect`, :func:`run_dask`); both hand each run to :func:`execute_run`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import re
import shutil
import socket
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pandas as pd

from hpolab import notebooks
from hpolab.cache import code_version
from hpolab.notebooks import Parameter

STATUS = "status.json"
MANIFEST = "sweep.json"
FINISHED, FAILED, RUNNING, INTERRUPTED, PENDING = "finished", "failed", "running", "interrupted", "pending"
# A grid key that is not a parameter may name one value of a list parameter: p -> p_values, dataset -> datasets.
ALIAS_SUFFIXES = ("_values", "s")
# Set by hpolab itself, never by a sweep.
RESERVED = ("results_dir",)


# --- the grid -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One ``--grid`` option: ``key`` as typed, the notebook ``parameter`` it sets and its values.

    With ``wrap`` (``key`` names one element of the list parameter ``parameter``), each
    value is handed to the notebook as a one-element list.
    """

    key: str
    parameter: str
    values: tuple
    wrap: bool = False

    def setting(self, value) -> dict:
        """The notebook parameter this axis sets for one of its values."""
        return {self.parameter: [value] if self.wrap else value}


def split_values(text: str) -> list[str]:
    """Split ``v1,v2,...`` at the commas outside brackets and quotes (``[1, 2],[3]`` is two values)."""
    parts, current, depth, quote = [], "", 0, None
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += char
    parts.append(current.strip())
    return parts


def resolve_key(key: str, declared: dict[str, Parameter], notebook: str) -> tuple[str, bool]:
    """The parameter that grid key ``key`` sets, and whether its values are wrapped in a list.

    A declared parameter sets itself. Otherwise ``key`` may name one element of a
    declared ``list`` parameter called ``<key>_values`` or ``<key>s`` (``p`` -> ``p_values``).
    """
    if key in RESERVED:
        raise ValueError(f"parameter {key!r} is set by hpolab itself")
    if key in declared:
        return key, False
    aliases = [key + suffix for suffix in ALIAS_SUFFIXES
               if key + suffix in declared and declared[key + suffix].type.replace(" ", "") == "list"]
    if len(aliases) == 1:
        return aliases[0], True
    raise ValueError(f"parameter {key!r} is not in {notebook}'s parameters: {sorted(declared)}")


def element_type(default) -> str:
    """The type name of a list default's elements (``float`` for ``[0.1, 1]``), or ``""`` when mixed or empty."""
    kinds = {type(value) for value in default or []} if isinstance(default, (list, tuple)) else set()
    if kinds and kinds <= {int, float} and float in kinds:
        return "float"
    return next(iter(kinds)).__name__ if len(kinds) == 1 and next(iter(kinds)) in (int, float, str) else ""


def parse_axis(spec: str, declared: dict[str, Parameter], notebook: str) -> Axis:
    """Read one ``--grid key=v1,v2`` option, each value checked against the parameter's type."""
    key, sep, text = spec.partition("=")
    key = key.strip()
    if not sep or not key or not text.strip():
        raise ValueError(f"--grid takes key=value1,value2,..., got {spec!r}")
    parameter, wrap = resolve_key(key, declared, notebook)
    kind = Parameter(key, element_type(declared[parameter].default), None, "") if wrap else declared[parameter]
    values = []
    for piece in split_values(text):
        if not piece:
            raise ValueError(f"--grid {key}: empty value in {text!r}")
        value = normalized(kind, notebooks.coerce(kind, piece))
        if wrap and isinstance(value, (list, tuple, dict)):
            raise ValueError(f"parameter {key} takes one element of {parameter}, got {piece!r}")
        if value not in values:
            values.append(value)
    return Axis(key, parameter, tuple(values), wrap)


def normalized(parameter: Parameter, value):
    """``value`` as the cache key sees it: an int given for a ``float`` parameter becomes a float."""
    if parameter.type.replace(" ", "") == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def parse_fixed(pairs: Iterable[tuple[str, str]], declared: dict[str, Parameter], notebook: str) -> dict:
    """The ``-p key value`` options: parameters every run of the sweep shares."""
    values = {}
    for key, text in pairs:
        if key in RESERVED:
            raise ValueError(f"parameter {key!r} is set by hpolab itself")
        if key not in declared:
            raise ValueError(f"parameter {key!r} is not in {notebook}'s parameters: {sorted(declared)}")
        values[key] = normalized(declared[key], notebooks.coerce(declared[key], text))
    return values


# --- runs and their cache -------------------------------------------------------------------------------------


def source_hash(path: Path) -> str:
    """A hash of the notebook's code cells and of the library's code (:func:`hpolab.cache.code_version`):
    editing a text cell keeps the finished runs, a change to the code that computes them does not."""
    import nbformat

    cells = [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
    return hashlib.sha256(json.dumps({"cells": cells, "library": code_version()}).encode()).hexdigest()[:16]


def run_key(notebook: str, source: str, scale: str, parameters: dict) -> str:
    """The cache key of one run: a hash of notebook, source hash, scale and sorted parameters."""
    text = json.dumps({"notebook": notebook, "source": source, "scale": scale, "parameters": parameters},
                      sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Run:
    """One point of a sweep: its grid ``point`` (as typed), the ``values`` handed to the
    notebook and the folder its results and ``status.json`` go to."""

    key: str
    folder: Path
    point: dict
    values: dict
    parameters: dict


@dataclass
class Sweep:
    """Every run of a grid over one notebook."""

    notebook: str
    path: Path
    source: str
    scale: str
    folder: Path
    axes: list[Axis]
    fixed: dict
    runs: list[Run] = field(default_factory=list)


def sweeps_dir() -> Path:
    """``runs/sweeps`` (or ``$HPOLAB_RUNS/sweeps``)."""
    return notebooks.runs_dir() / "sweeps"


def plan(name: str, grid: Iterable[str] = (), fixed: Iterable[tuple[str, str]] = (), scale: str | None = None,
         root: Path | None = None) -> Sweep:
    """Check a sweep's command-line input and list its runs, one per combination of the grid.

    Raises:
      ValueError: an unknown notebook, a parameter not in the notebook, a value of the
        wrong type, a parameter given twice.
    """
    path = notebooks.find(name)
    declared = notebooks.parameters(path)
    axes = [parse_axis(spec, declared, path.stem) for spec in grid]
    values = parse_fixed(fixed, declared, path.stem)
    if scale is not None:
        if "scale" in values:
            raise ValueError("give the scale once: --scale or -p scale")
        values["scale"] = scale
    set_by = [axis.parameter for axis in axes] + list(values)
    twice = sorted({p for p in set_by if set_by.count(p) > 1})
    if twice:
        raise ValueError(f"parameter {twice[0]!r} is set more than once (--grid, -p, --scale)")
    folder = Path(root or sweeps_dir()).resolve() / path.stem
    source = source_hash(path)
    defaults = {key: parameter.default for key, parameter in declared.items() if key not in RESERVED}
    scales = next((axis.values for axis in axes if axis.parameter == "scale"), None)  # a grid over the scale
    described = ", ".join(map(str, scales)) if scales else str(values.get("scale", defaults.get("scale")))
    sweep = Sweep(path.stem, path.resolve(), source, described, folder, axes, values)
    for combination in itertools.product(*(axis.values for axis in axes)):
        run_values = dict(values)
        for axis, value in zip(axes, combination):
            run_values.update(axis.setting(value))
        parameters = {**defaults, **run_values}
        key = run_key(path.stem, source, str(parameters.get("scale")), parameters)
        point = {axis.key: value for axis, value in zip(axes, combination)}
        sweep.runs.append(Run(key, folder / key, point, run_values, parameters))
    return sweep


def read_status(folder: Path) -> dict | None:
    """A run's ``status.json``, or None when it never started."""
    try:
        return json.loads((Path(folder) / STATUS).read_text())
    except (OSError, ValueError):
        return None


def write_status(folder: Path, status: dict) -> None:
    """Write ``status.json`` whole or not at all (a reader never sees half a file)."""
    folder = Path(folder)
    temporary = folder / f".{STATUS}.{os.getpid()}"
    temporary.write_text(json.dumps(status, indent=2, default=repr))
    temporary.replace(folder / STATUS)


def to_do(sweep: Sweep, retry_failed: bool = False) -> list[Run]:
    """The runs still to compute: never started, interrupted, or failed when ``retry_failed``."""
    skip = {FINISHED} if retry_failed else {FINISHED, FAILED}
    return [run for run in sweep.runs if (read_status(run.folder) or {}).get("status") not in skip]


def write_manifest(sweep: Sweep) -> Path:
    """Record the sweep (its grid and runs) as the notebook's last sweep, for ``hpolab report``."""
    sweep.folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "notebook": sweep.notebook, "source": sweep.source, "scale": sweep.scale,
        "grid": {axis.key: list(axis.values) for axis in sweep.axes},
        "fixed": sweep.fixed,
        "runs": [{"key": run.key, "point": run.point} for run in sweep.runs],
        "written": now(),
    }
    path = sweep.folder / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, default=repr))
    return path


def task(sweep: Sweep, run: Run, report: bool = True) -> dict:
    """What a worker needs for one run (plain data: it travels to other processes and machines)."""
    record = {"notebook": sweep.notebook, "key": run.key, "source": sweep.source,
              "scale": str(run.parameters.get("scale")), "point": run.point, "parameters": run.parameters}
    return {"path": str(sweep.path), "folder": str(run.folder), "values": run.values, "report": report,
            "record": record}


def now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


# --- one run, on a worker -------------------------------------------------------------------------------------


def divergence(folder: Path) -> tuple[int, int]:
    """(diverged, total) trainings from the run's ``summary.csv`` (its ``diverged`` and ``runs``
    columns); (0, 0) when the study does not report divergence."""
    try:
        summary = pd.read_csv(Path(folder) / "summary.csv")
    except (OSError, ValueError):
        return 0, 0
    if "diverged" not in summary or summary.empty:
        return 0, 0
    diverged = int(pd.to_numeric(summary["diverged"], errors="coerce").fillna(0).astype(float).sum())
    total = int(summary["runs"].sum()) if "runs" in summary else len(summary)
    return diverged, total


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def error_line(error: BaseException) -> str:
    """One line naming an exception; for an error inside the notebook, the notebook's own
    exception (``ValueError: p must be in (0, 1), got 1.5``)."""
    if hasattr(error, "ename") and hasattr(error, "evalue"):  # papermill.PapermillExecutionError
        text = f"{error.ename}: {error.evalue}"
    else:
        text = f"{type(error).__name__}: {error}"
    return " ".join(ANSI.sub("", text).split())


@contextlib.contextmanager
def output_to(path: Path | None):
    """Send this process's stdout and stderr (file descriptors 1 and 2, so the notebook
    kernel's too) to ``path`` for a while; with None, leave them."""
    if path is None:
        yield
        return
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for descriptor in saved:
                os.close(descriptor)


def execute_run(task: dict, log: bool = False) -> dict:
    """Run one notebook of a sweep into its folder and record how it ended in ``status.json``.

    The folder is emptied first (a run interrupted earlier starts over). An exception in
    the notebook, or a study whose every training diverged, makes the run ``failed`` with
    a one-line ``error`` (the traceback goes to ``error.txt``); a few diverged trainings
    are counted in ``diverged``. With ``log`` (one run per process at a time), the
    notebook kernel's output goes to ``output.log`` instead of the terminal.

    Returns:
      The status written.
    """
    folder = Path(task["folder"])
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    status = {**task["record"], "status": RUNNING, "error": None, "diverged": None, "started": now(),
              "host": socket.gethostname(), "pid": os.getpid()}
    write_status(folder, status)
    start = time.perf_counter()
    error = None
    try:
        with output_to(folder / "output.log" if log else None):
            notebooks.execute(task["path"], task["values"], output=folder, report=task["report"], progress=False)
    except (Exception, KeyboardInterrupt) as exception:  # noqa: BLE001 - a failed run is recorded, the sweep goes on
        if isinstance(exception, KeyboardInterrupt) or getattr(exception, "ename", None) == "KeyboardInterrupt":
            status.update(status=INTERRUPTED, finished=now())  # Ctrl-C: not a failure, the next sweep redoes it
            write_status(folder, status)
            return status
        error = error_line(exception)
        (folder / "error.txt").write_text(ANSI.sub("", traceback.format_exc()))
    diverged, total = divergence(folder)
    if diverged:
        status["diverged"] = f"{diverged} of {total} trainings diverged"
        if error is None and diverged == total:
            error = f"diverged: all {total} trainings diverged"
    status.update(status=FAILED if error else FINISHED, error=error, finished=now(),
                  seconds=round(time.perf_counter() - start, 2))
    write_status(folder, status)
    return status


def _execute_logged(task: dict) -> dict:
    return execute_run(task, log=True)


def lost(task: dict, error: BaseException) -> dict:
    """Record a run whose worker died (or could not take it) as failed; returns its status."""
    folder = Path(task["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    status = {**task["record"], "status": FAILED, "error": f"worker lost: {error_line(error)}", "diverged": None,
              "finished": now()}
    write_status(folder, status)
    return status


# --- executors ------------------------------------------------------------------------------------------------


def run_local(tasks: list[dict], workers: int = 1) -> Iterator[dict]:
    """Run the tasks on a pool of ``workers`` local processes; yields each status as it ends.

    Only ``workers`` runs are handed out at a time, so that after Ctrl-C no queued run starts.
    """
    context = multiprocessing.get_context("spawn")  # no fork of a process that imported torch
    pool = ProcessPoolExecutor(max_workers=max(1, workers), mp_context=context)
    queue, running = iter(tasks), {}

    def hand_out(count: int) -> list[dict]:
        """Submit up to ``count`` more tasks; returns the statuses of those the pool could not take."""
        refused = []
        for item in itertools.islice(queue, count):
            try:
                running[pool.submit(_execute_logged, item)] = item
            except BrokenProcessPool as error:
                refused.append(lost(item, error))
        return refused

    try:
        yield from hand_out(max(1, workers))
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                item = running.pop(future)
                try:
                    yield future.result()
                except Exception as error:  # noqa: BLE001 - e.g. BrokenProcessPool: a worker died
                    yield lost(item, error)
                yield from hand_out(1)
    except BaseException:  # interrupted: the running runs see Ctrl-C too and record themselves as interrupted
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def connect(address: str, timeout: float = 10.0):
    """A Dask client of the scheduler at ``address`` that has at least one worker.

    Raises:
      ValueError: the scheduler cannot be reached, or has no worker, within ``timeout`` seconds.
    """
    from dask.distributed import Client
    from distributed.comm.addressing import get_address_host_port, parse_address

    try:
        if parse_address(address)[0] in ("tcp", "tls"):
            get_address_host_port(address)  # a malformed address fails here, before a client exists
        client = Client(address, timeout=timeout, set_as_default=False)
    except Exception as error:  # noqa: BLE001 - OSError, TimeoutError, ValueError for a bad address
        raise ValueError(f"cannot reach the Dask scheduler at {address!r}: {error_line(error)}") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception:  # noqa: BLE001
        client.close()
        raise ValueError(f"the Dask scheduler at {address!r} has no worker (start one: dask worker {address})") \
            from None
    return client


def run_dask(tasks: list[dict], client) -> Iterator[dict]:
    """Run the tasks on the Dask cluster of ``client`` (one task per worker thread); yields each status as it ends."""
    from dask.distributed import as_completed as completed

    futures = {client.submit(execute_run, item, pure=False): item for item in tasks}
    try:
        for future in completed(futures, loop=client.loop):
            try:
                yield future.result()
            except Exception as error:  # noqa: BLE001 - KilledWorker, CommClosedError...
                yield lost(futures[future], error)
    finally:
        client.cancel([future for future in futures if not future.done()])


def run_sweep(sweep: Sweep, executor: Callable[[list[dict]], Iterator[dict]], retry_failed: bool = False,
              report: bool = True, show: Callable[[str], None] = print, progress: bool = True,
              where: str = "") -> dict[str, int]:
    """Compute the sweep's runs that are not done yet with ``executor`` (:func:`run_local`, :func:`run_dask`),
    a line per run as it ends and a progress bar; ``where`` names the executor in the first line.

    Returns:
      How many runs were ``cached`` and how many of those computed now ``finished`` and ``failed``.
    """
    from hpolab.progress import progress_bar

    write_manifest(sweep)
    pending = to_do(sweep, retry_failed)
    counts = {"runs": len(sweep.runs), "cached": len(sweep.runs) - len(pending), FINISHED: 0, FAILED: 0}
    show(f"{sweep.notebook}: {len(sweep.runs)} runs, {counts['cached']} already done, {len(pending)} to run"
         + (f" on {where}" if pending and where else "") + f" (in {sweep.folder})")
    if not pending:
        return counts
    by_key = {run.key: run for run in pending}
    with progress_bar(total=len(pending), desc=sweep.notebook, unit="run", disable=not progress) as bar:
        for status in executor([task(sweep, run, report) for run in pending]):
            counts[status["status"]] = counts.get(status["status"], 0) + 1
            point = ", ".join(f"{k}={v!r}" for k, v in by_key[status["key"]].point.items())
            ending = {FAILED: f"failed: {status.get('error')}",
                      FINISHED: f"finished in {status.get('seconds')} s"}.get(status["status"], status["status"])
            bar.write(f"  {point or status['key']}: {ending}")
            bar.update()
    return counts


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
