"""Progress bars: a widget in JupyterLab, a live text bar in a terminal, none in a report.

Under ``hpolab run`` a notebook executes in a papermill kernel, where a widget is drawn for
nobody and a text bar on stderr would be stored in the executed notebook (a red block in its
report). So the runner sets ``HPOLAB_PROGRESS=file:<path>``: bars are written to that file
(``progress.log`` in the run folder) and the runner relays it to the terminal while the
notebook runs (:func:`relay`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path

from tqdm import tqdm as text_tqdm
from tqdm.auto import tqdm as auto_tqdm

ENVIRONMENT_VARIABLE = "HPOLAB_PROGRESS"


def progress_bar(**kwargs):
    """A tqdm bar suited to where the code runs (``disable=True`` works as usual)."""
    setting = os.environ.get(ENVIRONMENT_VARIABLE, "")
    if setting.startswith("file:"):
        return _FileBar(Path(setting[len("file:"):]), **kwargs)
    if setting == "text":
        return text_tqdm(file=sys.stderr, mininterval=5.0, ascii=True, **kwargs)
    return auto_tqdm(**kwargs)


class _FileBar(text_tqdm):
    """A text bar appended to a log file (closed with the bar)."""

    def __init__(self, path: Path, **kwargs):
        self._log = open(path, "a", buffering=1, encoding="utf-8")
        super().__init__(file=self._log, mininterval=2.0, ascii=True, **kwargs)

    def close(self):
        try:
            super().close()
        finally:
            if not self._log.closed:
                self._log.write("\n")
                self._log.close()


@contextlib.contextmanager
def relay(path: Path, to=None, interval: float = 0.5):
    """While the block runs, bars written to ``path`` by a kernel go to ``to`` (stderr):
    sets :data:`ENVIRONMENT_VARIABLE` for kernels started inside the block."""
    to = to or sys.stderr
    path.touch()
    previous = os.environ.get(ENVIRONMENT_VARIABLE)
    os.environ[ENVIRONMENT_VARIABLE] = f"file:{path}"
    done = threading.Event()

    def follow():
        with open(path, encoding="utf-8", errors="replace") as source:
            while True:
                chunk = source.read()
                if chunk:
                    to.write(chunk)
                    to.flush()
                elif done.is_set():
                    return
                else:
                    time.sleep(interval)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        done.set()
        thread.join(timeout=5)
        if previous is None:
            os.environ.pop(ENVIRONMENT_VARIABLE, None)
        else:
            os.environ[ENVIRONMENT_VARIABLE] = previous
