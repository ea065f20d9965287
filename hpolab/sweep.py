"""Sweeps: run a study notebook for every combination of a grid of parameters.

    hpolab sweep 01_jd_sphere --grid p=0.1,0.5,0.9 --scale smoke [--workers 2 | --address tcp://host:8786]
    hpolab report [01_jd_sphere | runs/sweeps/01_jd_sphere]

Every run lives in ``runs/sweeps/<notebook>/<key>/``, where ``key`` hashes the notebook's
name, its code cells, the library's code (every ``.py`` under ``hpolab/``), the scale and
every parameter (defaults filled in), and holds a ``status.json`` (``finished``, or
``failed`` with the error; ``running`` or ``interrupted`` while not done; the parameters, the
timing). A finished run is never recomputed, so running the same command again after an
interruption resumes the sweep; a failed one is retried only when asked (``retry_failed``).
The last sweep of each notebook is listed in ``runs/sweeps/<notebook>/sweep.json``, which
:func:`hpolab.sweep_report.write_report` reads.

Runs go to a local process pool (:func:`run_local`) or to a Dask cluster
(:func:`connect`, :func:`run_dask`); both hand each run to :func:`execute_run`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import json
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
from hpolab.sweep_grid import Axis, RESERVED, parse_axis, parse_fixed

STATUS = "status.json"
MANIFEST = "sweep.json"
FINISHED, FAILED, RUNNING, INTERRUPTED, PENDING = "finished", "failed", "running", "interrupted", "pending"


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
