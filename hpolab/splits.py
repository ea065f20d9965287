"""Data sets prepared for the studies: one split type, and each family's preparation once.

A :class:`Split` holds train, validation and test tensors. The loaders of :mod:`hpolab.data`
read the files; the functions here decide which examples go where and how they are scaled:

- :func:`libsvm_split`: a LIBSVM set, dense, split 2:1:1 by a seeded permutation (the HOZOG
  logistic-regression study, the estimator atlas);
- :func:`libsvm_train_test`: a LIBSVM set, dense, as a training and a test part with no
  validation part: a9a with its own test file, other sets split 3:1 (the local SGD study);
- :func:`mnist_split`: flattened MNIST, train and validation drawn from MNIST's training set
  (or its first images), standardized by the training pixels (the STN and local SGD studies);
- :func:`image_split`: images (MNIST, SVHN, CIFAR-10) kept as images, the first ones of the
  training set split in two, normalized per channel by the training images (the FDS studies,
  the HOZOG CNN study; the HD studies with no validation part).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from hpolab.data import as_tensors, full_cifar10_needed, load_libsvm, load_mnist

NEWS20_POSITIVE = (2, 3, 4, 5, 6, 12, 13, 14, 15)  # comp.* and sci.* against the other groups


@dataclass(frozen=True)
class Split:
    """Train, validation and test tensors (inputs, labels); ``name`` says which data set;
    ``examples``: how many the whole data set has (0: not said), when these are a subset."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    name: str = ""
    examples: int = 0


def libsvm_split(name: str, limit: int | None = None, max_features: int | None = None,
                 seed: int = 0, dtype=torch.float64, device="cpu") -> Split:
    """A LIBSVM set, dense, split 2:1:1 by a seeded permutation (``limit``: the first examples of
    it), labels 0 / 1.

    news20 (multiclass raw counts) becomes binary (comp.* and sci.* against the rest), keeps
    its ``max_features`` most frequent words, and is scaled as log(1 + count) with unit-norm
    rows; the other sets are used as they are.
    """
    x, y = load_libsvm(name)
    if name == "news20":
        y = np.where(np.isin(y, NEWS20_POSITIVE), 1.0, -1.0)
    if max_features is not None and x.shape[1] > max_features:
        counts = np.asarray((x != 0).sum(axis=0)).ravel()
        x = x[:, np.sort(np.argsort(-counts, kind="stable")[:max_features])]
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    if limit is not None:
        order = order[:limit]
    dense = torch.tensor(x[order.numpy()].toarray(), dtype=dtype)
    if name == "news20":
        dense = torch.log1p(dense)
        dense = dense / dense.norm(dim=1, keepdim=True).clamp_min(1e-12)
    labels = torch.tensor((y[order.numpy()] > 0).astype(np.int64))
    n = len(order)
    cut1, cut2 = n // 2, (3 * n) // 4
    parts = [slice(0, cut1), slice(cut1, cut2), slice(cut2, n)]
    train, val, test = ((dense[p].to(device), labels[p].to(device)) for p in parts)
    return Split(train, val, test, name=name, examples=len(y))


def libsvm_train_test(name: str, n_train: int | None = None, n_test: int | None = None, device="cpu") -> Split:
    """A LIBSVM set, dense in float64 with labels 0 / 1, as a training and a test part (the
    validation part is empty): a9a with its own test file ``a9a.t``, any other set split 3:1 by
    a fixed permutation (seed 0). ``n_train`` and ``n_test`` keep the first examples of each
    part (None: all)."""
    x, y = _dense_libsvm(name)
    if name == "a9a":
        xt, yt = _dense_libsvm("a9a.t", n_features=x.shape[1])
    else:
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
        cut = (3 * len(y)) // 4
        (x, y), (xt, yt) = (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])
    train = (x[:n_train].to(device), y[:n_train].to(device))
    return Split(train, (train[0][:0], train[1][:0]), (xt[:n_test].to(device), yt[:n_test].to(device)), name=name,
                 examples=len(y) + len(yt))


def _dense_libsvm(name: str, n_features: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_libsvm(name, n_features=n_features)
    return torch.tensor(x.toarray(), dtype=torch.float64), torch.tensor((y > 0).astype(np.int64))


@functools.lru_cache(maxsize=4)
def mnist_split(n_train: int | None, n_val: int, n_test: int | None, seed: int | None = 0,
                device: str = "cpu") -> Split:
    """``n_train`` + ``n_val`` images drawn without overlap from MNIST's training set by a seeded
    permutation (``seed=None``: the first ones, in the file's order; ``n_train=None``: all of the
    rest), the first ``n_test`` test images (None: all), flattened; pixels standardized by the
    training images' one mean and standard deviation."""
    x, y = as_tensors(load_mnist(train=True))
    x_test, y_test = as_tensors(load_mnist(train=False), limit=n_test)
    n_train = len(y) - n_val if n_train is None else n_train
    if seed is None:
        order = torch.arange(len(y))
    else:
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    train_idx, val_idx = order[:n_train], order[n_train:n_train + n_val]
    x, x_test = x.reshape(len(x), -1), x_test.reshape(len(x_test), -1)
    mean, std = x[train_idx].mean(), x[train_idx].std()

    def part(images, labels):
        return ((images - mean) / std).to(device), labels.to(device)

    return Split(part(x[train_idx], y[train_idx]), part(x[val_idx], y[val_idx]), part(x_test, y_test), name="mnist")


def image_split(train_set, test_set, n_train: int, n_val: int, n_test: int | None, device="cpu",
                name: str = "") -> Split:
    """The first ``n_train + n_val`` images of ``train_set`` split in two (train, validation) and
    the first ``n_test`` of ``test_set`` (None: all), channels first, normalized per channel with
    the training images' mean and standard deviation. A partial CIFAR-10 copy too short for the
    split raises the error that says where the full set goes."""
    x, y = as_tensors(train_set, limit=n_train + n_val, device=device)
    if len(y) < n_train + n_val:
        if getattr(train_set, "partial", False):
            raise full_cifar10_needed(f"{n_train} training + {n_val} validation images")
        raise ValueError(f"n_train + n_val = {n_train + n_val} exceeds the {len(y)} training images of {name}")
    x_test, y_test = as_tensors(test_set, limit=n_test, device=device)
    mean, std = x[:n_train].mean(dim=(0, 2, 3), keepdim=True), x[:n_train].std(dim=(0, 2, 3), keepdim=True)
    x, x_test = (x - mean) / std, (x_test - mean) / std
    return Split((x[:n_train], y[:n_train]), (x[n_train:], y[n_train:]), (x_test, y_test), name=name)
