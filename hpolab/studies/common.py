"""What every study shares: scales, the result object and its files."""

from __future__ import annotations

import functools
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pandas as pd

from hpolab.history import History, combine
from hpolab.validation import check_choice

SCALES = ("smoke", "cpu", "paper")


def check_scale(scale: str) -> str:
    return check_choice("scale", scale, SCALES)


def saves_results(run):
    """Give a study's entry point (``run_study``, ``run_sensitivity``) the keyword ``results_dir``.

    ``results_dir: str | Path | None = None``: a folder for the result's files. When given (not
    ``None`` or ``""``, which save nothing), the study runs, then ``result.save(results_dir)``
    writes its files (``StudyResult.save`` or the result class's own ``save``) and one line
    ``kind: path`` is printed per file written; the result is returned either way.
    """

    @functools.wraps(run)
    def wrapper(*args, results_dir: str | Path | None = None, **kwargs):
        result = run(*args, **kwargs)
        if results_dir:
            for kind, path in result.save(results_dir).items():
                print(f"{kind}: {path}")
        return result

    signature = inspect.signature(run)
    keyword = inspect.Parameter("results_dir", inspect.Parameter.KEYWORD_ONLY, default=None,
                                annotation="str | Path | None")
    wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), keyword])
    return wrapper


@dataclass
class StudyResult:
    """The histories of a study's runs and the summary table computed from them."""

    histories: list[History]
    summary: pd.DataFrame
    parameters: dict = field(default_factory=dict)
    tables: ClassVar[dict[str, str]] = {}  # a subclass's further tables (fields) and the files they are saved to

    def save(self, directory: str | Path) -> dict[str, Path]:
        """Write ``summary.csv``, ``histories.csv.gz`` (tidy, every step of every run; gzip, which
        ``pandas.read_csv`` reads as it is), ``parameters.json`` and each table a subclass names
        in ``tables`` (``<file>.csv``) into ``directory``; returns their paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {
            "summary": directory / "summary.csv",
            "histories": directory / "histories.csv.gz",
            "parameters": directory / "parameters.json",
        }
        self.summary.to_csv(paths["summary"], index=False)
        combine(self.histories).to_csv(paths["histories"], index=False, float_format="%.8g")
        paths["parameters"].write_text(json.dumps(self.parameters, indent=2, default=str))
        for name, file in self.tables.items():
            paths[file] = directory / f"{file}.csv"
            getattr(self, name).to_csv(paths[file], index=False, float_format="%.8g")
        return paths

    @property
    def failed(self) -> list[History]:
        """Runs that diverged or were stopped."""
        return [h for h in self.histories if h.status != "finished"]
