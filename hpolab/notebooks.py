"""The study notebooks as batch jobs: find them, read their parameters, run them with papermill."""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import sys
import time

import nbformat
import papermill
from jupyter_client.manager import AsyncKernelManager

from hpolab.claims import write_run_record
from hpolab.progress import relay

REPOSITORY = Path(__file__).resolve().parents[1]


def notebooks_dir() -> Path:
    """``$HPOLAB_NOTEBOOKS`` if set, else the repository's ``notebooks/``."""
    return Path(os.environ.get("HPOLAB_NOTEBOOKS", REPOSITORY / "notebooks"))


def runs_dir() -> Path:
    """``$HPOLAB_RUNS`` if set, else ``runs/`` in the current directory."""
    return Path(os.environ.get("HPOLAB_RUNS", "runs"))


def kernel_output_to(log: Path) -> type[AsyncKernelManager]:
    """A kernel manager whose kernel writes its process-level output to ``log`` instead of this
    terminal. Cells' output still comes back through papermill; what lands in ``log`` is what
    the kernel process itself prints (a C library's last words when the kernel is stopped, a
    crash's message), which would otherwise break the one-line errors of ``hpolab run``."""

    class KernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            with open(log, "ab") as handle:  # the kernel holds its own copy of the descriptor
                return await super().start_kernel(**{"stdout": handle, "stderr": handle, **kw})

    return KernelManager


def available() -> dict[str, Path]:
    """Every study notebook by name (``01_jd_sphere`` -> its path)."""
    return {path.stem: path for path in sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))}


def find(name: str | Path) -> Path:
    """The notebook called ``name``, or whose number is ``name`` (``01``), or the notebook
    file at the path ``name`` (what a sweep hands to a worker whose notebooks folder may differ)."""
    if str(name).endswith(".ipynb") and Path(name).is_file():
        return Path(name)
    notebooks = available()
    matches = [path for stem, path in notebooks.items() if stem == name or stem.split("_")[0] == name]
    if len(matches) != 1:
        raise ValueError(f"notebook must be one of {sorted(notebooks)}, got {name!r}")
    return matches[0]


class BadParameter(ValueError):
    """A notebook refused to start: a parameter's value it rejects, or data it cannot find,
    before doing any work. The message is one line (the first of the notebook's own).

    ``ename`` / ``evalue`` are the notebook's own exception, as papermill's errors carry them."""

    def __init__(self, notebook: str, ename: str, evalue: str):
        super().__init__(f"{notebook}: {evalue.strip().splitlines()[0]}")
        self.ename, self.evalue = ename, evalue


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: object
    help: str


def parameters(path: Path) -> dict[str, Parameter]:
    """The notebook's ``parameters`` cell, as papermill reads it (name, type, default, comment)."""
    found = papermill.inspect_notebook(str(path))
    return {
        name: Parameter(name, info["inferred_type_name"], _literal(info["default"]), info["help"])
        for name, info in found.items()
    }


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def coerce(parameter: Parameter, text: str):
    """Parse a command-line value for ``parameter`` and check it against its declared type."""
    value = _literal(text)
    expected = parameter.type.replace(" ", "")
    kinds = {"int": int, "float": (int, float), "str": str, "bool": bool, "list": (list, tuple), "dict": dict}
    allowed = [kinds[k] for k in expected.split("|") if k in kinds]
    if "None" in expected.split("|") and value is None:
        return value
    if expected == "str" and not isinstance(value, str):
        value = text
    if allowed and not any(isinstance(value, kind) for kind in allowed):
        raise ValueError(f"parameter {parameter.name} takes {parameter.type}, got {text!r}")
    if isinstance(value, bool) and "bool" not in expected:
        raise ValueError(f"parameter {parameter.name} takes {parameter.type}, got {text!r}")
    return value


def drop_widget_state(path: Path) -> None:
    """Remove saved widget state (megabytes of plotly's widget bundle; JupyterLab does
    not re-render it anyway: the cells must run)."""
    notebook = nbformat.read(path, as_version=4)
    if notebook.metadata.pop("widgets", None) is not None:
        nbformat.write(notebook, path)


def execute(name: str, values: dict | None = None, scale: str | None = None, output: Path | None = None,
            report: bool = True, progress: bool = True) -> dict[str, Path]:
    """Run a study notebook headlessly into its own folder under ``runs/``.

    The folder (``runs/<notebook>/<scale>-<time>/`` unless ``output`` is given) receives
    the executed notebook, ``run.json`` (scale, start, wall time, status, parameters), the
    study's ``summary.csv``, ``histories.csv.gz``, ``claims.csv`` and ``parameters.json``
    (through the notebook's ``results_dir`` parameter) and, with ``report``, an offline HTML
    report with the figures.

    Returns:
      The paths written, by kind (``notebook``, ``report``, ``summary``...).
    """
    path = find(name)
    declared = parameters(path)
    values = dict(values or {})
    if scale is not None:
        values["scale"] = scale
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise ValueError(f"parameter {unknown[0]!r} is not in {path.stem}'s parameters: {sorted(declared)}")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = Path(output) if output else runs_dir() / path.stem / f"{values.get('scale', declared['scale'].default)}-{stamp}"
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if "results_dir" in declared:
        values["results_dir"] = str(folder)
    executed = folder / f"{path.stem}.ipynb"
    started, clock = dt.datetime.now(), time.perf_counter()
    scale_run = values.get("scale", declared["scale"].default)
    # Bars go to progress.log, relayed to this terminal, never into the executed notebook.
    bars = relay(folder / "progress.log") if progress else contextlib.nullcontext()
    try:
        with bars:
            papermill.execute_notebook(str(path), str(executed), parameters=values, kernel_name="python3",
                                       cwd=str(path.parent), progress_bar=False,
                                       extra_arguments=["--log-level=CRITICAL"],  # the kernel's own log lines
                                       kernel_manager_class=kernel_output_to(folder / "kernel.log"),
                                       stdout_file=sys.stdout if progress else None,
                                       stderr_file=sys.stderr if progress else None)
    except papermill.PapermillExecutionError as error:
        refused = error.ename == "ValueError" and " must " in error.evalue or error.ename == "DataNotFoundError"
        if refused and not any(folder.glob("*.csv")):
            if output is None:  # nothing ran: leave no half-empty run folder behind
                shutil.rmtree(folder, ignore_errors=True)
                with contextlib.suppress(OSError):
                    folder.parent.rmdir()  # only if no other run is there
            raise BadParameter(path.stem, error.ename, error.evalue) from None
        write_run_record(folder, path.stem, scale_run, started, time.perf_counter() - clock, "failed", values)
        raise
    except BaseException:
        write_run_record(folder, path.stem, scale_run, started, time.perf_counter() - clock, "failed", values)
        raise
    record = write_run_record(folder, path.stem, scale_run, started, time.perf_counter() - clock, "finished", values)
    drop_widget_state(executed)
    written = {"notebook": executed, "run": record}
    tables = [*folder.glob("*.csv"), *folder.glob("*.csv.gz")]
    written.update({p.name.split(".")[0]: p for p in sorted(tables)})
    if report:
        from hpolab.report import export_html

        written["report"] = export_html(executed, folder / f"{path.stem}.html")
    return written
