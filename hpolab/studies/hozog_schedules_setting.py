"""Study 04's setting: the paper's networks with their Table 2 settings (:class:`Network`), the
sizes per scale (:class:`Scale`), the CIFAR-10 split and the task (one learning rate per epoch
of plain SGD), and when HOZOG's trainings are batched. Kept apart from the run
(:mod:`hpolab.studies.hozog_schedules`) so that the run and the widget panel build the same
problem from one definition without importing each other.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from hpolab.data import load_cifar10
from hpolab.hypergrad import classification_task, schedule
from hpolab.models import cifar_resnet152, cifar_vgg16, two_layer_cnn
from hpolab.seeding import global_seed
from hpolab.splits import image_split
from hpolab.studies.common import check_scale
from hpolab.validation import check_choice, check_count, check_positive


class Network(NamedTuple):
    """A network of the paper's Figure 2 and its HOZOG settings (Table 2)."""

    epochs: int  # inner epochs = learning rates = hyperparameters
    q: int
    mu: float
    gamma: float


PAPER_NETWORKS = {
    "cnn": Network(100, 1, 1.0, 1.0),  # gamma illegible in Table 2: the value of the two other networks
    "vgg16": Network(20, 3, 1.0, 1.0),
    "resnet152": Network(10, 3, 1.0, 1.0),
}


class Scale(NamedTuple):
    n_train: int
    n_val: int
    n_test: int
    batch: int
    meta_iterations: int  # HOZOG's; the black-box methods get the wall time they took
    cnn_width: int  # channels of the CNN's convolutions (64 in the paper's layout)
    epochs: int | None  # every network's epochs at this scale (None: the paper's, per network)
    gradient_points: int  # Eq. 3 evaluations along each black-box run, for |grad f|^2


SCHEDULE_SCALES = {
    "smoke": Scale(128, 128, 128, 64, 2, 4, 2, 1),
    "cpu": Scale(1024, 1000, 1017, 256, 20, 8, 5, 2),
    "paper": Scale(45_000, 5_000, 10_000, 256, 50, 64, None, 10),
}
DEFAULT_NETWORKS = {"smoke": ("cnn",), "cpu": ("cnn",), "paper": ("cnn", "vgg16", "resnet152")}
SCHEDULE_METHODS = ("hozog", "random-search", "bayesian", "bohb")
BASELINES = ("random-search", "bayesian", "bohb")
SCHEDULE_BOX = (0.0, 0.5)  # each epoch's learning rate: not given by the paper (see the docs)
INITIAL_LR = 0.05  # lambda_0 of HOZOG, every epoch: not given by the paper


def network_settings(network: str, scale: str) -> Network:
    """The network's Table 2 settings at ``scale``: its epochs (the scale's, if it fixes them)
    and mu scaled to keep the paper's perturbation of each learning rate (mu / sqrt(epochs))."""
    check_choice("network", network, PAPER_NETWORKS)
    paper = PAPER_NETWORKS[network]
    epochs = SCHEDULE_SCALES[check_scale(scale)].epochs or paper.epochs
    return paper._replace(epochs=epochs, mu=paper.mu * math.sqrt(epochs / paper.epochs))


def hozog_settings(network: str, scale: str, q: int | None = None, mu: float | None = None,
                   gamma: float | None = None) -> Network:
    """HOZOG's (epochs, q, mu, gamma) for ``network``: the scale's Table 2 values, each replaced by
    the one given (checked: q >= 1, mu > 0, gamma > 0)."""
    table = network_settings(network, scale)
    return Network(table.epochs, table.q if q is None else check_count("q", q, 1),
                   table.mu if mu is None else check_positive("mu", mu),
                   table.gamma if gamma is None else check_positive("gamma", gamma))


def build_network(network: str, scale: str) -> nn.Module:
    check_choice("network", network, PAPER_NETWORKS)
    if network == "cnn":
        return two_layer_cnn(width=SCHEDULE_SCALES[check_scale(scale)].cnn_width)
    return cifar_vgg16() if network == "vgg16" else cifar_resnet152()


def cifar_split(n_train: int, n_val: int, n_test: int, device="cpu"):
    """``(train, val, test)``: the first ``n_train + n_val`` CIFAR-10 training images split in
    two, the first ``n_test`` test images, normalized per channel with the training statistics."""
    split = image_split(load_cifar10(True, download=False), load_cifar10(False, download=False), n_train, n_val,
                        n_test, device, "CIFAR-10")
    return split.train, split.val, split.test


def schedule_setting(scale: str, network: str = "cnn", device="cpu", lr: float = INITIAL_LR, split=None):
    """(task, hyperparameters, test): ``network`` trained by plain SGD with the scale's batch
    (256, the paper's) for the network's epochs, one learning rate per epoch (a window of one
    epoch's steps); :class:`~hpolab.hypergrad.task.FlatModel` re-initializes the weights from
    each training's seed."""
    sizes = SCHEDULE_SCALES[check_scale(scale)]
    train, val, test = split or cifar_split(sizes.n_train, sizes.n_val, sizes.n_test, device)
    with global_seed(0):  # the template's weights; every training draws its own from its seed
        module = build_network(network, scale)
    task = classification_task(module, train, val, batch_size=sizes.batch, device=device,
                               name=network)
    steps_per_epoch = sizes.n_train // sizes.batch
    epochs = network_settings(network, scale).epochs
    hyper = schedule(epochs * steps_per_epoch, lr=lr, windows={"lr": steps_per_epoch}, dtype=torch.float32)
    return task, hyper, test


def batch_hozog_runs(batched: str, device: torch.device) -> bool:
    """Whether HOZOG's q + 1 trainings run as one ``vmap``: ``auto`` batches on accelerators
    only. On a CPU, ``vmap`` over convolutions is slower than a loop (study 04 at cpu scale, q = 3:
    64 s batched against 34 s one by one)."""
    check_choice("batched", batched, ("auto", "yes", "no"))
    return device.type != "cpu" if batched == "auto" else batched == "yes"
