"""The claims ledger: what each paper says, as checks that every run of its study evaluates.

A study declares the claims it tests as data, a list of :class:`Claim` named ``CLAIMS`` in
its module: an id, the paper's sentence and where it is (section, figure), the scales whose
runs are big enough to test it, and a check. A check reads the study's result (whatever the
study returns) and gives a :class:`Verdict`: ``holds``, ``fails`` or ``not testable here``,
with the numbers behind it in one line. Nothing is typed in by hand: the verdict and the
numbers come from the run.

At a scale the claim does not name (``smoke``, typically), the check still runs, so that its
code is exercised, and its verdict becomes ``not testable here`` with the numbers kept.

Every notebook ends with :func:`report` (the table, and ``claims.csv`` in the run folder);
``hpolab claims`` gathers the latest run of every notebook into one table
(:func:`collect`, :func:`markdown`).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import math
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

HOLDS, FAILS, UNTESTABLE = "holds", "fails", "not testable here"
VERDICTS = (HOLDS, FAILS, UNTESTABLE)

# The module declaring each notebook's CLAIMS (several notebooks may share a module).
STUDY_MODULES = {
    "01_jd_sphere": "hpolab.studies.jd_sphere",
    "02_jd_mnist_activation": "hpolab.studies.jd_mnist",
    "03_hozog_logreg": "hpolab.studies.hozog_logreg",
    "04_hozog_dnn_lr": "hpolab.studies.hozog_schedules",
    "05_hozog_hypercleaning": "hpolab.studies.hozog_cleaning",
    "06_hd_vs_decay": "hpolab.studies.hd_vs_decay",
    "07_lr_sensitivity": "hpolab.studies.hd_vs_decay",
    "08_fds_hypergradient_noise": "hpolab.studies.fds_noise",
    "09_fds_lr_schedules": "hpolab.studies.fds_schedules",
    "10_fds_cifar": "hpolab.studies.fds_cifar",
    "11_fds_vs_hpo": "hpolab.studies.fds_vs_hpo",
    "12_stn_best_response": "hpolab.studies.stn",
    "13_local_sgd": "hpolab.studies.local_sgd",
    "14_estimator_atlas": "hpolab.studies.estimator_atlas",
}
COLUMNS = ["notebook", "claim", "source", "paper says", "we measured", "verdict", "scale"]
RUN_FILES = ("claims.csv", "run.json", "summary.csv", "parameters.json")


@dataclass(frozen=True)
class Verdict:
    """What a check found: one of :data:`VERDICTS` and the numbers behind it, in one line."""

    status: str
    measured: str

    def __post_init__(self):
        if self.status not in VERDICTS:
            raise ValueError(f"verdict must be one of {list(VERDICTS)}, got {self.status!r}")


def holds(measured: str) -> Verdict:
    return Verdict(HOLDS, measured)


def fails(measured: str) -> Verdict:
    return Verdict(FAILS, measured)


def untestable(measured: str) -> Verdict:
    return Verdict(UNTESTABLE, measured)


def verdict(condition: bool, measured: str) -> Verdict:
    """``holds`` when ``condition`` is true, else ``fails``; NaN comparisons are false, so a
    missing number fails rather than passes."""
    return holds(measured) if bool(condition) else fails(measured)


@dataclass(frozen=True)
class Claim:
    """One sentence of a paper, made checkable.

    Attributes:
      id: short and stable, e.g. ``"hozog-beats-random-search"``.
      notebook: the notebook that tests it (``"03_hozog_logreg"``).
      says: the paper's claim, in its words where possible.
      source: where the paper says it (``"HOZOG, section 4.1, Figure 1"``).
      check: ``result -> Verdict`` over the study's result.
      scales: the scales whose runs are big enough to test it; elsewhere the verdict is
        ``not testable here`` (the check still runs).
    """

    id: str
    notebook: str
    says: str
    source: str
    check: Callable[[Any], Verdict]
    scales: tuple[str, ...] = ("cpu", "paper")

    def evaluate(self, result, scale: str) -> Verdict:
        found = self.check(result)
        if found.status != UNTESTABLE and scale not in self.scales:
            return untestable(f"{found.measured} [{scale} scale: too small to decide; "
                              f"decided at {' / '.join(self.scales)}]")
        return found


def claims_for(notebook: str) -> list[Claim]:
    """The claims ``notebook`` tests, from its study module's ``CLAIMS``."""
    if notebook not in STUDY_MODULES:
        raise ValueError(f"notebook must be one of {sorted(STUDY_MODULES)}, got {notebook!r}")
    module = importlib.import_module(STUDY_MODULES[notebook])
    return [claim for claim in getattr(module, "CLAIMS", []) if claim.notebook == notebook]


