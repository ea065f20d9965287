"""What the FDS studies (notebooks 08 to 11) share: image tasks, the choice of exact
estimator, the start check and the HD baseline; the resumable outer loop of non-greedy
hyperparameter learning is the library's (:mod:`hpolab.methods.fds`).

FDS (Micaelli & Storkey, "Gradient-based hyperparameter optimization over long horizons")
learns the hyperparameters of SGD with momentum and weight decay by exact, non-greedy
hypergradients of the final validation loss, shares each learned value over W contiguous
steps, re-initializes the weights and reshuffles the data at every outer step, and moves each
hyperparameter by a fixed step gamma against the sign of its hypergradient, halving gamma
whenever that sign flips (:func:`hpolab.hypergrad.sign_descent`; section 5.4).

Where the paper's text is silent, the settings come from the authors' published code
(github.com/polo5/FDS), and each study says which: the networks start from Xavier-normal
weights with zero biases (:func:`xavier_initialization`, ``init_type='xavier'`` there), every
coordinate of the inner training gradient is clamped before the SGD update
(:data:`GRAD_CLIP_FIGURE2`, :data:`GRAD_CLIP`; ``InnerTask.grad_clip``), and the outer loop may
stop once every step has shrunk below 5 % of its value (``converged_frac``, :func:`converged`).
"""

from __future__ import annotations

import math
import types

import pandas as pd
import torch
from torch import nn

from hpolab.data import DataNotFoundError, load_cifar10, load_mnist, load_svhn
from hpolab.history import History
from hpolab.recorder import Recorder
from hpolab.hypergrad import Hyperparameters, InnerTask, classification_task, forward_mode, greedy, reverse_mode, train
from hpolab.hypergrad.outer import per_entry
from hpolab.hypergrad.result import Estimator
from hpolab.methods.fds import trains
from hpolab.models import lenet, wide_resnet
from hpolab.optim import SGDHD
from hpolab.problems.tuning import classification_metrics
from hpolab.splits import image_split
from hpolab.validation import check_choice

DATASETS = ("mnist", "svhn", "cifar10")
ESTIMATOR_CHOICES = ("auto", "forward", "reverse")
INITS = ("xavier", "default")
# HD (Baydin et al., the paper's [14]) adapts the learning rate only; the paper does not say
# which momentum and weight decay its HD ran with, so it is given the usual WRN values
# (Zagoruyko & Komodakis), not 0: a choice that can only help HD against FDS.
HD_MOMENTUM, HD_WEIGHT_DECAY = 0.9, 5e-4
HD_HYPERGRAD_LRS = (1e-4, 1e-3, 1e-2)  # HD's own rate, picked by best_hd_run
GAMMA_FACTORS = (1.0, 1 / 3, 1 / 10)  # the start check's candidates: gamma, gamma / 3, gamma / 10
# The authors' code clamps every coordinate of the inner training gradient to [-c, c] before the
# SGD update (weight decay is added after the clamp); the paper's text does not mention it.
# c = 1 in the script for Figure 2 (figure2_hypergradients_fluctuation.py: clamp_inner_grads
# True, clamp_inner_grads_range 1), c = 3 in main.py, which runs every other experiment
# (clamp_grads True, clamp_grads_range 3: its default and the value of scripts/paper_figure1.sh
# and scripts/paper_figure4.sh). The authors' retraining from scratch (BaseLearner, plain
# torch.optim.SGD) does not clamp; here every training of a study's task clamps (see the docs).
GRAD_CLIP_FIGURE2 = 1.0  # study 08
GRAD_CLIP = 3.0  # studies 09, 10, 11


def image_data(dataset: str, n_train: int, n_val: int, n_test: int | None, device) -> tuple[dict, str]:
    """``({"train", "val", "test"}, note)``: the first ``n_train + n_val`` training images split
    in two, the first ``n_test`` test images, normalized per channel with the training statistics.

    SVHN is used when its files are in the data folder; otherwise MNIST is, and ``note`` says so
    and where SVHN's files go (``""`` when the dataset asked for is the one used).
    """
    check_choice("dataset", dataset, DATASETS)
    note = ""
    if dataset == "svhn":
        try:
            train_set, test_set = load_svhn("train", download=False), load_svhn("test", download=False)
        except DataNotFoundError as error:
            note = f"SVHN is not in the data folder, so this run uses MNIST instead. {error}"
            dataset = "mnist"
    if dataset == "mnist":
        train_set, test_set = load_mnist(True, download=False), load_mnist(False, download=False)
    elif dataset == "cifar10":
        train_set, test_set = load_cifar10(True, download=False), load_cifar10(False, download=False)
    split = image_split(train_set, test_set, n_train, n_val, n_test, device, dataset)
    return {"train": split.train, "val": split.val, "test": split.test}, note


