"""The MNIST MLP of the Joint Descent paper (section 4.2) as a problem f(x, y) on minibatches.

A 784-H-10 network (H = 30 in the paper) on flat weights x, with the activation
``sigma(z) = leaky_relu(z, alpha) + b * elu(z)`` and the hyperparameters y = (eta, alpha, b).
The learning rate eta enters the objective through one look-ahead step,

    f(x, y) = L_sigma(x - eta * grad_x L_sigma(x)),

L_sigma the cross-entropy on the current minibatch. alpha = 1, b = 0 is a linear network,
alpha = 0, b = 0 a ReLU network.

Minibatches come from a :class:`MinibatchStream` (epochs of seeded random permutations).
``f`` reads the stream's current batch, so every evaluation a step makes (a gradient, or the
incumbent and all tries of a gradientless step) sees the same batch; :func:`on_minibatches`
wraps a method so that each of its steps draws the next batch, seeded from the run's generator.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from torch.func import grad
from torch.nn import functional as F

from hpolab.problems.base import Problem
from hpolab.protocol import Method
from hpolab.validation import check_count, check_positive

HYPERPARAMETERS = ("eta", "alpha", "b")


def activation(z: torch.Tensor, alpha: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``leaky_relu(z, alpha) + b * elu(z)``, with alpha and b tensors (vmap-able)."""
    return torch.where(z >= 0, z, alpha * z) + b * F.elu(z)


