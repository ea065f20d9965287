"""Black-box tuning baselines on the core protocol: random search, GP-BO, Hyperband, BOHB.

Each ``update`` runs one *trial*: Optuna proposes a point h inside the box ``limits``
(one float per entry of the learned hyperparameters, named as the history's columns),
the task is trained with it, and the validation loss of the final weights is told back.
The cost is charged in the unit the gradient-based tuners (FDS, HOZOG) are charged in:
one gradient evaluation per training step actually taken and one function evaluation per
validation loss computed (including one, at ``init``, of the untrained weights: the
reference for divergence), so histories of all tuners share one budget axis (and the
runner's wall time a second one).

The state's ``x`` is the trial's final weights and ``y`` its point, so each history row is
that trial's validation loss and hyperparameters; the running best is the history's
``best_objective``. Rows are marked by ``kind``:

``"trial"``
    trained for all T steps; Optuna is told its validation loss.
``"pruned trial"``
    stopped early by the Hyperband pruner (see below): charged only the steps it took,
    told to Optuna as PRUNED (Optuna records its last reported validation loss), and its
    row holds the validation loss of its partly trained weights.
``"diverged trial"``
    training diverged (a NaN or exploding training loss), or the validation loss is not
    finite or exceeds ``hpolab.divergence.FACTOR`` (1e6, the library's one rule) times the
    untrained network's. The search goes on: as the runner ends a run on such an
    objective, the row keeps the trial's point as ``y`` but the run's *initial* weights as
    ``x``, so its objective is the untrained validation loss, a finite stand-in. Optuna is
    told ``max(worst value of the study's completed trials, untrained loss)``: the trial
    ranks last, so model-based samplers learn to avoid the region (a FAIL they would
    ignore), and no arbitrary penalty distorts the scale of the values they fit. The
    Optuna trial carries the user attribute ``"diverged"`` with the reason.

Each row also records, as extra columns, ``trial_steps`` (training steps the trial took)
and ``trial_value`` (the value told to Optuna).

With ``pruner="hyperband"`` (Optuna's ``HyperbandPruner``, resources in training steps from
``min_steps`` to T, reduction factor 3) training reports the validation loss at the rung
steps ``min_steps * 3**k`` (those with ``3 * rung <= T``, see :func:`rung_steps`) through
:func:`~hpolab.hypergrad.unroll.train`'s ``on_step`` hook and stops as soon as the trial's
bracket prunes it. Rung evaluations are charged as function evaluations.

The Optuna study lives (mutable) in the state. A seeded run repeats bit for bit on the
CPU: the sampler's seed is drawn from the run's generator and the study has a fixed name
(Hyperband assigns brackets by hashing the study name and trial number).
"""

from __future__ import annotations

import math
import warnings
from concurrent.futures import Executor
from typing import NamedTuple

import optuna
import torch
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from hpolab.hypergrad.hyperparameters import Hyperparameters
from hpolab.hypergrad.task import InnerTask
from hpolab import divergence
from hpolab.hypergrad.unroll import train
from hpolab.problems.tuning import hyperparameter_names
from hpolab.protocol import Cost, Method
from hpolab.validation import check_choice, check_count

SAMPLERS = ("random", "gp", "tpe")
PRUNERS = (None, "hyperband")
REDUCTION_FACTOR = 3  # Hyperband's eta
STUDY_NAME = "hpolab-blackbox"  # fixed: Hyperband's brackets hash it


class BlackboxState(NamedTuple):
    x: torch.Tensor  # the last trial's final weights (the initial weights after a diverged trial)
    y: torch.Tensor  # the last trial's point
    study: optuna.Study
    x0: torch.Tensor  # the run's initial weights
    reference: float  # their validation loss
    trials: int  # trials run so far
    kind: str  # "start", "trial", "pruned trial" or "diverged trial"
    message: str = ""
    extras: dict = {}  # recorded in the history: the trial's steps and the value told to Optuna


class Outcome(NamedTuple):
    theta: torch.Tensor
    steps: int  # training steps taken
    evaluations: int  # validation losses computed
    value: float  # validation loss of theta (NaN when not evaluated)
    kind: str
    message: str


# ---------------------------------------------------------------------------- settings