def _xavier_reset(layer: nn.Module) -> None:
    nn.init.xavier_normal_(layer.weight, gain=1.0)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def xavier_initialization(module: nn.Module) -> nn.Module:
    """``module`` with every convolution and linear layer re-initialized, at each seed, from
    Xavier-normal weights (gain 1) and zero biases, as the authors' code does for all the
    paper's experiments (``init_type='xavier'``, ``init_param=1``); normalization layers keep
    weight 1 and bias 0. The layers' ``reset_parameters`` is replaced, so that
    :meth:`hpolab.hypergrad.task.FlatModel.init` draws this initialization at every seed."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            layer.reset_parameters = types.MethodType(_xavier_reset, layer)
            layer.reset_parameters()
    return module


def image_task(split: dict, model: str = "lenet", batch_size: int = 128, device="cpu", name: str = "",
               dtype: torch.dtype = torch.float32, init: str = "xavier", grad_clip: float | None = None) -> InnerTask:
    """Cross-entropy training of LeNet (``"lenet"``) or a WRN (``"wrn-16-1"``, ``"wrn-10-1"``)
    on ``split["train"]``, validated on ``split["val"]``; weights drawn by ``init``
    (``"xavier"``: :func:`xavier_initialization`, the authors' code; ``"default"``: PyTorch's);
    ``grad_clip``: the clamp on each coordinate of the training gradient (None: none; the
    studies pass :data:`GRAD_CLIP_FIGURE2` or :data:`GRAD_CLIP`, the authors' values)."""
    check_choice("init", init, INITS)
    x = split["train"][0]
    if model == "lenet":
        module = lenet(x.shape[1], x.shape[2])
    elif model.startswith("wrn-"):
        depth, widen = (int(part) for part in model.removeprefix("wrn-").split("-"))
        module = wide_resnet(depth, widen, in_channels=x.shape[1])
    else:
        raise ValueError(f"model must be 'lenet' or 'wrn-DEPTH-WIDEN' (e.g. 'wrn-16-1'), got {model!r}")
    if init == "xavier":
        module = xavier_initialization(module)
    return classification_task(module, split["train"], split["val"], batch_size, name=name or model,
                               dtype=dtype, device=device, grad_clip=grad_clip)


def exact_estimator(name: str, device: torch.device) -> tuple[Estimator, str]:
    """The non-greedy estimator: ``forward`` (FDS's forward mode, memory O(D N) whatever T) or
    ``reverse`` (backpropagation through the run, memory O(T)). Both give the same exact
    hypergradient (tests/test_hypergrad.py). ``auto`` takes forward mode on accelerators and
    reverse mode on a CPU, where it was 3.4x (LeNet, T = 140, N = 9) and 2.4x (WRN-10-1, T = 10,
    N = 7) faster here, and 1.2x faster even at N = 1 (benchmarks/fds_estimators.py): forward
    mode's cost grows with the N learned values, reverse mode's does not."""
    check_choice("estimator", name, ESTIMATOR_CHOICES)
    if name == "auto":
        name = "reverse" if device.type == "cpu" else "forward"
    return (forward_mode() if name == "forward" else reverse_mode()), name


def outer_estimator(kind: str, device: torch.device, estimator: str = "auto") -> tuple[Estimator, str]:
    """``"greedy"`` (H = 1, hypergradient descent's horizon) or a non-greedy exact estimator."""
    if kind == "greedy":
        return greedy(1), "greedy"
    return exact_estimator(estimator, device)


def start_check(task: InnerTask, hyper: Hyperparameters, gamma, factors=GAMMA_FACTORS,
                seed: int = 0) -> tuple[float, pd.DataFrame]:
    """The largest ``factor`` for which two sign steps up from 0 still train: every learned
    value at 2 x factor x gamma (where the first two outer steps take them when the
    hypergradients keep their sign, as they do from 0 here) must bring the validation loss
    below :data:`START_PROGRESS` of the untrained network's (seed ``seed``).

    Why: a sign step that lands where the network no longer trains (a dead or diverged
    network, whose hypergradient is zero or undefined) is never undone, because the sign
    cannot flip there. The paper gives gamma only for its CIFAR-10 runs (the authors'
    scripts); for its LeNet runs and for the stand-ins, gamma is checked this way and
    scaled by 1, 1/3 or 1/10, the first that trains (the last if none). The check looks at
    one training per candidate and at no method's result. Returns the factor and one row per
    candidate tried."""
    base = per_entry(hyper, gamma, "gamma")
    untrained = float(task.val_loss(task.init(seed)))
    rows = []
    for factor in factors:
        point = hyper.with_flat(2 * factor * base)
        trained = train(task, point, seed)
        loss = math.nan if trained.diverged else float(task.val_loss(trained.theta))
        rows.append({"gamma factor": factor, "values after two steps": ", ".join(
            f"{name} {float(2 * factor * g):.3g}" for name, g in _first_per_name(hyper, base)),
            "val loss": loss, "untrained val loss": untrained, "trains": trains(loss, untrained)})
        if rows[-1]["trains"]:
            break
    chosen = next((row["gamma factor"] for row in rows if row["trains"]), factors[-1])
    return chosen, pd.DataFrame(rows)


def _first_per_name(hyper: Hyperparameters, flat: torch.Tensor):
    parts = hyper.unpack(flat)
    return [(name, parts[name].reshape(-1)[0]) for name in hyper.learn]


def test_accuracy(task: InnerTask, hyper: Hyperparameters, test: tuple[torch.Tensor, torch.Tensor],
                  seeds: list[int]) -> list[float]:
    """Test accuracy after training with ``hyper`` from each seed (NaN where training diverged)."""
    metrics = classification_metrics(task, test)
    accuracies = []
    for seed in seeds:
        trained = train(task, hyper, seed)
        accuracies.append(math.nan if trained.diverged else 1.0 - metrics(trained.theta, hyper.pack())["test_error"])
    return accuracies


def hd_training(task: InnerTask, horizon: int, hypergrad_lr: float, seed: int, test=None,
                record_every: int | None = None, callback=None, should_stop=None) -> History:
    """One training with SGD-HD (heavy-ball momentum HD_MOMENTUM, weight decay HD_WEIGHT_DECAY)
    from alpha = 0 on the task's flat weights, the same initialization and data order as FDS's
    runs with this seed. HD's gradient is not clamped (the task's ``grad_clip`` is not applied):
    the FDS authors publish no HD code, and SGD-HD (Baydin et al.) has no clamp. Rows every
    ``record_every`` steps (default: 10 per run) and at the end: validation loss, test error
    and the current learning rate."""
    theta = torch.nn.Parameter(task.init(seed).clone())
    optimizer = SGDHD([theta], lr=0.0, hypergrad_lr=hypergrad_lr, momentum=HD_MOMENTUM,
                      weight_decay=HD_WEIGHT_DECAY)
    metrics = classification_metrics(task, test) if test is not None else None
    batches = task.batches(seed, horizon)
    every = record_every or max(horizon // 10, 1)
    recorder = Recorder(callback=callback, should_stop=should_stop)
    for t in range(horizon):
        optimizer.zero_grad()
        loss = task.train_loss(theta, task.batch(batches[t]), {})
        loss.backward()
        optimizer.step()
        recorder.diverged(float(loss.detach()), f"at step {t}", "HD's training loss")
        if (t + 1) % every == 0 or t == horizon - 1 or recorder.ended:
            with torch.no_grad():
                columns = {"lr": float(optimizer.param_groups[0]["lr"]), "runs": 1}
                if metrics is not None:
                    columns.update(metrics(theta.detach(), torch.zeros(0)))
                    columns["test_accuracy"] = 1.0 - columns["test_error"]
                recorder.record(t + 1, objective=float(task.val_loss(theta.detach())), kind="inner",
                                gradient_evaluations=t + 1, **columns)
        if recorder.ended or recorder.stop_requested(f"at step {t + 1}"):
            break
    return recorder.history("hd", "HD", task.name, seed, {"hypergrad_lr": hypergrad_lr}, ["lr"])


def best_hd_run(runs: list[History]) -> History | None:
    """The HD run (one per hypergradient rate) of lowest final validation loss among those that
    finished; None when every one diverged."""
    finished = [h for h in runs if h.status == "finished"]
    return min(finished, key=lambda h: h.frame["objective"].iloc[-1]) if finished else None