class MLP(NamedTuple):
    """A one-hidden-layer network on a flat weight vector ``[W1, b1, W2, b2]``."""

    inputs: int = 784
    hidden: int = 30
    classes: int = 10

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [(self.hidden, self.inputs), (self.hidden,), (self.classes, self.hidden), (self.classes,)]

    @property
    def size(self) -> int:
        return sum(math.prod(shape) for shape in self.shapes)

    def unpack(self, x: torch.Tensor) -> list[torch.Tensor]:
        parts, start = [], 0
        for shape in self.shapes:
            n = math.prod(shape)
            parts.append(x[start:start + n].reshape(shape))
            start += n
        return parts

    def logits(self, x: torch.Tensor, alpha: torch.Tensor, b: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2 = self.unpack(x)
        return activation(images @ w1.T + b1, alpha, b) @ w2.T + b2

    def loss(self, x: torch.Tensor, alpha: torch.Tensor, b: torch.Tensor, images: torch.Tensor,
             labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(x, alpha, b, images), labels)

    def init(self, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """torch.nn.Linear's default: every weight and bias uniform in +-1/sqrt(fan_in)."""
        parts = []
        for shape in self.shapes:
            fan_in = self.inputs if shape[0] == self.hidden else self.hidden
            bound = 1.0 / math.sqrt(fan_in)
            parts.append((2 * torch.rand(math.prod(shape), generator=generator, dtype=dtype) - 1) * bound)
        return torch.cat(parts)


class MinibatchStream:
    """Minibatches of ``batch_size`` examples: each epoch a fresh random permutation (the last
    incomplete batch is dropped), drawn from a generator seeded by :meth:`reset`."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int):
        check_count("batch_size", batch_size, minimum=1)
        if batch_size > len(labels):
            raise ValueError(f"batch_size must be at most the {len(labels)} examples, got {batch_size}")
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.per_epoch = len(labels) // batch_size
        self.reset(0)

    def reset(self, seed: int) -> None:
        """Start over at the first batch of an epoch drawn from ``seed``."""
        self._generator = torch.Generator().manual_seed(seed)
        self.drawn = 0  # batches drawn since the reset
        self._new_epoch()
        self._select()

    def advance(self) -> None:
        """Move to the next batch (a new permutation at each epoch's end)."""
        self.drawn += 1
        if self.drawn % self.per_epoch == 0:
            self._new_epoch()
        self._select()

    @property
    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._images, self._labels

    def _new_epoch(self) -> None:
        self._order = torch.randperm(len(self.labels), generator=self._generator).to(self.labels.device)

    def _select(self) -> None:
        start = (self.drawn % self.per_epoch) * self.batch_size
        index = self._order[start:start + self.batch_size]
        self._images, self._labels = self.images[index], self.labels[index]


class MinibatchState(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor
    kind: str
    inner: object  # the wrapped method's state
    message: str = ""


def on_minibatches(method: Method, stream: MinibatchStream) -> Method:
    """``method`` with one fresh minibatch per step.

    ``init`` seeds the stream from the run's generator (so a seed repeats the batches too);
    each ``update`` advances the stream and then takes the method's step. A value the method
    cached from the previous step (Joint Descent keeps f(x, y) from its last gradientless
    step) was measured on another batch, so it is dropped: the step re-evaluates f(x, y) on
    its own batch (one more function evaluation) and compares the tries with it fairly.
    """

    def init(x0, y0, oracle, generator):
        stream.reset(int(torch.randint(2**62, (), generator=generator)))
        inner = method.init(x0, y0, oracle, generator)
        return MinibatchState(inner.x, inner.y, inner.kind, inner)

    def update(state, oracle, generator):
        stream.advance()
        inner = state.inner
        if getattr(inner, "value", None) is not None:
            inner = inner._replace(value=None)
        inner = method.update(inner, oracle, generator)
        return MinibatchState(inner.x, inner.y, inner.kind, inner, getattr(inner, "message", ""))

    config = {**method.config, "batch_size": stream.batch_size}
    return Method(method.name, init, update, config, method.label)


def activation_mlp(
    stream: MinibatchStream,
    monitor: tuple[torch.Tensor, torch.Tensor],
    *,
    lr: float,
    y0: Sequence[float] = (0.1, 1.0, 0.0),
    box: Sequence[tuple[float, float]] | None = None,
    hidden: int = 30,
    name: str = "mnist-mlp",
) -> Problem:
    """The JD paper's MNIST problem: f(x, (eta, alpha, b)) = L(x - eta grad L(x)) on the
    stream's current minibatch.

    Args:
      stream: where the minibatches come from (images flattened to rows).
      monitor: (images, labels) on which every history row records ``train_accuracy`` and
        ``train_loss`` (the plain loss L, no look-ahead) of the network x; monitoring only,
        not counted as evaluations.
      lr: the gradient step's size 1 / beta_x (JD steps ``x -= grad_x f / beta_x``).
      y0: the starting (eta, alpha, b); the paper starts at alpha = 1 (a linear network).
      box: per hyperparameter a (low, high) range; f is +inf outside it, so a gradientless
        step never accepts a try outside (it still counts as an evaluation). None: no box.
      hidden: hidden units (30 in the paper).
    """
    check_positive("lr", lr)
    if len(y0) != 3:
        raise ValueError(f"y0 must be (eta, alpha, b), got {y0!r}")
    net = MLP(stream.images.shape[1], hidden, 10)
    device, dtype = stream.images.device, stream.images.dtype
    if box is not None:
        low = torch.tensor([lo for lo, _ in box], dtype=dtype, device=device)
        high = torch.tensor([hi for _, hi in box], dtype=dtype, device=device)
        if len(box) != 3 or not bool((low <= high).all()):
            raise ValueError(f"box must be three (low, high) ranges with low <= high, got {box!r}")
        start = torch.tensor(y0, dtype=dtype, device=device)
        if not bool(((start >= low) & (start <= high)).all()):
            raise ValueError(f"y0 must lie inside the box {box!r}, got {tuple(y0)!r}")

    def objective(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        images, labels = stream.batch
        eta, alpha, b = y[0], y[1], y[2]
        step = grad(net.loss)(x, alpha, b, images, labels)
        value = net.loss(x - eta * step, alpha, b, images, labels)
        if box is None:
            return value
        inside = ((y >= low) & (y <= high)).all()
        return torch.where(inside, value, torch.full_like(value, math.inf))

    def initial_point(generator: torch.Generator):
        x0 = net.init(generator, dtype).to(device)
        return x0, torch.tensor(y0, dtype=dtype, device=device)

    images_m, labels_m = monitor

    @torch.no_grad()
    def metrics(x: torch.Tensor, y: torch.Tensor) -> dict:
        logits = net.logits(x, y[1], y[2], images_m)
        return {"train_accuracy": float((logits.argmax(1) == labels_m).float().mean()),
                "train_loss": float(F.cross_entropy(logits, labels_m))}

    nan = float("nan")
    bounds = (min(lo for lo, _ in box), max(hi for _, hi in box)) if box is not None else (-math.inf, math.inf)
    return Problem(name=name, objective=objective, nx=net.size, ny=3, initial_point=initial_point,
                   beta_x=1.0 / lr, beta=1.0 / lr, alpha=nan, y_bounds=bounds,
                   hyperparameter_names=HYPERPARAMETERS, metrics=metrics)
