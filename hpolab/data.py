"""Datasets for the studies: MNIST, CIFAR-10, SVHN and LIBSVM files, read from one data root.

Each loader reads from disk when the files are there and otherwise tries torchvision's download
(which works where a network exists). When neither works it raises :class:`DataNotFoundError`,
whose message says which files to put in which folder and where they come from, so an offline
machine can be set up by hand. See ``data/README.md`` for the layout of the data root.
"""

from __future__ import annotations

import os
import pickle
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from http.client import HTTPException
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
import torch
from PIL import Image
from sklearn.datasets import load_svmlight_file
from torch.utils.data import Dataset, Subset
from torchvision.datasets import CIFAR10, MNIST, SVHN, VisionDataset
from torchvision.datasets.utils import check_integrity

DOWNLOAD_TIMEOUT_S = 30.0
"""Socket timeout during a download attempt, so a network that drops packets fails instead of hanging."""

LIBSVM_URL = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/"
SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
CIFAR10_PARTIAL_DIR = "cifar10_partial"
CIFAR10_PARTIAL_FILE = "cifar10_prefix_subset.npz"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

_TORCHVISION_ERRORS = (RuntimeError, OSError, HTTPException)
_ROOT_HINT = "Or pass root=... or set $HPOLAB_DATA to a folder laid out like data/ (see data/README.md)."


class DataNotFoundError(FileNotFoundError):
    """A dataset is neither on disk nor downloadable; the message says how to provide it."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder datasets are read from, as an absolute path.

    ``root`` if given, else ``$HPOLAB_DATA`` if set, else the ``data/`` folder at the repository
    root, so notebooks, tests and scripts share one copy of each dataset.
    """
    if root is None:
        root = os.environ.get("HPOLAB_DATA") or Path(__file__).resolve().parents[1] / "data"
    return Path(root).expanduser().resolve()


def load_mnist(train: bool = True, root: str | os.PathLike | None = None, download: bool = True) -> MNIST:
    """torchvision's MNIST (60000 train or 10000 test images) from ``<root>/MNIST/raw/``.

    The four ``.gz`` files there are checked and extracted locally even with ``download=False``:
    extraction needs no network, and the ``.gz`` files are what an offline copy provides.
    """
    root = data_root(root)
    raw = root / "MNIST" / "raw"
    local = _archives_ready(raw, MNIST.resources)
    return _torchvision(partial(MNIST, str(root), train=train), download or local, _mnist_guidance(raw, local))


