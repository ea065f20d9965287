"""When a run has diverged: the one rule every loop of the library applies.

A value a run records (an objective, a training or validation loss) has diverged when it is
NaN or infinite, or when its magnitude exceeds :data:`FACTOR` times the run's reference: its
first recorded value, or 1 where that is smaller, so that a loss starting near 0 is not judged
by a tiny limit. Methods compared in one figure are judged by this one rule: the runner
(:func:`hpolab.runner.run`), plain training (:func:`hpolab.training.fit`), the unrolled
trainings of every hypergradient estimator (:class:`hpolab.hypergrad.unroll.Watch`), the
black-box trials, local SGD and the STN studies.
"""

from __future__ import annotations

import math

FACTOR = 1e6


def limit(reference: float, factor: float = FACTOR) -> float:
    """The largest magnitude a run whose first value was ``reference`` may reach."""
    return factor * max(abs(reference), 1.0)


def diverged(value: float, reference: float, factor: float = FACTOR) -> bool:
    """Whether ``value`` is NaN, infinite or beyond :func:`limit` of ``reference`` (a NaN
    ``reference``, a run whose first value was already NaN, leaves only the first test)."""
    if not math.isfinite(value):
        return True
    return math.isfinite(reference) and abs(value) > limit(reference, factor)
