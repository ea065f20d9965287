"""hpolab.data on the real datasets: MNIST, the partial CIFAR-10 copy and LIBSVM files.

The data come from the project's data root (``data/``, or ``$HPOLAB_DATA``); tests that need
them skip when they are missing. Nothing is written there: loads that extract or fail work on
copies in pytest's temporary folders.
"""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse
import torch
from torch.utils.data import Subset
from torchvision.transforms import ToTensor

from hpolab.data import (
    CIFAR10Subset,
    DataNotFoundError,
    as_tensors,
    data_root,
    load_cifar10,
    load_libsvm,
    load_mnist,
    load_svhn,
)
from hpolab.splits import image_split, libsvm_train_test, mnist_split

MNIST_FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
SKIP_REASON = "real {} not in data/: copy ../shared/data into data/, see data/README.md"


def _require(root: Path, relative: str, what: str) -> Path:
    path = root / relative
    if not path.exists():
        pytest.skip(SKIP_REASON.format(what))
    return path


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The project's data root, holding at least the real MNIST ``.gz`` files (read only)."""
    root = data_root()
    for name in MNIST_FILES:
        _require(root, f"MNIST/raw/{name}", "MNIST")
    return root


@pytest.fixture(scope="session")
def mnist_gz(real_data, tmp_path_factory) -> Path:
    """A writable data root holding only MNIST's four ``.gz`` files, copied once (never extracted)."""
    root = tmp_path_factory.mktemp("mnist_gz")
    (root / "MNIST" / "raw").mkdir(parents=True)
    for name in MNIST_FILES:
        shutil.copy(real_data / "MNIST" / "raw" / name, root / "MNIST" / "raw" / name)
    return root


@pytest.fixture(scope="session")
def mnist_offline(mnist_gz, tmp_path_factory) -> SimpleNamespace:
    """MNIST's train set loaded once with download=False and no network from a root holding only the .gz files."""
    root = tmp_path_factory.mktemp("mnist")
    shutil.copytree(mnist_gz / "MNIST", root / "MNIST")
    with pytest.MonkeyPatch.context() as patcher:
        attempts = _refuse_network(patcher)
        train = load_mnist(train=True, root=root, download=False)
    return SimpleNamespace(root=root, train=train, attempts=attempts)


@pytest.fixture(scope="session")
def mnist_train(mnist_offline):
    return mnist_offline.train


@pytest.fixture(scope="session")
def cifar_partial(real_data, tmp_path_factory) -> Path:
    """A data root holding only the partial CIFAR-10 copy."""
    source = _require(real_data, "cifar10_partial/cifar10_prefix_subset.npz", "CIFAR-10 partial copy").parent
    root = tmp_path_factory.mktemp("cifar_partial")
    shutil.copytree(source, root / "cifar10_partial")
    return root


@pytest.fixture
def libsvm_dir(real_data) -> Path:
    return _require(real_data, "libsvm", "LIBSVM")


