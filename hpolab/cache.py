"""Finished pieces of a long study kept on disk, so that an interrupted run resumes.

A study names its cache by what determines its results (its parameters, less those that
only say how many pieces to compute, such as the number of seeds); each finished
piece (one seed's hypergradients, one outer step, one method's run) is saved under that
key as soon as it is done. Running the same study again loads the pieces and computes
only the rest. Layout: ``<runs>/cache/<study>/<key>/`` with ``parameters.json`` (what the
key stands for) and one ``<piece>.pt`` per piece.

The key covers the parameters and the library's code (a hash of every ``hpolab/*.py``): a
change to the library never brings back results computed by the old code.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import re
from pathlib import Path

from hpolab import __version__
from hpolab.notebooks import REPOSITORY


def cache_root() -> Path:
    """``$HPOLAB_RUNS`` if set, else the checkout's ``runs/`` (whatever the working directory:
    a notebook's kernel runs in ``notebooks/``), else ``runs/`` in the working directory."""
    if os.environ.get("HPOLAB_RUNS"):
        return Path(os.environ["HPOLAB_RUNS"])
    return REPOSITORY / "runs" if (REPOSITORY / "pyproject.toml").exists() else Path("runs")


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of the library's source (every ``.py`` under ``hpolab/``) and its version."""
    digest = hashlib.sha1(__version__.encode())
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def cache_key(parameters: dict) -> str:
    """A short hash of ``parameters`` (JSON, sorted keys) and the library's code."""
    text = json.dumps({"parameters": parameters, "code": code_version()}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


class StudyCache:
    """The pieces of one study configuration on disk (or nowhere, when disabled).

    Args:
      study: folder name, e.g. ``"08_fds_hypergradient_noise"``.
      parameters: everything the results depend on (JSON-serializable).
      enabled: False keeps nothing (every :meth:`load` misses).
      root: the runs folder (default :func:`cache_root`).
    """

    def __init__(self, study: str, parameters: dict, enabled: bool = True, root: str | Path | None = None):
        self.enabled = enabled
        self.key = cache_key(parameters)
        self.folder = Path(root if root is not None else cache_root()) / "cache" / study / self.key
        self.parameters = parameters

    def _path(self, piece: str) -> Path:
        return self.folder / (re.sub(r"[^A-Za-z0-9_.=-]+", "_", piece) + ".pt")

    def load(self, piece: str):
        """The saved piece, or None when it was not finished (or the cache is disabled)."""
        path = self._path(piece)
        if not self.enabled or not path.exists():
            return None
        with open(path, "rb") as file:
            return pickle.load(file)

    def save(self, piece: str, value) -> None:
        """Keep ``value`` (anything picklable); written to a temporary file and renamed, so an
        interruption never leaves half a piece."""
        if not self.enabled:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        described = self.folder / "parameters.json"
        if not described.exists():
            described.write_text(json.dumps(self.parameters, indent=2, sort_keys=True, default=str))
        path = self._path(piece)
        partial = path.with_suffix(f".tmp{os.getpid()}")
        with open(partial, "wb") as file:
            pickle.dump(value, file)
        partial.replace(path)

    def get_or_compute(self, piece: str, compute):
        """The saved piece, or ``compute()``'s value, saved before it is returned."""
        value = self.load(piece)
        if value is None:
            value = compute()
            self.save(piece, value)
        return value

    def __len__(self) -> int:
        return len(list(self.folder.glob("*.pt"))) if self.enabled and self.folder.exists() else 0

    def __repr__(self) -> str:
        return f"StudyCache({self.folder}, {len(self)} pieces)" if self.enabled else "StudyCache(disabled)"
