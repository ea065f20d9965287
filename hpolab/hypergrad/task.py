"""Inner tasks: a functional model, its data stream, and the training and validation losses.

Weights are one flat vector theta (so a tangent or a stack of q + 1 weight vectors is one
tensor); :class:`FlatModel` turns an ``nn.Module`` into ``f(theta, x)``: a plain
``nn.Sequential`` by direct functional calls (:mod:`hpolab.hypergrad.direct`), any other
module through ``torch.func.functional_call``. Train-mode BatchNorm updates running statistics in place,
which ``jvp`` and ``vmap`` refuse, so BatchNorm layers are patched with
``torch.func.replace_all_batch_norm_modules_`` (they normalize with batch statistics,
also at evaluation).

A task also names its inner optimizer: SGD with momentum (the default, see
:mod:`hpolab.hypergrad.hyperparameters`) or :class:`Adam`, and may clamp every coordinate of
the training gradient before the optimizer's update (``grad_clip``, as the FDS authors' code
does); :func:`logistic_regression_task` builds the HOZOG paper's Eq. 5 problem.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call, replace_all_batch_norm_modules_
from torch.nn import functional as F

from hpolab.hypergrad.direct import direct_layers, run_direct
from hpolab.hypergrad.mlp_tangents import cross_entropy_tangents, mlp_layers
from hpolab.seeding import global_seed


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # inputs, labels, indices into the train set


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba 2014) as a task's inner optimizer, in ``torch.optim.Adam``'s form:

        g_t = grad L_train(theta_{t-1}) + xi_t theta_{t-1}
        m_t = beta1 m_{t-1} + (1 - beta1) g_t,   v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
        theta_t = theta_{t-1} - alpha_t / (1 - beta1^t) * m_t / (sqrt(v_t / (1 - beta2^t)) + eps)

    with alpha (``lr``) and xi (``weight_decay``) the hyperparameters' schedules, m_0 = v_0 = 0.
    The ``momentum`` schedule has no role in Adam and must be 0; betas and eps are constants.
    """

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if not self.eps > 0:
            raise ValueError(f"eps must be a finite number > 0, got {self.eps!r}")


