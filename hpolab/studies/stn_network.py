"""Study 12, part 2: STN on an MLP on MNIST, tuning (log weight decay, logit dropout), against
a grid of fixed settings and STN's schedule replayed; and the tables that summarize those runs
(the study: :mod:`hpolab.studies.stn`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from hpolab.recorder import Recorder
from hpolab.training import classification_scores
from hpolab.history import History
from hpolab.splits import Split
from hpolab.methods.stn import adam, minibatches, self_tuning
from hpolab.methods.stn_mlp import mlp_init, mlp_logits, mlp_response, structured_init, structured_weights
from hpolab.studies.common import StudyResult
from hpolab.studies.stn_ridge import RidgeRun, ridge_best_response, squared_loss, travel_lr
from hpolab.validation import check_choice, check_count, check_positive
from hpolab.tables import mean_interval



# --- an MLP on MNIST: weight decay and dropout ------------------------------------------------

NAMES = ("log_weight_decay", "logit_dropout")
DECAY_RANGE, DROPOUT_RANGE = (1e-7, 1.0), (0.01, 0.9)  # STN's box when none is given


def network_limits(decay_range=DECAY_RANGE, dropout_range=DROPOUT_RANGE) -> tuple[list[float], list[float]]:
    """STN's box on lambda = (log weight decay, logit dropout) from ranges of weight decay and dropout."""
    (d_low, d_high), (p_low, p_high) = decay_range, dropout_range
    if not 0 < d_low < d_high or not 0 < p_low < p_high < 1:
        raise ValueError(f"need 0 < weight decay low < high and 0 < dropout low < high < 1, got {decay_range!r}, "
                         f"{dropout_range!r}")
    return ([math.log(d_low), math.log(p_low / (1 - p_low))], [math.log(d_high), math.log(p_high / (1 - p_high))])


def to_lambda(weight_decay: float, dropout: float) -> torch.Tensor:
    """(log weight decay, logit dropout)."""
    check_positive("weight_decay", weight_decay)
    if not 0 < dropout < 1:
        raise ValueError(f"dropout must lie in the open interval (0, 1) for STN, got {dropout!r}")
    return torch.tensor([math.log(weight_decay), math.log(dropout / (1 - dropout))], dtype=torch.float64)


EVALUATION_BATCH = 2000  # examples per chunk when scoring the validation and test sets


WARMUP_EPOCHS = 5  # the authors' CNN code trains 5 epochs before its first tuning step
TRAIN_STEPS = 2  # T_train of the authors' code (CNN and LSTM): training steps per tuning step
SIGMA = 0.5  # the authors' CNN code's perturbation scale (there learned from 0.5; fixed here)