def evaluate(notebook: str, result, scale: str, claims: Sequence[Claim] | None = None) -> pd.DataFrame:
    """Every claim of ``notebook`` checked on ``result``: one row per claim (:data:`COLUMNS`)."""
    claims = claims_for(notebook) if claims is None else claims
    rows = []
    for claim in claims:
        found = claim.evaluate(result, scale)
        rows.append({"notebook": notebook, "claim": claim.id, "source": claim.source, "paper says": claim.says,
                     "we measured": found.measured, "verdict": found.status, "scale": scale})
    return pd.DataFrame(rows, columns=COLUMNS)


def show(table: pd.DataFrame) -> None:
    """Print the ledger as a notebook's last output: one block per claim."""
    counts = table["verdict"].value_counts()
    print(", ".join(f"{int(counts.get(v, 0))} {v}" for v in VERDICTS) + f" (scale {_scales(table)})")
    for row in table.to_dict("records"):
        print(f"\n[{row['verdict']}] {row['claim']} ({row['source']})")
        print(f"  paper says:  {row['paper says']}")
        print(f"  we measured: {row['we measured']}")


def _scales(table: pd.DataFrame) -> str:
    return " / ".join(dict.fromkeys(table["scale"].astype(str))) if len(table) else "-"


def save(table: pd.DataFrame, directory: str | Path) -> Path:
    """Write ``claims.csv`` into ``directory`` (a run folder); returns its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "claims.csv"
    table.to_csv(path, index=False)
    return path


def report(notebook: str, result, scale: str, results_dir: str | Path | None = None) -> pd.DataFrame:
    """What a notebook's last cell calls: evaluate, print, and save into ``results_dir`` if given."""
    table = evaluate(notebook, result, scale)
    show(table)
    if results_dir:
        save(table, results_dir)
    return table


# ---------------------------------------------------------------------------------------------
# Across notebooks: the latest run of each, one table


def write_run_record(folder: str | Path, notebook: str, scale: str, started: dt.datetime, wall_seconds: float,
                     status: str, parameters: dict) -> Path:
    """``run.json`` in a run folder: what ran, at what scale, when, for how long, how it ended,
    and which code (the library's source hash; the git commit when run from a checkout)."""
    path = Path(folder) / "run.json"
    path.write_text(json.dumps({
        "notebook": notebook, "scale": scale, "started": started.isoformat(timespec="seconds"),
        "wall_seconds": round(wall_seconds, 1), "status": status, "parameters": parameters, "code": code_record(),
    }, indent=2, default=str))
    return path


