"""Inner tasks: a functional model, its data stream, and the training and validation losses.

Weights are one flat vector theta (so a tangent or a stack of q + 1 weight vectors is one
tensor); :class:`FlatModel` turns an ``nn.Module`` into ``f(theta, x)`` through
``torch.func.functional_call``. Train-mode BatchNorm updates running statistics in place,
which ``jvp`` and ``vmap`` refuse, so BatchNorm layers are patched with
``torch.func.replace_all_batch_norm_modules_`` (they normalize with batch statistics,
also at evaluation).
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call, replace_all_batch_norm_modules_
from torch.nn import functional as F

_GLOBAL_RNG = threading.Lock()  # see FlatModel.init


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # inputs, labels, indices into the train set


class FlatModel:
    """``module`` as a function of one flat weight vector: ``model(theta, x)``."""

    def __init__(self, module: nn.Module):
        self.template = copy.deepcopy(module).cpu()  # re-initialized on the CPU for each seed
        self.module = replace_all_batch_norm_modules_(module)
        self.names = [name for name, _ in module.named_parameters()]
        self.shapes = [p.shape for _, p in module.named_parameters()]
        self.sizes = [p.numel() for _, p in module.named_parameters()]
        self.buffers = dict(module.named_buffers())

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(theta, self.sizes)
        return {name: part.view(shape) for name, part, shape in zip(self.names, parts, self.shapes)}

    def __call__(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.module, (self.unflatten(theta), self.buffers), (x,))

    def init(self, seed: int, dtype=torch.float32, device="cpu") -> torch.Tensor:
        """The module's own initialization, drawn from ``seed``, as a flat vector.

        The draw uses torch's global generator, so it holds a lock: runs training in several
        threads (HOZOG spread over devices) would otherwise interleave their draws."""
        with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for layer in self.template.modules():
                if hasattr(layer, "reset_parameters"):
                    layer.reset_parameters()
            flat = torch.cat([p.detach().reshape(-1) for p in self.template.parameters()])
        return flat.to(device=device, dtype=dtype)


@dataclass(frozen=True)
class InnerTask:
    """A training problem whose hyperparameters the estimators differentiate.

    Attributes:
      name: label for histories.
      init: ``seed -> theta_0`` (flat weights on the task's device).
      train_loss: ``(theta, batch, terms) -> scalar``; ``terms`` holds the loss
        hyperparameters (e.g. ``log_l2``), a possibly empty dict of tensors.
      val_loss: ``theta -> scalar`` on the validation set.
      batches: ``(seed, T) -> batches`` where ``batches[t]`` holds the indices of the
        training examples of step t (see :class:`ShuffledBatches`).
      data: ``(x_train, y_train)``, indexed by the batches.
      predict: ``(theta, x) -> outputs``, for accuracy and test error.
    """

    name: str
    init: Callable[[int], torch.Tensor]
    train_loss: Callable[[torch.Tensor, Batch, dict], torch.Tensor]
    val_loss: Callable[[torch.Tensor], torch.Tensor]
    batches: Callable[[int, int], "ShuffledBatches"]
    data: tuple[torch.Tensor, torch.Tensor]
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def batch(self, indices: torch.Tensor) -> Batch:
        x, y = self.data
        return x[indices], y[indices], indices


class ShuffledBatches:
    """The training indices of each step: epochs of seeded random permutations cut into
    batches (full batch when ``batch_size`` is None). Indexed by step, one epoch's
    permutation held at a time, so memory does not grow with the horizon."""

    def __init__(self, n: int, batch_size: int | None, seed: int, horizon: int, device):
        self.n, self.seed, self.horizon, self.device = n, seed, horizon, device
        self.batch_size = n if batch_size is None or batch_size >= n else batch_size
        self.per_epoch = n // self.batch_size
        self._epoch, self._order = None, None

    def __len__(self) -> int:
        return self.horizon

    def __getitem__(self, step: int) -> torch.Tensor | slice:
        """The indices of step ``step``'s batch (a full batch is ``slice(None)``: no copy)."""
        if not 0 <= step < self.horizon:
            raise IndexError(f"step {step} outside the horizon of {self.horizon} steps")
        if self.batch_size == self.n:
            return slice(None)
        epoch, position = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._order = torch.randperm(self.n, generator=generator).to(self.device)
            self._epoch = epoch
        return self._order[position * self.batch_size:(position + 1) * self.batch_size]


def shuffled_batches(n: int, batch_size: int | None, device) -> Callable[[int, int], ShuffledBatches]:
    """``(seed, T) -> batches`` for :class:`InnerTask`: the seed's data order over T steps."""
    return lambda seed, horizon: ShuffledBatches(n, batch_size, seed, horizon, device)


def classification_task(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    batch_size: int | None = 128,
    *,
    l2_term: bool = False,
    example_groups: torch.Tensor | None = None,
    name: str = "classification",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> InnerTask:
    """Cross-entropy training of ``model`` with optional loss hyperparameters.

    Args:
      l2_term: add ``exp(log_l2) * |theta|^2`` to the training loss (hyperparameter ``log_l2``).
      example_groups: a group id per training example; the loss of each example is weighted
        by ``sigmoid(example_weights[group])`` (hyperparameter ``example_weights``, the
        hyper-cleaning setting) and averaged over the batch.
    """
    device = torch.device(device)
    model = model.to(device=device, dtype=dtype)
    flat = FlatModel(model)
    x_train, y_train = (t.to(device) for t in train)
    x_val, y_val = (t.to(device) for t in val)
    x_train, x_val = x_train.to(dtype), x_val.to(dtype)
    groups = None if example_groups is None else example_groups.to(device)

    def train_loss(theta, batch, terms):
        x, y, idx = batch
        losses = F.cross_entropy(flat(theta, x), y, reduction="none")
        if groups is not None:
            losses = losses * torch.sigmoid(terms["example_weights"][groups[idx]])
        loss = losses.mean()
        if l2_term:
            loss = loss + torch.exp(terms["log_l2"]) * (theta**2).sum()
        return loss

    def val_loss(theta):
        return F.cross_entropy(flat(theta, x_val), y_val)

    return InnerTask(
        name=name,
        init=lambda seed: flat.init(seed, dtype, device),
        train_loss=train_loss,
        val_loss=val_loss,
        batches=shuffled_batches(len(y_train), batch_size, device),
        data=(x_train, y_train),
        predict=flat,
    )