def load_cifar10(train: bool = True, root: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    """CIFAR-10 (50000 train or 10000 test images), or its partial copy when only that is on disk.

    Order: torchvision's full copy (``<root>/cifar-10-batches-py/``, or ``cifar-10-python.tar.gz``
    in ``<root>``, extracted without a network); else the partial copy in ``<root>/cifar10_partial/``
    as a :class:`CIFAR10Subset` (5085 train / 1017 test images, ``partial = True``); else
    torchvision's download. Full copies get ``partial = False``.
    """
    root = data_root(root)
    full = _full_cifar10(root, train)
    local = full is None and _archives_ready(root, [(CIFAR10.filename, CIFAR10.tgz_md5)])
    subset = root / CIFAR10_PARTIAL_DIR
    if full is None and not local and (subset / CIFAR10_PARTIAL_FILE).is_file():
        return CIFAR10Subset(subset, train=train)
    if full is None:
        full = _torchvision(partial(CIFAR10, str(root), train=train), download or local, _cifar10_guidance(root))
    full.partial = False
    return full


def cifar10_copy(root: str | os.PathLike | None = None) -> str:
    """Which CIFAR-10 copy :func:`load_cifar10` reads: ``"full"`` (50000 / 10000 images) or
    ``"partial"`` (5085 / 1017); a study records it next to its results."""
    return "partial" if getattr(load_cifar10(True, root=root, download=False), "partial", False) else "full"


def full_cifar10_needed(why: str, root: str | os.PathLike | None = None) -> DataNotFoundError:
    """The error for work that needs all 50000 CIFAR-10 training images (``why`` says which)
    when only the partial copy is on disk: it says where to put the full set."""
    return DataNotFoundError(
        f"{why} needs the full CIFAR-10 (50000 training images); only the partial copy (5085) is in "
        f"{data_root(root) / CIFAR10_PARTIAL_DIR}. Put cifar-10-python.tar.gz (from "
        f"https://www.cs.toronto.edu/~kriz/cifar.html) in {data_root(root)}, see data/README.md.")


def require_full_cifar10(why: str, root: str | os.PathLike | None = None) -> None:
    """Refuse the partial CIFAR-10 copy for work that needs the full set."""
    if cifar10_copy(root) == "partial":
        raise full_cifar10_needed(why, root)


def load_svhn(split: str = "train", root: str | os.PathLike | None = None, download: bool = True) -> SVHN:
    """torchvision's SVHN split (``train``, ``test`` or ``extra``) from ``<root>/SVHN/``."""
    if split not in SVHN.split_list:
        raise ValueError(f"split must be one of {sorted(SVHN.split_list)}, got {split!r}")
    folder = data_root(root) / "SVHN"
    url, filename, _ = SVHN.split_list[split]
    guidance = f"SVHN {split} split not found. Put {filename} in {folder} (from {url}, see {SVHN_URL}). {_ROOT_HINT}"
    return _torchvision(partial(SVHN, str(folder), split=split), download, guidance)


def load_libsvm(
    name: str, root: str | os.PathLike | None = None, n_features: int | None = None
) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
    """A LIBSVM file ``<root>/libsvm/<name>`` (or ``<name>.bz2``) as ``(X, y)``.

    ``X`` is a float64 CSR matrix. Binary labels (``{1, 2}``, ``{2, 4}``, ``{0, 1}``, ...) become
    float64 ``-1``/``+1``, the smaller label mapping to ``-1``; more than two integer labels (e.g.
    news20) are returned unchanged as int64, anything else unchanged as float64. ``n_features``
    fixes the column count where a test file lacks the last features (``a9a.t`` needs 123).
    """
    folder = data_root(root) / "libsvm"
    path = next((p for p in (folder / name, folder / f"{name}.bz2") if p.is_file()), None)
    if path is None:
        raise DataNotFoundError(
            f"LIBSVM dataset {name!r} not found. Put {name} (or {name}.bz2) in {folder} "
            f"(from {LIBSVM_URL}). {_ROOT_HINT}"
        )
    X, y = load_svmlight_file(str(path), n_features=n_features, dtype=np.float64)
    return X.tocsr(), _libsvm_labels(y)


def as_tensors(
    dataset: Any, limit: int | None = None, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` images (all if None) as ``(X, y)``: X in [0, 1], shape (N, C, H, W); y int64.

    Works on the whole array at once (no per-item loop, transforms are not applied) for MNIST,
    CIFAR-10, :class:`CIFAR10Subset`, SVHN and ``torch.utils.data.Subset`` of them. Pixels move to
    ``device`` as uint8 and are converted there, which moves 4x fewer bytes than float32.
    """
    images, labels = _image_arrays(dataset)
    x = torch.as_tensor(images[:limit]).to(device)
    x = x.unsqueeze(1) if x.ndim == 3 else _channels_first(x)
    y = torch.as_tensor(np.asarray(labels[:limit]), dtype=torch.int64, device=device)
    return x.contiguous().to(dtype).div_(255), y


class CIFAR10Subset(VisionDataset):
    """The partial CIFAR-10 copy: the first 1017 images of each training batch and of the test batch.

    Behaves like torchvision's CIFAR10 (``data`` uint8 N x 32 x 32 x 3, ``targets`` list of int,
    ``classes``, transforms, items as ``(PIL image, label)``), so code written for one runs on the
    other. ``indices`` gives each image's position in the full set; ``partial`` is always True.
    """

    partial = True

    def __init__(
        self,
        folder: str | os.PathLike,
        train: bool = True,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
    ) -> None:
        super().__init__(str(folder), transform=transform, target_transform=target_transform)
        split = "train" if train else "test"
        with np.load(Path(folder) / CIFAR10_PARTIAL_FILE) as arrays:
            self.data = arrays[f"x_{split}"]
            self.targets = [int(t) for t in arrays[f"y_{split}"]]
            self.indices = arrays[f"idx_{split}"]
        self.train = train
        self.classes = _cifar10_classes(Path(folder) / "batches.meta")
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, target = Image.fromarray(self.data[index]), self.targets[index]
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __len__(self) -> int:
        return len(self.data)

    def extra_repr(self) -> str:
        return f"Split: {'Train' if self.train else 'Test'} (partial copy)"


def _torchvision(make: Callable[..., Any], download: bool, guidance: str) -> Any:
    """``make(download=download)``, turning torchvision's 'not found' and download failures into DataNotFoundError."""
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            return make(download=download)
    except _TORCHVISION_ERRORS as err:
        cause = f"{type(err).__name__}: {' '.join(str(err).split())}"
        raise DataNotFoundError(f"{guidance}\n(download={download}; torchvision said {cause})") from err


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Give sockets a default timeout (when they have none) for the duration of the block."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(previous if previous is not None else seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _archives_ready(folder: Path, resources: list[tuple[str, str]]) -> bool:
    """Whether every ``(file name, md5)`` is in ``folder`` intact, so torchvision's download only extracts."""
    return all(check_integrity(str(folder / name), md5) for name, md5 in resources)


def _mnist_guidance(raw: Path, local: bool) -> str:
    if local:
        return (
            f"MNIST's .gz files are in {raw} but could not be extracted there (torchvision writes the "
            f"extracted files next to them). Copy {raw.parent} to a writable data root. {_ROOT_HINT}"
        )
    names = ", ".join(name for name, _ in MNIST.resources)
    return (
        f"MNIST not found. Put {names} in {raw} "
        f"(from {MNIST.mirrors[0]}, a mirror of http://yann.lecun.com/exdb/mnist/). {_ROOT_HINT}"
    )


def _full_cifar10(root: Path, train: bool) -> CIFAR10 | None:
    """torchvision's CIFAR10 when ``<root>/cifar-10-batches-py/`` holds a complete copy, else None."""
    if not (root / CIFAR10.base_folder).is_dir():
        return None
    try:
        return CIFAR10(str(root), train=train, download=False)
    except RuntimeError:
        return None


def _cifar10_guidance(root: Path) -> str:
    batches = ", ".join(name for name, _ in CIFAR10.train_list + CIFAR10.test_list)
    return (
        f"CIFAR-10 not found. Either put {CIFAR10.filename} (from {CIFAR10.url}) in {root}, or its extracted "
        f"folder {CIFAR10.base_folder}/ ({batches}, batches.meta) in {root}; or, for the partial copy "
        f"(5085 train / 1017 test images), put {CIFAR10_PARTIAL_FILE} and batches.meta in "
        f"{root / CIFAR10_PARTIAL_DIR}. {_ROOT_HINT}"
    )


def _cifar10_classes(meta: Path) -> list[str]:
    """The class names from CIFAR-10's ``batches.meta``, or the standard ten when it is missing."""
    if not meta.is_file():
        return list(CIFAR10_CLASSES)
    with open(meta, "rb") as file:
        return list(pickle.load(file, encoding="latin1")["label_names"])


def _libsvm_labels(y: np.ndarray) -> np.ndarray:
    """Two labels as -1/+1 (smaller first), integer multiclass labels as int64, others unchanged."""
    labels = np.unique(y)
    if len(labels) == 2:
        return np.where(y == labels[1], 1.0, -1.0)
    if np.array_equal(labels, np.round(labels)):
        return y.astype(np.int64)
    return y


def _image_arrays(dataset: Any) -> tuple[Any, Any]:
    """A dataset's uint8 image array and its labels (``targets``, or ``labels`` for SVHN)."""
    if isinstance(dataset, Subset):
        images, labels = _image_arrays(dataset.dataset)
        index = torch.as_tensor(dataset.indices, dtype=torch.int64)
        return torch.as_tensor(images)[index], torch.as_tensor(np.asarray(labels))[index]
    images = getattr(dataset, "data", None)
    labels = getattr(dataset, "targets", getattr(dataset, "labels", None))
    if images is None or labels is None:
        raise TypeError(f"as_tensors needs .data and .targets (or .labels), got a {type(dataset).__name__}")
    return images, labels


def _channels_first(x: torch.Tensor) -> torch.Tensor:
    """N x C x H x W from N x H x W x C (CIFAR-10); N x C x H x W input (SVHN) is returned as is."""
    is_channels_last = x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4)
    return x.permute(0, 3, 1, 2) if is_channels_last else x