def _refuse_network(patcher: pytest.MonkeyPatch) -> list:
    """Make every DNS lookup and socket connection fail; returns the default socket timeout seen at each try."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(socket.getdefaulttimeout())
        raise OSError("network disabled by the test")

    patcher.setattr(socket, "getaddrinfo", refuse)
    patcher.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.fixture
def offline(monkeypatch) -> list:
    return _refuse_network(monkeypatch)


def test_data_root_prefers_argument_then_env_then_repo_data_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("HPOLAB_DATA", raising=False)
    assert data_root() == Path(__file__).resolve().parents[1] / "data"
    monkeypatch.setenv("HPOLAB_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "arg") == tmp_path / "arg"


def test_loaders_read_from_hpolab_data_when_set(monkeypatch, tmp_path, libsvm_dir):
    (tmp_path / "libsvm").mkdir()
    shutil.copy(libsvm_dir / "australian_scale", tmp_path / "libsvm")
    monkeypatch.setenv("HPOLAB_DATA", str(tmp_path))
    X, y = load_libsvm("australian_scale")
    assert X.shape == (690, 14)
    with pytest.raises(DataNotFoundError, match=re.escape(str(tmp_path / "MNIST" / "raw"))):
        load_mnist(download=False)


def test_mnist_gz_files_are_extracted_without_network(mnist_gz, tmp_path, offline):
    shutil.copytree(mnist_gz / "MNIST", tmp_path / "MNIST")
    train, test = load_mnist(train=True, root=tmp_path), load_mnist(train=False, root=tmp_path)
    assert (len(train), len(test)) == (60000, 10000)
    assert (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert offline == []


def test_mnist_download_false_still_extracts_local_gz(mnist_offline):
    assert len(mnist_offline.train) == 60000 and mnist_offline.attempts == []
    assert (mnist_offline.root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()
    assert len(load_mnist(train=False, root=mnist_offline.root, download=False)) == 10000


def test_mnist_train_matches_published_label_counts_and_mean_pixel(mnist_train):
    assert mnist_train.targets.bincount().tolist() == MNIST_TRAIN_COUNTS
    assert mnist_train.data.float().mean().item() == pytest.approx(33.318, abs=1e-3)
    X, y = as_tensors(mnist_train)
    assert X.shape == (60000, 1, 28, 28) and X.dtype == torch.float32 and y.dtype == torch.int64
    assert X.mean().item() == pytest.approx(33.318 / 255, abs=1e-5)
    assert torch.equal(y, mnist_train.targets)


def test_as_tensors_matches_torchvision_to_tensor_on_each_item(mnist_train, cifar_partial):
    for dataset in (mnist_train, load_cifar10(root=cifar_partial)):
        X, y = as_tensors(dataset, limit=5)
        assert len(X) == len(y) == 5
        for i in range(5):
            image, label = dataset[i]
            assert torch.equal(X[i], ToTensor()(image)) and y[i].item() == label


def test_as_tensors_takes_subsets_and_channels_first_svhn_layout(cifar_partial):
    cifar = load_cifar10(root=cifar_partial)
    X, y = as_tensors(cifar, limit=20)
    Xs, ys = as_tensors(Subset(cifar, [7, 3, 11]))
    assert torch.equal(Xs, X[[7, 3, 11]]) and torch.equal(ys, y[[7, 3, 11]])
    svhn_like = SimpleNamespace(data=cifar.data[:20].transpose(0, 3, 1, 2), labels=np.asarray(cifar.targets[:20]))
    Xn, yn = as_tensors(svhn_like, dtype=torch.float64)
    assert Xn.dtype == torch.float64 and torch.equal(Xn.float(), X) and torch.equal(yn, y)


def test_partial_cifar10_has_known_sizes_labels_and_classes(cifar_partial):
    train, test = load_cifar10(train=True, root=cifar_partial), load_cifar10(train=False, root=cifar_partial)
    assert isinstance(train, CIFAR10Subset) and train.partial and test.partial
    assert (len(train), len(test)) == (5085, 1017)
    assert train.targets[:10] == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert test.targets[:10] == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert train.classes[0] == "airplane" and len(train.classes) == 10
    X, y = as_tensors(test)
    assert X.shape == (1017, 3, 32, 32) and 0 <= X.min() and X.max() <= 1 and X.max() > 0.99
    assert y.dtype == torch.int64


def test_partial_cifar10_applies_transforms_like_torchvision(cifar_partial):
    dataset = CIFAR10Subset(cifar_partial / "cifar10_partial", transform=ToTensor(), target_transform=str)
    image, label = dataset[0]
    assert image.shape == (3, 32, 32) and label == "6"


@pytest.mark.parametrize(
    "load, folder, names",
    [
        (load_mnist, "MNIST/raw", [*MNIST_FILES, "https://ossci-datasets.s3.amazonaws.com/mnist/"]),
        (load_cifar10, "cifar10_partial", [CIFAR10_URL, "cifar-10-batches-py", "cifar10_prefix_subset.npz"]),
        (load_svhn, "SVHN", ["train_32x32.mat", "http://ufldl.stanford.edu/housenumbers/"]),
    ],
    ids=["mnist", "cifar10", "svhn"],
)
@pytest.mark.parametrize("download", [False, True], ids=["download_false", "download_fails"])
def test_missing_images_raise_guidance_naming_folder_and_files(load, folder, names, download, tmp_path, offline):
    timeout_before = socket.getdefaulttimeout()
    with pytest.raises(DataNotFoundError) as error:
        load(root=tmp_path, download=download)
    assert socket.getdefaulttimeout() == timeout_before
    message = str(error.value)
    assert isinstance(error.value, FileNotFoundError)
    assert str(tmp_path / folder) in message and "$HPOLAB_DATA" in message
    assert all(name in message for name in names)
    if download:
        assert offline and all(timeout is not None for timeout in offline)
    else:
        assert offline == []


def test_svhn_rejects_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_svhn("validation", root=tmp_path)


def test_a9a_has_published_shape_and_label_counts(libsvm_dir):
    X, y = load_libsvm("a9a", root=libsvm_dir.parent)
    assert scipy.sparse.isspmatrix_csr(X) and X.dtype == np.float64 and y.dtype == np.float64
    assert X.shape == (32561, 123)
    assert {-1.0: 24720, 1.0: 7841} == dict(zip(*np.unique(y, return_counts=True)))


def test_a9a_test_set_loads_with_123_features(libsvm_dir):
    X, y = load_libsvm("a9a.t", root=libsvm_dir.parent, n_features=123)
    assert X.shape == (16281, 123)


@pytest.mark.parametrize(
    "name, counts", [("mushrooms", (3916, 4208)), ("breast-cancer", (444, 239))], ids=["labels_1_2", "labels_2_4"]
)
def test_binary_labels_are_mapped_to_plus_minus_one(libsvm_dir, name, counts):
    _, y = load_libsvm(name, root=libsvm_dir.parent)
    labels, found = np.unique(y, return_counts=True)
    assert labels.tolist() == [-1.0, 1.0] and tuple(found) == counts


def test_multiclass_news20_keeps_its_integer_labels_and_reads_bz2(libsvm_dir):
    X, y = load_libsvm("news20", root=libsvm_dir.parent)
    assert X.shape == (15935, 62061) and y.dtype == np.int64
    assert np.unique(y).tolist() == list(range(1, 21))


def test_missing_libsvm_file_names_folder_file_and_libsvm_page(tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        load_libsvm("rcv1_train.binary", root=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "libsvm") in message and "rcv1_train.binary" in message
    assert "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/" in message


def test_image_split_takes_the_first_images_and_normalizes_each_channel_by_the_training_ones():
    data = np.random.default_rng(0).integers(0, 256, size=(30, 3, 4, 4), dtype=np.uint8)
    data[:, 1] //= 4  # one channel on another scale: the normalization is per channel
    labels = np.arange(30) % 10
    train_set, test_set = SimpleNamespace(data=data, labels=labels), SimpleNamespace(data=data[:7], labels=labels[:7])
    split = image_split(train_set, test_set, 20, 6, 5, name="toy")
    x = split.train[0]
    assert [part[0].shape[0] for part in (split.train, split.val, split.test)] == [20, 6, 5]
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-6)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-5)
    raw = torch.as_tensor(data).float() / 255
    mean, std = raw[:20].mean(dim=(0, 2, 3), keepdim=True), raw[:20].std(dim=(0, 2, 3), keepdim=True)
    assert torch.allclose(split.val[0], (raw[20:26] - mean) / std, atol=1e-6)
    assert split.val[1].tolist() == labels[20:26].tolist() and split.name == "toy"
    with pytest.raises(ValueError, match=r"n_train \+ n_val = 31 exceeds the 30 training images of toy"):
        image_split(train_set, test_set, 25, 6, 5, name="toy")


def test_libsvm_train_test_keeps_a9a_test_file_and_cuts_other_sets_three_to_one(libsvm_dir):
    a9a = libsvm_train_test("a9a")
    test_x, test_y = load_libsvm("a9a.t", root=libsvm_dir.parent, n_features=123)
    assert a9a.train[0].shape == (32561, 123) and a9a.train[0].dtype == torch.float64 and len(a9a.val[1]) == 0
    assert torch.equal(a9a.test[0], torch.tensor(test_x.toarray())) and a9a.test[1].tolist() == (test_y > 0).tolist()
    assert int(a9a.train[1].sum()) == 7841 and a9a.examples == 32561 + 16281
    w8a = libsvm_train_test("w8a", n_train=1000, n_test=300)
    whole = libsvm_train_test("w8a")
    assert (len(whole.train[1]), len(whole.test[1])) == (37311, 12438)  # 3:1 of w8a's 49749
    rows = torch.cat([whole.train[0], whole.test[0]])
    x, _ = load_libsvm("w8a", root=libsvm_dir.parent)
    assert torch.equal(rows.sum(0), torch.tensor(np.asarray(x.sum(0)).ravel()))  # a partition of the file's rows
    assert torch.equal(w8a.train[0], whole.train[0][:1000]) and torch.equal(w8a.test[0], whole.test[0][:300])


def test_mnist_split_in_file_order_takes_the_first_images_standardized_by_them(mnist_train):
    split = mnist_split(100, 0, 20, seed=None)
    raw, labels = as_tensors(load_mnist(train=True), limit=100)
    flat = raw.flatten(1)
    assert torch.allclose(split.train[0], (flat - flat.mean()) / flat.std(), atol=1e-6)
    assert split.train[1].tolist() == labels.tolist() and len(split.val[1]) == 0 and len(split.test[1]) == 20
    assert torch.allclose(split.train[0].mean(), torch.tensor(0.0), atol=1e-5)
