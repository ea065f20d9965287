"""What the FDS studies (notebooks 08 to 11) share: image tasks, the choice of exact
estimator, and the resumable outer loop of non-greedy hyperparameter learning.

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
import time
import types
from typing import Callable

import pandas as pd
import torch
from torch import nn

from hpolab.cache import StudyCache
from hpolab.data import DataNotFoundError, as_tensors, full_cifar10_needed, load_cifar10, load_mnist, load_svhn
from hpolab.history import COUNTERS, History
from hpolab.recorder import Recorder
from hpolab.hypergrad import Hyperparameters, InnerTask, classification_task, forward_mode, greedy, reverse_mode, train
from hpolab.hypergrad.outer import OuterUpdate, per_entry
from hpolab.hypergrad.result import Estimator
from hpolab.models import lenet, wide_resnet
from hpolab.optim import SGDHD
from hpolab.problems.tuning import classification_metrics, hyperparameter_names
from hpolab.progress import progress_bar
from hpolab.protocol import Cost
from hpolab.validation import check_choice, check_count

DATASETS = ("mnist", "svhn", "cifar10")
ESTIMATOR_CHOICES = ("auto", "forward", "reverse")
INITS = ("xavier", "default")
# HD (Baydin et al., the paper's [14]) adapts the learning rate only; the paper does not say
# which momentum and weight decay its HD ran with, so it is given the usual WRN values
# (Zagoruyko & Komodakis), not 0: a choice that can only help HD against FDS.
HD_MOMENTUM, HD_WEIGHT_DECAY = 0.9, 5e-4
HD_HYPERGRAD_LRS = (1e-4, 1e-3, 1e-2)  # HD's own rate, picked by best_hd_run
RUN_SEED_STRIDE = 100_003  # outer step k of a run with seed s trains with seed s * stride + k
GAMMA_FACTORS = (1.0, 1 / 3, 1 / 10)  # the start check's candidates: gamma, gamma / 3, gamma / 10
START_PROGRESS = 0.9  # "trains": the validation loss falls below 0.9 of the untrained network's
FAILED = ("diverged", "stalled")  # the kinds of outer-step rows whose run gives no usable hypergradient
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
    x, y = as_tensors(train_set, limit=n_train + n_val, device=device)
    if len(y) < n_train + n_val:
        if getattr(train_set, "partial", False):
            raise full_cifar10_needed(f"{n_train} training + {n_val} validation images")
        raise ValueError(f"n_train + n_val = {n_train + n_val} exceeds the {len(y)} training images of "
                         f"{dataset}")
    x_test, y_test = as_tensors(test_set, limit=n_test, device=device)
    mean = x[:n_train].mean(dim=(0, 2, 3), keepdim=True)
    std = x[:n_train].std(dim=(0, 2, 3), keepdim=True)
    x, x_test = (x - mean) / std, (x_test - mean) / std
    split = {"train": (x[:n_train], y[:n_train]), "val": (x[n_train:], y[n_train:]), "test": (x_test, y_test)}
    return split, note


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
    reverse mode on a CPU, where at these short horizons it was 1.7x (LeNet, N = 5) and 2.0x
    (WRN-10-1, N = 4) faster here (benchmarks/fds_estimators.py); forward mode's cost grows
    with the N learned values, reverse mode's does not, so the studies' larger N (7 to 10,
    200 for study 09's W = 1) favour reverse mode on a CPU further."""
    check_choice("estimator", name, ESTIMATOR_CHOICES)
    if name == "auto":
        name = "reverse" if device.type == "cpu" else "forward"
    return (forward_mode() if name == "forward" else reverse_mode()), name


def outer_estimator(kind: str, device: torch.device, estimator: str = "auto") -> tuple[Estimator, str]:
    """``"greedy"`` (H = 1, hypergradient descent's horizon) or a non-greedy exact estimator."""
    if kind == "greedy":
        return greedy(1), "greedy"
    return exact_estimator(estimator, device)


def run_seed(seed: int, step: int) -> int:
    """The inner run's seed (initialization and data order) at outer step ``step``: every outer
    step draws new ones, as FDS does, and a resumed run draws the same ones again."""
    return seed * RUN_SEED_STRIDE + step


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


def converged(state, initial_steps: torch.Tensor, frac: float) -> bool:
    """The authors' stopping rule (``converged_frac`` = 0.05 in their code): every
    hyperparameter's current step is below ``frac`` of its value. For a value near 0 the step
    is compared with its first step instead (``max(|h|, gamma_0)``), so that a value settling
    at 0 counts as converged once its step has been halved below ``frac`` of gamma_0."""
    return bool((relative_steps(state, initial_steps) < frac).all())


def relative_steps(state, initial_steps: torch.Tensor) -> torch.Tensor:
    """Each entry's current step over ``max(|h|, gamma_0)`` (see :func:`converged`)."""
    return state.step_size / torch.maximum(state.h.abs(), initial_steps)


