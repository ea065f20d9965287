"""Local SGD's communication-period schedules: what H the next round takes.

A :class:`Schedule` maps the log of completed rounds, ``(H, loss)`` pairs, to the next
period: :func:`constant`, :func:`growing` (Patel & Dieuleveut's period growing with the
round index) and :func:`plateau` (ours: multiply H when the loss stalls);
:func:`make_schedule` builds one from an int or a name. They live apart from the simulation
(:mod:`hpolab.methods.local_sgd`) because they hold no tensors: a schedule
only reads the round log, so it can be read and tested on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence

from hpolab.validation import check_count, check_positive


class Schedule(Protocol):
    """The communication period of the next round, from the completed rounds' log: a list
    of ``(H, loss)`` pairs, ``loss`` being the workers' mean minibatch loss over that round
    (what the workers can send along with their weights at no extra cost)."""

    label: str

    def __call__(self, rounds: Sequence[tuple[int, float]]) -> int: ...


@dataclass(frozen=True)
class constant:
    """The same period every round: ``H = period``."""

    period: int

    def __post_init__(self):
        check_count("period", self.period, minimum=1)

    @property
    def label(self) -> str:
        return f"H={self.period}"

    def __call__(self, rounds) -> int:
        return self.period


@dataclass(frozen=True)
class growing:
    """A period growing linearly with the round index r: ``H_r = min(maximum, start +
    floor(r / every))``.

    Patel & Dieuleveut (2019) let the number of local steps after the t-th communication
    grow as the iterates approach the optimum (the delay allowed is inversely proportional
    to the distance to the solution); ``N_t`` proportional to t (``every=1``) needs
    ``sqrt(2 T)`` rounds for T steps, against T for mini-batch SGD.
    """

    start: int = 1
    every: int = 1
    maximum: int = 10**9

    def __post_init__(self):
        check_count("start", self.start, minimum=1)
        check_count("every", self.every, minimum=1)
        check_count("maximum", self.maximum, minimum=self.start)

    @property
    def label(self) -> str:
        cap = f"<={self.maximum}" if self.maximum < 10**9 else ""
        return f"growing H=r{'/' + str(self.every) if self.every > 1 else ''}+{self.start}{cap}"

    def __call__(self, rounds) -> int:
        return min(self.maximum, self.start + len(rounds) // self.every)


@dataclass(frozen=True)
class plateau:
    """Multiply the period by ``factor`` when the loss stops decreasing.

    The rule watches the workers' mean minibatch loss since the period last changed: once
    those rounds cover at least ``2 * window`` local steps, it compares the mean loss over
    the last ``window`` steps (whole rounds, step-weighted) with the ``window`` before;
    a relative decrease below ``threshold`` multiplies H by ``factor`` (up to ``maximum``).
    The same test as ``ReduceLROnPlateau``, acting on the period instead of the rate:
    communicate often while the loss falls fast, rarely once it has stalled near its floor.
    """

    start: int = 1
    factor: int = 2
    window: int = 100
    threshold: float = 0.01
    maximum: int = 64

    def __post_init__(self):
        check_count("start", self.start, minimum=1)
        check_count("factor", self.factor, minimum=2)
        check_count("window", self.window, minimum=1)
        check_positive("threshold", self.threshold)
        check_count("maximum", self.maximum, minimum=self.start)

    @property
    def label(self) -> str:
        return f"plateau H={self.start}x{self.factor}<={self.maximum}"

    def __call__(self, rounds) -> int:
        period = rounds[-1][0] if rounds else self.start
        stretch = []  # the rounds since the period last changed, newest first
        for h, loss in reversed(rounds):
            if h != period:
                break
            stretch.append((h, loss))
        if period >= self.maximum or sum(h for h, _ in stretch) < 2 * self.window:
            return period
        last, earlier = _window_mean(stretch, self.window), _window_mean(stretch, self.window, skip=self.window)
        if not (math.isfinite(last) and math.isfinite(earlier)) or earlier - last < self.threshold * abs(earlier):
            return min(self.maximum, period * self.factor)
        return period


def _window_mean(stretch, window: int, skip: int = 0) -> float:
    """Step-weighted mean loss of the whole rounds (newest first) covering ``window`` steps
    after skipping the rounds that cover the first ``skip`` steps."""
    covered, total, weight = 0, 0.0, 0
    for h, loss in stretch:
        if covered >= skip + window:
            break
        if covered >= skip:
            total, weight = total + h * loss, weight + h
        covered += h
    return total / weight if weight else math.nan


def make_schedule(spec: int | str | Schedule) -> Schedule:
    """A schedule from an int (constant H), a name with settings (``"growing"``,
    ``"growing:every=2,maximum=64"``, ``"plateau:window=200"``) or a schedule itself."""
    if isinstance(spec, bool):
        raise ValueError(f"schedule must be an int H >= 1, 'growing[:k=v,...]', 'plateau[:k=v,...]', got {spec!r}")
    if isinstance(spec, int):
        return constant(spec)
    if not isinstance(spec, str):
        return spec
    name, _, settings = spec.partition(":")
    kinds = {"constant": constant, "growing": growing, "plateau": plateau}
    if name not in kinds:
        raise ValueError(f"schedule must be an int H >= 1 or one of {sorted(kinds)}, got {spec!r}")
    values = {}
    for item in filter(None, settings.split(",")):
        key, _, text = item.partition("=")
        values[key.strip()] = float(text) if key.strip() == "threshold" else int(text)
    return kinds[name](**values)
