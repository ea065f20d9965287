"""The one abstraction every hpolab method fits: a pair of pure-ish functions.

In the spirit of optax's ``GradientTransformation``, a :class:`Method` is a named pair
``(init, update)``:

* ``init(x0, y0, oracle, generator) -> state`` builds the method's state, a small ``NamedTuple`` whose
  fields always include the current training variables ``x`` and hyperparameters ``y``
  (tensors), plus whatever the method carries (a momentum vector, a cached value, a tuner).
* ``update(state, oracle, generator) -> state`` makes one step. Every question the step
  asks of the problem goes through the :class:`~hpolab.oracle.Oracle`, which counts it:
  the paper's iteration is a gradient *or* a function evaluation, so cost is what the
  oracle counted, never what the method claims.

Because hyperparameters live in the state as tensors, an outer loop (or a notebook) reads
them at every step, and later hypergradient methods can learn them the same way.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol

import torch


class State(Protocol):
    """What the runner (:func:`hpolab.runner.run`) reads from any method state.

    Required: ``x`` and ``y``, the training variables after the step and the hyperparameters
    they go with (a tuner's ``x`` is the weights a training ended at, its ``y`` the
    hyperparameters that training ran with), which the runner records as one row.
    Optional, read with a default when absent: ``kind`` (the history row's kind, ``"step"`` if absent; e.g.
    ``"gradient"``, ``"gradientless"``, ``"trial"``), ``message`` (a note the runner appends
    to a divergence message) and ``extras`` (a dict of further columns for the row, e.g. a
    hypergradient's squared norm).
    """

    x: torch.Tensor
    y: torch.Tensor


class Method(NamedTuple):
    """A training-and-tuning method: ``init`` builds a state, ``update`` advances it.

    Attributes:
      name: short identifier used in histories and plots (``"jd"``, ``"ajd"``...).
      init: ``(x0, y0, oracle, generator) -> state``.
      update: ``(state, oracle, generator) -> state``; all randomness of ``init`` and
        ``update`` comes from ``generator`` so that a seeded run repeats bit for bit.
      config: the method's own settings (p, radii, step sizes), recorded in histories.
      label: how plots and tables name this configuration (``"JD p=0.5"``).
    """

    name: str
    init: Callable[[torch.Tensor, torch.Tensor, Any, torch.Generator], Any]
    update: Callable[[Any, Any, torch.Generator], Any]
    config: dict
    label: str


class Cost(NamedTuple):
    """What a step, a hypergradient or a run cost, in the units the papers count."""

    gradient_evaluations: int = 0
    function_evaluations: int = 0
    hvp_evaluations: int = 0
    wall_time: float = 0.0
    peak_memory: int = 0  # bytes; 0 where not measured

    @property
    def evaluations(self) -> int:
        """Gradient and function evaluations counted alike, as the JD paper does."""
        return self.gradient_evaluations + self.function_evaluations