def learn(task: InnerTask, hyper: Hyperparameters, estimator: Estimator, outer: OuterUpdate, steps: int | None, *,
          test: tuple[torch.Tensor, torch.Tensor] | None = None, cache: StudyCache | None = None,
          label: str = "FDS", seed: int = 0, max_seconds: float | None = None,
          converged_frac: float | None = None, on_diverge: str = "halve",
          callback: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
          progress: bool = True) -> History:
    """Learn ``hyper.learn`` over ``steps`` outer steps, each a full training from scratch
    (``steps=None``: as many as the time budget ``max_seconds`` allows).

    Row k of the history holds the hyperparameters h_k of run k, that run's validation loss
    (``objective``) and test error, and the cumulative cost; run k < steps also computes the
    hypergradient at h_k, and ``outer`` moves h_k to h_{k+1} (``relative_step``: the largest
    next step over its value, see :func:`converged`). The last row is a plain training at the
    final hyperparameters. With a ``cache``, every finished outer step is on disk and a re-run
    resumes after the last one; ``wall_time`` then counts compute time only.

    A training that diverges gives no hypergradient, and one that ends dead (its validation
    loss not below :data:`START_PROGRESS` of its untrained network's, after an earlier run had
    trained) gives a useless one: near zero, its sign noise, so sign steps cannot leave the dead
    region (study 09 at cpu scale: FDS stalled at ln 10 from outer step 2 on and ended at chance
    accuracy). The paper does not say what its loop does then (the authors' code clamps every
    inner gradient, as the studies' tasks do here with ``grad_clip``, which makes divergence
    rarer but does not rule it out; a NaN hypergradient has sign 0 there, so it stays put).
    With ``on_diverge="halve"`` (the default) the next run goes halfway back to the last
    hyperparameters whose run did not fail, with the step of every value that moved halved,
    as a sign flip would do (:func:`diverged_update`); the row is kept with ``kind="diverged"``
    or ``kind="stalled"`` and the loop goes on. A run at the starting hyperparameters (alpha =
    0 leaves the network untrained) is not a failure: the rule needs a run that trained
    before. A failure before any run has trained, or a divergence with ``on_diverge="stop"``,
    ends the run with status ``"diverged"``.
    ``max_seconds`` ends the run early as ``"finished"``, ``should_stop`` as ``"stopped"``;
    with ``converged_frac`` it also ends (``"finished"``, with its final training) at the
    first outer step after which :func:`converged` holds.
    """
    if steps is None and max_seconds is None:
        raise ValueError("steps may be None only with a time budget (max_seconds)")
    if steps is not None:
        check_count("steps", steps, minimum=1)
    check_choice("on_diverge", on_diverge, ("halve", "stop"))
    if converged_frac is not None and not 0 < converged_frac < 1:
        raise ValueError(f"converged_frac must be in (0, 1), got {converged_frac!r}")
    names = hyperparameter_names(hyper)
    metrics = classification_metrics(task, test) if test is not None else None
    state = outer.init(hyper.pack())
    initial_steps = state.step_size.clone()
    recorder = Recorder(callback=callback, should_stop=should_stop, max_seconds=max_seconds)
    total = steps + 1 if max_seconds is None and steps is not None else None  # a time budget: open-ended
    last, halved, anchor, k = False, [], None, 0  # anchor: the hyperparameters of the last run that did not fail
    trained_once = False  # whether some run has brought the validation loss below START_PROGRESS of its start
    with progress_bar(total=total, desc=label, disable=not progress, leave=False) as bar:
        while True:
            last = last or (steps is not None and k >= steps)
            piece = f"{label}-seed{seed}-{'final' if last else 'step'}{k}"  # one cache may hold several seeds
            cached = cache.load(piece) if cache is not None else None
            if cached is None:
                run, next_state = _outer_step(task, hyper, estimator, outer, state, k, last, seed, metrics,
                                              names, initial_steps, trained_once)
                recover = (run["kind"] in FAILED and on_diverge == "halve" and anchor is not None
                           and bool((state.h != anchor).any()))
                if run["kind"] == "stalled" and not recover:  # nowhere to go back to: keep its hypergradient
                    run["kind"] = "final" if last else "hypergradient"
                    run["message"] = ""
                if recover:  # halfway back to the last point that trained; a final training: back to it
                    next_state = state._replace(h=anchor) if last else diverged_update(state, anchor)
                if cache is not None and (run["kind"] not in FAILED or recover):
                    cache.save(piece, (run, next_state))
            else:
                run, next_state = cached
            row = _record(recorder, k, run)
            bar.update()
            failed = row["kind"] in FAILED
            if failed and next_state is state:
                recorder.fail(f"at outer step {k}", run["message"])
                break
            if failed:
                halved.append(f"{k} ({row['kind']})")
                recorder.message = (f"training failed at outer step(s) {', '.join(halved)}: each time the run "
                                    "went halfway back to the last hyperparameters that trained, with halved steps"
                                    + (" (the final training: back to them)" if last else ""))
            else:
                anchor = state.h
                trained_once = trained_once or run["trained"]
            state = next_state
            k += 1
            if last:
                if failed:
                    continue
                break
            if recorder.stop_requested(f"after outer step {k - 1}") or recorder.out_of_time():
                break
            if converged_frac is not None and converged(state, initial_steps, converged_frac):
                last = True
                recorder.message = "; ".join(filter(None, [
                    recorder.message, f"converged after outer step {k - 1}: every step below {converged_frac:g} of its value"]))
    return recorder.history("fds" if label == "FDS" else label.lower(), label, task.name, seed,
                            {"outer": outer.name, "steps": steps, "gamma": initial_steps.tolist()}, list(names))


