"""Progress bars: widgets in notebooks, plain text lines in batch runs.

Under ``hpolab run`` a notebook executes in a papermill kernel, where tqdm.auto would draw
a widget nobody sees; the runner sets ``HPOLAB_PROGRESS=text`` so bars are printed to
stderr every few seconds instead, and papermill relays them to the terminal.
"""

from __future__ import annotations

import os
import sys

from tqdm import tqdm as text_tqdm
from tqdm.auto import tqdm as auto_tqdm

ENVIRONMENT_VARIABLE = "HPOLAB_PROGRESS"


def progress_bar(**kwargs):
    """A tqdm bar suited to where the code runs (``disable=True`` works as usual)."""
    if os.environ.get(ENVIRONMENT_VARIABLE) == "text":
        return text_tqdm(file=sys.stderr, mininterval=5.0, ascii=True, **kwargs)
    return auto_tqdm(**kwargs)