@dataclass(frozen=True)
class NetworkSetting:
    """One network run: ``method`` "stn" tunes from (weight_decay, dropout); "fixed" keeps
    them; "replay" trains the plain MLP with a schedule found by STN (``schedule``: (step,
    weight decay, dropout) rows, each in force from the training step after ``step``).

    ``val_batch_size`` None takes ``batch_size`` (the authors' code draws validation batches
    of the training batch size); ``warmup`` None is :data:`WARMUP_EPOCHS` epochs of the
    training set; ``hyper_lr`` None is :func:`travel_lr` over the tuning steps of the run.
    """

    method: str
    weight_decay: float
    dropout: float
    hidden: tuple[int, ...] = (400, 400)
    steps: int = 1000  # training steps (phi or weights); STN adds one tuning step per train_steps
    batch_size: int = 128
    val_batch_size: int | None = None  # STN: validation examples per tuning step
    lr: float = 1e-3
    sigma: float = SIGMA
    hyper_lr: float | None = None
    train_steps: int = TRAIN_STEPS
    tune_steps: int = 1
    warmup: int | None = None  # STN: training steps before the first tuning step
    decay_range: tuple[float, float] = DECAY_RANGE  # STN's box on the weight decay
    dropout_range: tuple[float, float] = DROPOUT_RANGE  # and on the dropout rate
    evaluations: int = 20
    schedule: tuple[tuple[int, float, float], ...] = ()  # replay: (step, weight decay, dropout)

    @property
    def label(self) -> str:
        if self.method == "stn":
            return "STN"
        if self.method == "replay":
            return REPLAY
        return f"wd={self.weight_decay:g}, p={self.dropout:g}"

    def warmup_steps(self, n_train: int) -> int:
        """STN's warm-up in training steps for a training set of ``n_train`` examples."""
        if self.warmup is not None:
            return check_count("warmup", self.warmup)
        return WARMUP_EPOCHS * max(1, n_train // self.batch_size)

    def tuning_steps(self, n_train: int) -> int:
        """How many tuning steps STN takes in the run."""
        warmup = self.warmup_steps(n_train)
        return max(1, (self.steps - warmup) // self.train_steps + 1) * self.tune_steps if warmup <= self.steps else 1


REPLAY = "STN schedule, replayed"


@dataclass
class STNHistory(History):
    """A network run's history and, for STN, every value its hyperparameters took
    (``schedule``: step, weight_decay, dropout; row 0 the start, then one row per tuning step)."""

    schedule: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def as_schedule(self) -> tuple[tuple[int, float, float], ...]:
        """The schedule as :class:`NetworkSetting`'s ``schedule`` rows."""
        return tuple((int(r.step), float(r.weight_decay), float(r.dropout)) for r in self.schedule.itertuples())


def scheduled(schedule: Sequence[tuple[int, float, float]], step: int) -> tuple[float, float]:
    """(weight decay, dropout) in force at training step ``step`` (1, 2, ...): the last row
    whose step is before it."""
    current = schedule[0]
    for row in schedule:
        if row[0] >= step:
            break
        current = row
    return current[1], current[2]


def run_network(setting: NetworkSetting, data: Split, seed: int = 0, callback: Callable[[dict], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> STNHistory:
    """Train the MLP with fixed hyperparameters, with a replayed schedule, or tune them with
    STN; one history row per evaluation (validation loss as the objective, test loss and
    accuracy, the hyperparameters).

    All three start from the same elementary weights for a seed and see the same training
    batches. STN's validation loss, test loss and accuracy are those of the response at the
    current lambda (no perturbation, no dropout).
    """
    check_choice("method", setting.method, ("stn", "fixed", "replay"))
    check_count("steps", setting.steps, minimum=1)
    if setting.method == "replay" and not setting.schedule:
        raise ValueError("schedule must hold at least one (step, weight decay, dropout) row to replay")
    x_train, y_train = data.train
    sizes = (x_train.shape[1], *setting.hidden, 10)
    device = x_train.device
    init_generator, generator = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    train_batches = minibatches(data.train, setting.batch_size, generator)
    every = max(1, setting.steps // setting.evaluations)
    running, count = 0.0, 0
    warmup = setting.warmup_steps(len(y_train))
    hyper_lr = setting.hyper_lr
    recorder = Recorder(callback=callback, should_stop=should_stop)
    if setting.method == "stn":
        limits = network_limits(setting.decay_range, setting.dropout_range)
        hyper_lr = travel_lr(limits, setting.tuning_steps(len(y_train))) if hyper_lr is None else hyper_lr
        stn = self_tuning(mlp_response(), setting.sigma, lr=setting.lr, hyper_lr=hyper_lr,
                          train_steps=setting.train_steps, tune_steps=setting.tune_steps, limits=limits)
        state = stn.init(structured_init(sizes, len(NAMES), init_generator, device=device),
                         to_lambda(setting.weight_decay, setting.dropout))
        val_batches = minibatches(data.val, setting.val_batch_size or setting.batch_size, generator)
    else:
        params = tuple(p.requires_grad_() for p in mlp_init(sizes, init_generator, device=device))
        optimizer = adam(setting.lr)
        opt_state = optimizer.init(params)
    path = [(0, setting.weight_decay, setting.dropout)] if setting.method != "replay" else [setting.schedule[0]]

    def hyperparameters(step):
        """The weight decay and dropout of the plain network at training step ``step``."""
        if setting.method == "replay":
            return scheduled(setting.schedule, step)
        return setting.weight_decay, setting.dropout

    def current(step):
        if setting.method == "stn":
            weights = structured_weights(state.phi, torch.zeros(len(NAMES), dtype=state.phi[0].dtype, device=device))
            h = state.hyper.double().cpu()
            return weights, float(h[0].exp()), float(torch.sigmoid(h[1])), state.tune_steps
        return (params, *hyperparameters(max(step, 1)), 0)

    def passes(step, tuned):
        """Cost so far in passes (forward and backward) of the plain network over a training
        batch: the structured response computes two matrix products per layer, so each of its
        training or tuning steps counts 2 (a tuning step scaled by its batch size)."""
        if setting.method != "stn":
            return float(step)
        return 2.0 * (step + tuned * (setting.val_batch_size or setting.batch_size) / setting.batch_size)

    def record(step):
        weights, decay, dropout, tuned = current(step)
        val_loss, val_acc = classification_scores(lambda x: mlp_logits(weights, x), *data.val, EVALUATION_BATCH)
        test_loss, test_acc = classification_scores(lambda x: mlp_logits(weights, x), *data.test, EVALUATION_BATCH)
        recorder.record(step, objective=val_loss, kind="evaluation", gradient_evaluations=step + tuned,
                        train_loss=running / count if count else math.nan, val_accuracy=val_acc,
                        test_loss=test_loss, test_accuracy=test_acc, tune_step=tuned, passes=passes(step, tuned),
                        weight_decay=decay, dropout=dropout,
                        log_weight_decay=math.log(decay) if decay > 0 else math.nan,
                        logit_dropout=math.log(dropout / (1 - dropout)) if 0 < dropout < 1 else math.nan)

    record(0)
    for step in range(1, setting.steps + 1):
        if setting.method == "stn":
            state = stn.train(state, next(train_batches), generator)
            loss = state.train_loss
            if step >= warmup and (step - warmup) % setting.train_steps == 0:
                for _ in range(setting.tune_steps):
                    state = stn.tune(state, next(val_batches))
                h = state.hyper.double().cpu()
                path.append((step, float(h[0].exp()), float(torch.sigmoid(h[1]))))
        else:
            decay, dropout = hyperparameters(step)
            x, y = next(train_batches)
            keep = torch.tensor(1 - dropout, device=device) if dropout > 0 else None
            objective = F.cross_entropy(mlp_logits(params, x, keep=keep, generator=generator), y)
            if decay > 0:
                objective = objective + 0.5 * decay * sum((w * w).sum() for w in params[::2])
            grads = torch.autograd.grad(objective, params)
            params, opt_state = optimizer.update(grads, opt_state, tuple(p.detach() for p in params))
            params = tuple(p.requires_grad_() for p in params)
            loss = float(objective.detach())
        running, count = running + loss, count + 1
        recorder.diverged(loss, f"at step {step}", "the training loss")
        if step % every == 0 or step == setting.steps or recorder.ended:
            record(step)
            running, count = 0.0, 0
        if recorder.ended or recorder.stop_requested(f"at step {step}"):
            break
    config = {"task": "mnist-mlp", "method": setting.method, "weight_decay0": setting.weight_decay,
              "dropout0": setting.dropout, "hidden": list(setting.hidden), "steps": setting.steps,
              "batch_size": setting.batch_size, "lr": setting.lr}
    if setting.method == "stn":
        config.update(sigma=setting.sigma, hyper_lr=hyper_lr,
                      val_batch_size=setting.val_batch_size or setting.batch_size, train_steps=setting.train_steps,
                      tune_steps=setting.tune_steps, warmup=warmup, decay_range=list(setting.decay_range),
                      dropout_range=list(setting.dropout_range))
    schedule = pd.DataFrame(path if setting.method == "stn" else list(setting.schedule) or path,
                            columns=["step", "weight_decay", "dropout"])
    return recorder.history(setting.method, setting.label, "mnist-mlp", seed, config, ["weight_decay", "dropout"],
                            kind=STNHistory, schedule=schedule)


def summarize(histories: Sequence[History], ridge: RidgeRun | None = None) -> pd.DataFrame:
    """One row per setting: the final hyperparameters (geometric mean of the weight decay over
    seeds, mean dropout), the final validation loss (mean and 95 % half-width over seeds), test
    loss and accuracy, the cost per run in training and validation minibatch steps and in
    plain-network passes (``passes``, see :func:`run_network`; deterministic, unlike wall time,
    which the histories keep), and the number of runs. Ridge: STN's run and the exact optimum."""
    rows, groups = [], {}
    for h in histories:
        groups.setdefault((h.problem, h.label), []).append(h)
    for (problem, label), runs in groups.items():
        last = [h.frame.iloc[-1] for h in runs]
        val, val_ci = mean_interval([row["objective"] for row in last])
        if problem == "ridge":
            decay, drop, accuracy = math.exp(float(np.mean([row["log_lambda"] for row in last]))), math.nan, math.nan
        else:
            decay = math.exp(float(np.mean([math.log(max(row["weight_decay"], 1e-300)) for row in last])))
            drop = float(np.mean([row["dropout"] for row in last]))
            accuracy = float(np.mean([row["test_accuracy"] for row in last]))
        rows.append({"task": problem, "method": label, "weight decay": decay, "dropout": drop, "val loss": val,
                     "val ±95%": val_ci, "test loss": float(np.mean([row["test_loss"] for row in last])),
                     "test acc": accuracy, "train steps": int(last[0]["step"]), "val steps": int(last[0]["tune_step"]),
                     "passes": float(np.mean([row.get("passes", row["step"]) for row in last])), "runs": len(runs)})
    if ridge is not None:
        w = ridge_best_response(*ridge.data.train, ridge.optimum)
        rows.append({"task": "ridge", "method": "exact optimum", "weight decay": math.exp(ridge.optimum),
                     "dropout": math.nan, "val loss": float(squared_loss(w, ridge.data.val)), "val ±95%": 0.0,
                     "test loss": float(squared_loss(w, ridge.data.test)), "test acc": math.nan,
                     "train steps": 0, "val steps": 0, "passes": 0.0, "runs": 0})
    return pd.DataFrame(rows)


def is_fixed(label: str) -> bool:
    """Whether a summary row or history label is one of the grid's fixed settings."""
    return label.startswith("wd=")


def fixed_rows(result: StudyResult) -> pd.DataFrame:
    """The summary rows of the grid's fixed settings on the MLP."""
    table = result.summary
    return table[(table["task"] == "mnist-mlp") & table["method"].map(is_fixed)]


def per_seed(result: StudyResult) -> pd.DataFrame:
    """Per seed: the final validation loss of STN, of its replayed schedule, and of that seed's
    best fixed setting, and which setting that was."""
    rows = []
    for seed in sorted({h.seed for h in result.histories if h.problem == "mnist-mlp"}):
        runs = [h for h in result.histories if h.problem == "mnist-mlp" and h.seed == seed]
        stn_runs = [h for h in runs if h.method == "stn"]
        replays = [h for h in runs if h.method == "replay"]
        fixed = [h for h in runs if h.method == "fixed"]
        if not stn_runs or not fixed:
            continue
        best = min(fixed, key=lambda h: h.final_objective)
        rows.append({"seed": seed, "STN": stn_runs[0].final_objective,
                     "replayed": replays[0].final_objective if replays else math.nan,
                     "best fixed": best.final_objective, "best setting": best.label})
    return pd.DataFrame(rows, columns=["seed", "STN", "replayed", "best fixed", "best setting"])