def search_space(hyper: Hyperparameters, limits, log=()) -> dict[str, FloatDistribution]:
    """One ``FloatDistribution`` per entry of h, named by ``hyperparameter_names``.

    Args:
      limits: per-entry ``(low, high)`` tensors, as from :func:`hpolab.hypergrad.box`;
        every entry must be finite with low < high.
      log: names of learned hyperparameters searched on a log scale (low must be > 0).
    """
    names = hyperparameter_names(hyper)
    if limits is None:
        raise ValueError(f"limits must bound every learned hyperparameter {list(hyper.learn)} "
                         "(build them with hpolab.hypergrad.box), got None")
    low, high = (torch.as_tensor(bound, dtype=torch.float64).reshape(-1) for bound in limits)
    if low.numel() != len(names) or high.numel() != len(names):
        raise ValueError(f"limits must hold one (low, high) per entry of h, {len(names)} for {list(names)}, "
                         f"got {low.numel()} and {high.numel()}")
    unknown = [name for name in log if name not in hyper.learn]
    if unknown:
        raise ValueError(f"log names {unknown}, which are not among the learned hyperparameters {list(hyper.learn)}")
    bases = [name for name in hyper.learn for _ in range(hyper.values[name].numel())]  # entry -> name
    return {name: _distribution(name, lo, hi, base in log)
            for name, base, lo, hi in zip(names, bases, low.tolist(), high.tolist())}


def _distribution(name: str, low: float, high: float, log: bool) -> FloatDistribution:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"limits must bound every learned hyperparameter, but {name} ranges over "
                         f"({low}, {high}); give it finite bounds in box(hyper, {{...}})")
    if not low < high:
        raise ValueError(f"limits must have low < high, but {name} has ({low}, {high})")
    if log and low <= 0:
        raise ValueError(f"a log-scale range must have low > 0, but {name} has ({low}, {high})")
    return FloatDistribution(low, high, log=log)


def rung_steps(horizon: int, min_steps: int) -> frozenset[int]:
    """The step counts at which training reports to Hyperband: ``min_steps * 3**k``, for the
    rungs whose survivors go on to at least 3 times as many steps (``3 * rung <= T``).

    Optuna's rungs do not stop at T: with T = 40 and ``min_steps=4`` they lie at 4, 12 and
    36, and a trial promoted at 36 would only gain the 4 steps to 40; such a rung is left
    out, as Hyperband's last rung is the full training. Brackets whose first rung is left
    out train every trial fully (Hyperband's random-search bracket).
    """
    rungs, steps = set(), min_steps
    while REDUCTION_FACTOR * steps <= horizon:
        rungs.add(steps)
        steps *= REDUCTION_FACTOR
    return frozenset(rungs)


def _check_min_steps(min_steps, pruner, horizon) -> int | None:
    if pruner is None:
        if min_steps is not None:
            raise ValueError(f"min_steps is the Hyperband pruner's minimum resource; it needs "
                             f"pruner='hyperband', got pruner=None and min_steps={min_steps!r}")
        return None
    if min_steps is None:
        return max(1, horizon // REDUCTION_FACTOR**2)
    check_count("min_steps", min_steps, minimum=1)
    if REDUCTION_FACTOR * min_steps > horizon:
        raise ValueError(f"min_steps must be <= T / {REDUCTION_FACTOR} = {horizon / REDUCTION_FACTOR:g} so that "
                         f"Hyperband has a rung to prune at, got {min_steps}")
    return min_steps


def _make_sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GPSampler's deterministic_objective is experimental
        if kind == "gp":
            return optuna.samplers.GPSampler(seed=seed, deterministic_objective=True)
        if kind == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True)
        return optuna.samplers.RandomSampler(seed=seed)


def _make_study(sampler: str, pruner: str | None, horizon: int, min_steps: int | None,
                generator: torch.Generator) -> optuna.Study:
    seed = int(torch.randint(2**31 - 1, (), generator=generator))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruning = optuna.pruners.NopPruner()
    if pruner == "hyperband":
        pruning = optuna.pruners.HyperbandPruner(min_resource=min_steps, max_resource=horizon,
                                                 reduction_factor=REDUCTION_FACTOR)
    return optuna.create_study(direction="minimize", sampler=_make_sampler(sampler, seed), pruner=pruning,
                               study_name=STUDY_NAME)


# ---------------------------------------------------------------------------- one trial


@torch.no_grad()
def _validation_loss(task: InnerTask, theta: torch.Tensor) -> float:
    return float(task.val_loss(theta))