class FlatModel:
    """``module`` as a function of one flat weight vector: ``model(theta, x)``."""

    def __init__(self, module: nn.Module):
        self.template = copy.deepcopy(module).cpu()  # re-initialized on the CPU for each seed
        self.module = replace_all_batch_norm_modules_(module)
        self.names = [name for name, _ in module.named_parameters()]
        self.shapes = [p.shape for _, p in module.named_parameters()]
        self.sizes = [p.numel() for _, p in module.named_parameters()]
        self.buffers = dict(module.named_buffers())
        # without tied weights functional_call may skip its per-call search for them
        self.tied = len(list(module.named_parameters(remove_duplicate=False))) != len(self.names)
        self.layers = direct_layers(module) if not self.buffers and not self.tied else None
        self.mlp = mlp_layers(module) if self.layers is not None else None  # closed-form H Z (mlp_tangents)

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(theta, self.sizes)
        return {name: part.view(shape) for name, part, shape in zip(self.names, parts, self.shapes)}

    def __call__(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.layers is not None:
            return run_direct(self.layers, torch.split(theta, self.sizes), self.shapes, x)
        return functional_call(self.module, (self.unflatten(theta), self.buffers), (x,), tie_weights=self.tied)

    def init(self, seed: int, dtype=torch.float32, device="cpu") -> torch.Tensor:
        """The module's own initialization, drawn from ``seed``, as a flat vector.

        The draw uses torch's global generator, so it holds a lock: runs training in several
        threads (HOZOG spread over devices) would otherwise interleave their draws."""
        with global_seed(seed):
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
      optimizer: the inner optimizer: None for SGD with momentum (the hyperparameters' rule),
        or :class:`Adam`. The unrolled training (:func:`hpolab.hypergrad.unroll.step_function`)
        and the estimators built on it (reverse mode, zeroth-order, the jvp forward mode of
        :mod:`hpolab.hypergrad.unrolled_forward`) follow it.
      grad_clip: None (the default: the plain gradient), or c > 0: every coordinate of the
        training gradient is clamped to [-c, c] before the optimizer's update (weight decay is
        added after it), as the FDS authors' code does (``clamp_grads_range``). Every
        estimator differentiates the clamped step: a clamped coordinate's tangent is 0.
      tangents: None, or ``(theta, batch, terms, Z) -> (loss, g, H Z)``: the training gradient
        and the Hessian times the rows of Z in closed form, which forward mode uses instead of a
        double-backward when no loss hyperparameter is learned (a plain MLP's cross-entropy,
        :mod:`hpolab.hypergrad.mlp_tangents`).
    """

    name: str
    init: Callable[[int], torch.Tensor]
    train_loss: Callable[[torch.Tensor, Batch, dict], torch.Tensor]
    val_loss: Callable[[torch.Tensor], torch.Tensor]
    batches: Callable[[int, int], "ShuffledBatches"]
    data: tuple[torch.Tensor, torch.Tensor]
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    optimizer: Adam | None = None
    grad_clip: float | None = None
    tangents: Callable | None = None

    def __post_init__(self):
        clip = self.grad_clip
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float))
                                 or not 0 < clip < float("inf")):
            raise ValueError(f"grad_clip must be None or a finite number > 0, got {clip!r}")

    def clip(self, grad: torch.Tensor) -> torch.Tensor:
        """The training gradient as the optimizer sees it: clamped to [-grad_clip, grad_clip]
        coordinate by coordinate (unchanged, the same tensor, when ``grad_clip`` is None)."""
        return grad if self.grad_clip is None else grad.clamp(-self.grad_clip, self.grad_clip)

    def clip_with_tangents(self, grad: torch.Tensor, dgrad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(clip(g), its tangents): ``dgrad`` (rows of dg) zeroed on the coordinates where the
        clamp is active (|g| > c; ``torch.clamp``'s derivative is 1 on [-c, c]); (g, dg)
        unchanged without a clamp.

        Forward mode gets dg = H z (+ the mixed term) from a double-backward, by the symmetry
        of the Hessian; back-propagating through the clamp instead would give H (mask * z),
        not the tangent mask * (H z) of the clamped gradient, so the mask is applied here."""
        if self.grad_clip is None:
            return grad, dgrad
        mask = (grad.abs() <= self.grad_clip).to(grad.dtype)
        return self.clip(grad), dgrad * mask

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
    optimizer: Adam | None = None,
    grad_clip: float | None = None,
) -> InnerTask:
    """Cross-entropy training of ``model`` with optional loss hyperparameters.

    Args:
      l2_term: add ``exp(log_l2) * |theta|^2`` to the training loss (hyperparameter ``log_l2``).
      example_groups: a group id per training example; the loss of each example is weighted
        by ``sigmoid(example_weights[group])`` (hyperparameter ``example_weights``, the
        hyper-cleaning setting) and averaged over the batch.
      optimizer: the inner optimizer (None: SGD with momentum; or :class:`Adam`).
      grad_clip: clamp each coordinate of the training gradient to [-grad_clip, grad_clip]
        before the update (None: no clamp); see :class:`InnerTask`.
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

    # the closed form takes an example as a row (or flattens it first), and unweighted examples
    closed_form = (flat.mlp is not None and groups is None
                   and (x_train.dim() == 2 or flat.mlp[0][0] == "flatten"))

    def tangents(theta, batch, terms, Z):
        x, y, _ = batch
        return cross_entropy_tangents(flat.mlp, flat.sizes, flat.shapes, theta, x, y, Z,
                                      terms["log_l2"] if l2_term else None)

    return InnerTask(
        name=name,
        init=lambda seed: flat.init(seed, dtype, device),
        train_loss=train_loss,
        val_loss=val_loss,
        batches=shuffled_batches(len(y_train), batch_size, device),
        data=(x_train, y_train),
        predict=flat,
        optimizer=optimizer,
        grad_clip=grad_clip,
        tangents=tangents if closed_form else None,
    )


def logistic_regression_task(
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    *,
    optimizer: Adam | None = None,
    name: str = "logistic regression",
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> InnerTask:
    """The HOZOG paper's Eq. 5: a linear model w (no bias), logistic loss l(t) = log(1 + e^-t),
    losses *summed* over examples, penalty ``exp(log_l2) |w|^2`` (hyperparameter ``log_l2``):

        L_train(w) = sum_{i in train} l(y_i <x_i, w>) + e^lambda |w|^2,
        L_val(w) = sum_{i in val} l(y_i <x_i, w>),

    with labels 0 / 1 mapped to y = -1 / +1. Full batch. ``predict`` gives the two logits
    (0, <x, w>), so that cross-entropy on them is the logistic loss and their argmax the class
    (what :func:`hpolab.problems.tuning.classification_metrics` reads). The initial w is
    ``nn.Linear(d, 1, bias=False)``'s, drawn from the seed.
    """
    device = torch.device(device)
    x_train, y_train = (t.to(device) for t in train)
    x_val, y_val = (t.to(device) for t in val)
    x_train, x_val = x_train.to(dtype), x_val.to(dtype)
    flat = FlatModel(nn.Linear(x_train.shape[1], 1, bias=False).to(device=device, dtype=dtype))
    signs_val = 2.0 * y_val.to(dtype) - 1.0

    def margins_loss(theta, x, signs):
        return F.softplus(-signs * (x @ theta)).sum()

    def train_loss(theta, batch, terms):
        x, y, _ = batch
        return margins_loss(theta, x, 2.0 * y.to(dtype) - 1.0) + torch.exp(terms["log_l2"]) * (theta**2).sum()

    def val_loss(theta):
        return margins_loss(theta, x_val, signs_val)

    def predict(theta, x):
        score = x @ theta
        return torch.stack([torch.zeros_like(score), score], dim=-1)

    return InnerTask(
        name=name,
        init=lambda seed: flat.init(seed, dtype, device),
        train_loss=train_loss,
        val_loss=val_loss,
        batches=shuffled_batches(len(y_train), None, device),
        data=(x_train, y_train),
        predict=predict,
        optimizer=optimizer,
    )
