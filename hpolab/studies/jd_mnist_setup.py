"""Study 02's setup: the settings (scales, the step and box guards, JD's radii, the claims'
thresholds), the MNIST rows and monitor sample, the fixed-hyperparameter references, and the
(method, problem) of one run (:func:`configure`).

What every run of the study shares: the study loop (:mod:`hpolab.studies.jd_mnist`), the
widget panel, the guard check and the claims all build on it, so it sits in a module of its
own that imports none of them.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple, Sequence

import torch

from hpolab import devices
from hpolab.data import as_tensors, load_mnist
from hpolab.methods import joint_descent
from hpolab.methods.joint_descent import RADII  # r, R: JD's defaults, study 01's pick
from hpolab.problems.mlp import (
    MinibatchStream,
    activation_mlp,
    on_minibatches,
)
from hpolab.protocol import Method
from hpolab.studies.common import check_scale
from hpolab.validation import check_choice, check_count, check_positive


DEFAULTS = {  # per scale: iterations per run, training images (None: all 60 000), monitor sample, seeds
    "smoke": {"iterations": 60, "train": 2000, "monitor": 500, "seeds": 1},
    "cpu": {"iterations": 3000, "train": None, "monitor": 2000, "seeds": 2},
    "paper": {"iterations": 3000, "train": None, "monitor": None, "seeds": 5},
}
REFERENCES = {"relu": (0.0, 0.0), "linear": (1.0, 0.0)}  # (alpha, b) of the fixed networks
REFERENCE_LABELS = {"relu": "ReLU (fixed)", "linear": "linear (fixed)"}
NOTEBOOK = "02_jd_mnist_activation"
LR = 0.1  # a guard: the printed 1 / beta (~0.7) diverges, see the module docstring
BATCH_SIZE = 128
BOX = ((0.0, 1.0), (0.0, 1.0), (0.0, 1.0))  # a guard: see the module docstring
MONITOR_SEED = 12345  # which training images the accuracy is measured on (the same for every run)
ALPHA_NEAR_ZERO = 0.1  # "close to 0" for the ReLU slope
ACCURACY = 0.95  # "~96 %": within a point
MATCH = 0.01  # "matching" the ReLU network: within a point
ETA_DROP = 0.9  # "reduces the learning rate": the last third's mean at most 90 % of the middle third's
CLAIM_P = 0.5  # the claims read JD at p = 0.5 (section 4.2 does not give p; the paper's choice elsewhere)
CHANCE = 0.2  # training accuracy at or below this after the first tenth of a run: collapsed
GUARD_LRS = (0.8, 0.4, 0.2)  # the larger steps guard_check tries (with the box)
CPU_THREADS = 1


def study_threads(device: torch.device, threads: int = CPU_THREADS):
    """Run the block with ``threads`` torch threads when on the CPU (restored afterwards)."""
    return devices.cpu_threads(threads if device.type == "cpu" else None)


class FixedState(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor
    kind: str


def fixed_hyperparameters(reference: str) -> Method:
    """The reference: every iteration a gradient step ``x -= grad_x f / beta_x``, y never
    changes (JD's gradient step without its gradientless ones)."""
    check_choice("reference", reference, REFERENCES)

    def init(x0, y0, oracle, generator):
        return FixedState(x0, y0, "start")

    def update(state, oracle, generator):
        _, grad = oracle.value_and_grad_x(state.x, state.y)
        return FixedState(state.x - grad / oracle.problem.beta_x, state.y, "gradient")

    return Method("fixed", init, update, {"reference": reference}, REFERENCE_LABELS[reference])


@functools.lru_cache(maxsize=2)
def mnist_rows(n_train: int | None, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n_train`` MNIST training images (all if None) as rows of 784 pixels in [0, 1]."""
    images, labels = as_tensors(load_mnist(train=True), limit=n_train, device=device)
    return images.reshape(len(labels), -1), labels


def monitor_sample(images: torch.Tensor, labels: torch.Tensor, size: int | None):
    """A fixed random sample of ``size`` training images (all of them if None or larger)."""
    if size is None or size >= len(labels):
        return images, labels
    index = torch.randperm(len(labels), generator=torch.Generator().manual_seed(MONITOR_SEED))[:size]
    index = index.to(labels.device)
    return images[index], labels[index]


class Setup(NamedTuple):
    """What every run of a study shares."""

    images: torch.Tensor
    labels: torch.Tensor
    monitor: tuple[torch.Tensor, torch.Tensor]
    lr: float
    eta0: float
    batch_size: int
    box: tuple | None


def make_setup(scale: str, device: torch.device, lr: float = LR, eta0: float | None = None,
               batch_size: int = BATCH_SIZE, box: Sequence | None = BOX, monitor: int | None = None) -> Setup:
    check_scale(scale)
    check_positive("lr", lr)
    eta0 = lr if eta0 is None else eta0
    if not (isinstance(eta0, (int, float)) and math.isfinite(eta0) and eta0 >= 0):
        raise ValueError(f"eta0 must be a finite number >= 0, got {eta0!r}")
    check_count("batch_size", batch_size, minimum=1)
    images, labels = mnist_rows(DEFAULTS[scale]["train"], device)
    size = DEFAULTS[scale]["monitor"] if monitor is None else check_count("monitor", monitor, minimum=1)
    box = tuple(tuple(float(v) for v in pair) for pair in box) if box else None
    return Setup(images, labels, monitor_sample(images, labels, size), lr, float(eta0), batch_size, box)


def configure(setup: Setup, method: str, p: float = 0.5, r: float = RADII[0], R: float = RADII[1]):
    """(method, problem) of one run: ``"jd"`` (with p, r, R) or a reference (``"relu"``,
    ``"linear"``), each on its own minibatch stream."""
    check_choice("method", method, ("jd", *REFERENCES))
    stream = MinibatchStream(setup.images, setup.labels, setup.batch_size)
    if method == "jd":
        y0 = (setup.eta0, 1.0, 0.0)
        built = joint_descent(p=p, r=r, R=R)
    else:
        y0 = (setup.eta0, *REFERENCES[method])
        built = fixed_hyperparameters(method)
    box = setup.box if method == "jd" else None
    problem = activation_mlp(stream, setup.monitor, lr=setup.lr, y0=y0, box=box)
    return on_minibatches(built, stream), problem