def _record(recorder: Recorder, k: int, run: dict) -> dict:
    """Row k: run k's measurements with the costs summed over the runs so far (``wall_time``
    counts compute time, so that a run resumed from a cache reads as one)."""
    before = recorder.rows[-1] if recorder.rows else {name: 0 for name in (*COUNTERS, "wall_time", "runs")}
    return recorder.record(k, objective=run["loss"], kind=run["kind"],
                           **{name: before[name] + run[name] for name in COUNTERS},
                           wall_time=before["wall_time"] + run["seconds"], runs=before["runs"] + 1, **run["columns"])


def diverged_update(state, anchor: torch.Tensor):
    """The outer state after a diverged training at ``state.h``: halfway back to ``anchor``
    (the hyperparameters of the last run that trained), with the step of every entry that
    moved halved, as a sign flip would (:func:`hpolab.hypergrad.sign_descent`). Repeated
    divergences close in on ``anchor`` geometrically. The last hypergradient signs are kept,
    so that later flips are judged against real hypergradients."""
    moved = state.h != anchor
    return state._replace(h=anchor + (state.h - anchor) / 2,
                          step_size=torch.where(moved, state.step_size / 2, state.step_size))


def trains(loss: float, untrained: float) -> bool:
    """The start check's criterion: a validation loss ``loss`` (NaN: diverged) below
    :data:`START_PROGRESS` of the untrained network's ``untrained``."""
    return loss == loss and loss < START_PROGRESS * untrained


def stalled(task: InnerTask, loss: float, seed: int) -> tuple[bool, float]:
    """Whether a finished training did not train: its validation loss ``loss`` is not below
    :data:`START_PROGRESS` of the untrained network's at the same ``seed`` (the start check's
    criterion). Returns that and the untrained loss."""
    untrained = float(task.val_loss(task.init(seed)))
    return not trains(loss, untrained), untrained


def _outer_step(task, hyper, estimator, outer, state, k, last, seed, metrics, names, initial_steps,
                trained_once=False):
    """Run k: train at h_k (with its hypergradient unless it is the last) and step the outer update;
    returns what run k measured (its own costs, loss, kind, columns) and the next outer state.
    After a run that trained (``trained_once``), a run that did not (:func:`stalled`) is marked
    ``kind="stalled"`` (:func:`learn` decides whether its hypergradient step is kept)."""
    start = time.perf_counter()
    current = hyper.with_flat(state.h)
    inner_seed = run_seed(seed, k)
    if last:
        trained = train(task, current, inner_seed)
        theta, diverged, why = trained.theta, trained.diverged, trained.message
        cost = Cost(gradient_evaluations=trained.steps)
        loss = float(task.val_loss(theta)) if not diverged else math.nan
        next_state, norm2 = state, math.nan
    else:
        result = estimator(task, current, inner_seed)
        theta, diverged, why, loss = result.theta, result.diverged, result.message, result.loss
        cost = result.cost
        next_state = state if diverged else outer.update(state, result.grad)
        norm2 = math.nan if diverged else float((result.grad ** 2).sum())
    dead, untrained = (False, math.nan) if diverged else stalled(task, loss, inner_seed)
    if dead and trained_once:
        why = (f"the network did not train: validation loss {loss:.4g}, not below {START_PROGRESS:g} x "
               f"{untrained:.4g} (the untrained network's)")
    kind = "diverged" if diverged else "stalled" if dead and trained_once else ("final" if last else "hypergradient")
    columns = {
        **dict(zip(names, state.h.tolist())),
        "hypergradient_norm2": norm2, "seed": inner_seed,
        "relative_step": math.nan if (last or diverged) else float(relative_steps(next_state, initial_steps).max()),
    }
    if metrics is not None:
        columns.update(metrics(theta if not diverged else torch.full_like(theta, math.nan), state.h))
        columns["test_accuracy"] = 1.0 - columns["test_error"]
    run = {"loss": loss, "kind": kind, "columns": columns, "seconds": time.perf_counter() - start,
           **{name: getattr(cost, name) for name in COUNTERS},
           "trained": not diverged and not dead, "message": why if diverged or kind == "stalled" else ""}
    return run, next_state


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
