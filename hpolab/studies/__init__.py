"""Studies: one function per paper experiment, called by its notebook."""

from hpolab.studies.common import SCALES, StudyResult

__all__ = ["SCALES", "StudyResult"]