def code_record() -> dict:
    """The library's source hash (:func:`hpolab.cache.code_version`) and, in a git checkout,
    the commit and whether the library's files differed from it."""
    from hpolab.cache import code_version

    record = {"source_hash": code_version()}
    package = Path(__file__).resolve().parent
    try:
        def git(*args):
            return subprocess.run(["git", *args], cwd=package, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        record["commit"] = git("rev-parse", "HEAD")
        record["library_modified"] = bool(git("status", "--porcelain", "--", "."))
    except (OSError, subprocess.SubprocessError):
        pass
    return record


def latest_runs(root: str | Path, scale: str | None = None) -> dict[str, Path]:
    """The newest run folder holding ``claims.csv`` for each notebook under ``root``
    (``root/<notebook>/<run>/claims.csv``), at ``scale`` if given."""
    latest: dict[str, tuple[str, Path]] = {}
    for path in Path(root).glob("*/*/claims.csv"):
        folder = path.parent
        record = _record(folder)
        if scale is not None and record.get("scale", folder.name.split("-")[0]) != scale:
            continue
        notebook = folder.parent.name
        stamp = record.get("started", "") or folder.name
        if notebook not in latest or stamp > latest[notebook][0]:
            latest[notebook] = (stamp, folder)
    return {notebook: folder for notebook, (_, folder) in sorted(latest.items())}


def _record(folder: Path) -> dict:
    path = folder / "run.json"
    return json.loads(path.read_text()) if path.exists() else {}


def collect(root: str | Path, scale: str | None = None, complete: bool = True) -> pd.DataFrame:
    """The claims of the latest run of every notebook under ``root``, with each run's date and
    wall time. With ``complete``, a declared claim that no run checked appears as ``not run``."""
    frames = []
    for notebook, folder in latest_runs(root, scale).items():
        table = pd.read_csv(folder / "claims.csv", keep_default_na=False)
        record = _record(folder)
        table["run"] = str(folder)
        table["started"] = record.get("started", "")
        table["wall seconds"] = record.get("wall_seconds", math.nan)
        table["commit"] = record.get("code", {}).get("commit", "")[:10]
        frames.append(table)
    table = (pd.concat(frames, ignore_index=True) if frames
             else pd.DataFrame(columns=[*COLUMNS, "run", "started", "wall seconds"]))
    if complete:
        seen = set(zip(table["notebook"], table["claim"]))
        missing = [{"notebook": claim.notebook, "claim": claim.id, "source": claim.source, "paper says": claim.says,
                    "we measured": "", "verdict": "not run", "scale": scale or "", "run": "", "started": "",
                    "wall seconds": math.nan}
                   for notebook in STUDY_MODULES for claim in claims_for(notebook)
                   if (claim.notebook, claim.id) not in seen]
        if missing:
            table = pd.concat([table, pd.DataFrame(missing)], ignore_index=True)
        order = {name: i for i, name in enumerate(STUDY_MODULES)}
        table = table.sort_values("notebook", key=lambda s: s.map(order), kind="stable", ignore_index=True)
    return table


def keep(root: str | Path, destination: str | Path, scale: str) -> dict[str, Path]:
    """Copy the small files (:data:`RUN_FILES`) of the latest ``scale`` run of every notebook
    under ``root`` into ``destination/<notebook>/<run>/``: the results a commit keeps."""
    kept = {}
    for notebook, folder in latest_runs(root, scale).items():
        target = Path(destination) / notebook / folder.name
        shutil.rmtree(Path(destination) / notebook, ignore_errors=True)
        target.mkdir(parents=True)
        for name in RUN_FILES:
            if (folder / name).exists():
                shutil.copy2(folder / name, target / name)
        kept[notebook] = target
    return kept


def markdown(table: pd.DataFrame, title: str = "Claims ledger") -> str:
    """The table as a Markdown page: a count of verdicts, then per notebook its run (date, wall
    time) and one row per claim."""
    lines = [f"# {title}", "",
             "Generated by `hpolab claims` from each notebook's latest run; do not edit by hand.", ""]
    counts = table["verdict"].value_counts()
    lines.append(", ".join(f"**{int(n)}** {v}" for v, n in counts.items()) + f" (of {len(table)} claims).")
    for notebook, rows in table.groupby("notebook", sort=False):
        first = rows.iloc[0]
        wall = first.get("wall seconds", math.nan)
        when = first.get("started", "") or "not run"
        timing = f", wall time {float(wall) / 60:.1f} min" if isinstance(wall, (int, float)) and wall == wall else ""
        commit = first.get("commit", "")
        timing += f", commit {commit}" if isinstance(commit, str) and commit else ""
        scale = first.get("scale", "")
        lines += ["", f"## {notebook}", "", f"Run: {when}" + (f", scale `{scale}`" if scale else "") + timing + ".", "",
                  "| claim | paper says | source | we measured | verdict |", "| --- | --- | --- | --- | --- |"]
        for row in rows.to_dict("records"):
            cells = [row["claim"], row["paper says"], row["source"], row["we measured"] or "-", f"**{row['verdict']}**"]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"