def _train_trial(task: InnerTask, hyper: Hyperparameters, point: torch.Tensor, seed: int,
                 trial: optuna.Trial, rungs: frozenset[int], reference: float) -> Outcome:
    """Train at ``point``; at the rung steps report to ``trial`` and stop if it is pruned."""
    reported = {"evaluations": 0, "value": float("nan")}

    def on_step(t: int, theta: torch.Tensor) -> bool:
        if t + 1 not in rungs:
            return False
        value = _validation_loss(task, theta)
        reported.update(evaluations=reported["evaluations"] + 1, value=value)
        if divergence.diverged(value, reference):
            return True  # no use training on: the trial is recorded as diverged
        trial.report(value, t + 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return trial.should_prune()

    trained = train(task, hyper.with_flat(point), seed, on_step=on_step if rungs else None)
    evaluations, value = reported["evaluations"], reported["value"]
    if trained.diverged:
        return Outcome(trained.theta, trained.steps, evaluations, float("nan"), "diverged trial", trained.message)
    if trained.steps == hyper.horizon:
        value, evaluations = _validation_loss(task, trained.theta), evaluations + 1
    if divergence.diverged(value, reference):
        return Outcome(trained.theta, trained.steps, evaluations, value, "diverged trial",
                       f"the validation loss after {trained.steps} steps reached {value:.4g}")
    if trained.steps < hyper.horizon:
        return Outcome(trained.theta, trained.steps, evaluations, value, "pruned trial",
                       f"pruned after {trained.steps} of {hyper.horizon} steps")
    return Outcome(trained.theta, trained.steps, evaluations, value, "trial", "")


def _penalty(study: optuna.Study, reference: float) -> float:
    """What a diverged trial is told: the worst completed value, and no less than ``reference``.

    Completed values only: they are what model-based samplers fit (GPSampler ignores pruned
    trials), so the penalty adds no new extreme to their data; a pruned trial's early loss
    can be far larger.
    """
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max([reference, *(t.value for t in completed)])


def _tell(study: optuna.Study, trial: optuna.Trial, outcome: Outcome, reference: float) -> float:
    """Tell Optuna the outcome (see the module docstring); returns the value told."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if outcome.kind == "pruned trial":
            study.tell(trial, state=TrialState.PRUNED)  # Optuna keeps the last reported value
            return outcome.value
        value = outcome.value
        if outcome.kind == "diverged trial":
            trial.set_user_attr("diverged", outcome.message)
            value = _penalty(study, reference)
        study.tell(trial, value)
        return value


# ---------------------------------------------------------------------------- the method


def blackbox_search(task: InnerTask, hyper: Hyperparameters, limits, sampler: str = "random",
                    pruner: str | None = None, seed: int | None = None, min_steps: int | None = None,
                    label: str | None = None, *, log=(), executor: Executor | None = None,
                    parallel: int = 1) -> Method:
    """Black-box tuning of ``hyper.learn`` for ``task``: one Optuna trial per update.

    Args:
      limits: the per-entry ``(low, high)`` box from :func:`hpolab.hypergrad.box`; every
        learned entry must be bounded.
      sampler: ``"random"`` (RandomSampler), ``"gp"`` (GPSampler: Gaussian-process Bayesian
        optimization) or ``"tpe"`` (multivariate TPESampler).
      pruner: None, or ``"hyperband"`` (HyperbandPruner over training steps, from
        ``min_steps`` to T, reduction factor 3).
      seed: the trainings' seed (initialization and data order); None draws a new one per
        trial from the run's generator.
      min_steps: Hyperband's minimum resource in steps (default T // 9, three brackets);
        only with ``pruner="hyperband"``.
      label: how plots name the method (default from the sampler and pruner).
      log: names of learned hyperparameters sampled on a log scale (e.g. ``("lr",)``).
      executor: a ``concurrent.futures`` executor (e.g. a Dask cluster's, see
        :mod:`hpolab.distributed`): each update then asks Optuna for ``parallel`` trials, trains
        them as jobs on it at the same time, and tells Optuna every result. The update's row is
        the best trial of the batch (kind ``"trial batch"``, ``trials_in_step`` = parallel).
        Only without a pruner: Hyperband decides at each rung from the study in this process.
      parallel: trials per update with an executor, >= 1.

    Returns:
      A :class:`~hpolab.protocol.Method` whose rows are trials (see the module docstring).
    """
    check_choice("sampler", sampler, SAMPLERS)
    if pruner not in PRUNERS:
        raise ValueError(f"pruner must be one of {list(PRUNERS)}, got {pruner!r}")
    if seed is not None:
        check_count("seed", seed)
    min_steps = _check_min_steps(min_steps, pruner, hyper.horizon)
    check_count("parallel", parallel, minimum=1)
    if executor is not None and pruner is not None:
        raise ValueError(f"executor works only with pruner=None (Hyperband prunes from the study in this "
                         f"process), got pruner={pruner!r}")
    space = search_space(hyper, limits, tuple(log))
    rungs = rung_steps(hyper.horizon, min_steps) if pruner else frozenset()
    name = PRESET_NAMES.get((sampler, pruner), f"blackbox-{sampler}" + (f"-{pruner}" if pruner else ""))

    def init(x0, y0, oracle, generator):
        study = _make_study(sampler, pruner, hyper.horizon, min_steps, generator)
        reference = float(oracle.value(x0, y0))  # the untrained validation loss, counted
        return BlackboxState(x0, y0, study, x0, reference, 0, "start")

    def update_in_parallel(state, oracle, generator):
        seeds = [seed if seed is not None else int(torch.randint(2**31 - 1, (), generator=generator))
                 for _ in range(parallel)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trials = [state.study.ask(space) for _ in range(parallel)]
        points = [torch.tensor([t.params[n] for n in space], dtype=state.y.dtype, device=state.y.device)
                  for t in trials]
        futures = [executor.submit(_train_trial, task, hyper, point, run_seed, None, frozenset(), state.reference)
                   for point, run_seed in zip(points, seeds)]
        outcomes = [future.result() for future in futures]
        oracle.charge(Cost(gradient_evaluations=sum(o.steps for o in outcomes),
                           function_evaluations=sum(o.evaluations for o in outcomes)))
        told = [_tell(state.study, trial, outcome, state.reference) for trial, outcome in zip(trials, outcomes)]
        ranked = sorted(range(parallel), key=lambda i: (outcomes[i].kind != "trial", told[i]))
        best = outcomes[ranked[0]]
        x = state.x0 if best.kind == "diverged trial" else best.theta.detach().to(state.x0.device)
        extras = {"trial_steps": sum(o.steps for o in outcomes), "trial_value": told[ranked[0]],
                  "trials_in_step": parallel, "diverged_in_step": sum(o.kind == "diverged trial" for o in outcomes)}
        kind = "trial batch" if best.kind == "trial" else best.kind
        return state._replace(x=x, y=points[ranked[0]], trials=state.trials + parallel, kind=kind,
                              message=best.message, extras=extras)

    def update(state, oracle, generator):
        if executor is not None:
            return update_in_parallel(state, oracle, generator)
        run_seed = seed if seed is not None else int(torch.randint(2**31 - 1, (), generator=generator))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # samplers' notes on independent sampling
            trial = state.study.ask(space)
        point = torch.tensor([trial.params[n] for n in space], dtype=state.y.dtype, device=state.y.device)
        outcome = _train_trial(task, hyper, point, run_seed, trial, rungs, state.reference)
        oracle.charge(Cost(gradient_evaluations=outcome.steps, function_evaluations=outcome.evaluations))
        told = _tell(state.study, trial, outcome, state.reference)
        x = state.x0 if outcome.kind == "diverged trial" else outcome.theta.detach()
        extras = {"trial_steps": outcome.steps, "trial_value": told}
        return state._replace(x=x, y=point, trials=state.trials + 1, kind=outcome.kind,
                              message=outcome.message, extras=extras)

    config = {"sampler": sampler, "pruner": pruner or "none", "min_steps": min_steps, "trial_seed": seed}
    return Method(name, init, update, config, label or DEFAULT_LABELS.get(name, name))


# ---------------------------------------------------------------------------- presets

PRESET_NAMES = {
    ("random", None): "random-search",
    ("gp", None): "bayesian",
    ("random", "hyperband"): "hyperband",
    ("tpe", "hyperband"): "bohb",
}
DEFAULT_LABELS = {
    "random-search": "random search",
    "bayesian": "Bayesian optimization (GP)",
    "hyperband": "Hyperband",
    "bohb": "BOHB (TPE + Hyperband)",
}


def _preset(sampler: str, pruner: str | None):
    def factory(task: InnerTask, hyper: Hyperparameters, limits, seed: int | None = None,
                min_steps: int | None = None, label: str | None = None, *, log=(), executor=None,
                parallel: int = 1) -> Method:
        return blackbox_search(task, hyper, limits, sampler, pruner, seed, min_steps, label, log=log,
                               executor=executor, parallel=parallel)

    name = PRESET_NAMES[(sampler, pruner)]
    factory.__name__ = name.replace("-", "_")
    factory.__doc__ = (f"{DEFAULT_LABELS[name]}: :func:`blackbox_search` with sampler={sampler!r}, "
                       f"pruner={pruner!r}.")
    return factory


random_search = _preset("random", None)
bayesian_optimization = _preset("gp", None)
hyperband = _preset("random", "hyperband")
bohb = _preset("tpe", "hyperband")

BLACKBOX_METHODS = {
    "random-search": random_search,
    "bayesian": bayesian_optimization,
    "hyperband": hyperband,
    "bohb": bohb,
}


def make_blackbox(name: str, task: InnerTask, hyper: Hyperparameters, limits, **settings) -> Method:
    """The preset called ``name`` (a key of ``BLACKBOX_METHODS``) with its settings
    (``seed``, ``min_steps``, ``label``, ``log``)."""
    check_choice("black-box method", name, BLACKBOX_METHODS)
    return BLACKBOX_METHODS[name](task, hyper, limits, **settings)
