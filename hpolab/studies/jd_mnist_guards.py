"""Study 02's guard check: what the printed gradient step 1 / beta and an unbounded y do, the
measurements behind the study's two guards (the step ``LR`` and the box on eta, alpha, b).

:func:`estimate_beta` measures the curvature the printed step would use; :func:`guard_check` reruns
JD without each guard and reports which runs diverged or collapsed to chance accuracy. Kept apart
from the study loop (:mod:`hpolab.studies.jd_mnist`, which re-exports them for the notebook):
they are experiments of their own, run from the notebook.
"""

from __future__ import annotations

import functools
from typing import Sequence

import pandas as pd
import torch
from torch.func import grad, jvp

from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.problems.mlp import (
    HYPERPARAMETERS,
    MinibatchStream,
    activation_mlp,
)
from hpolab.progress import progress_bar
from hpolab.runner import run
from hpolab.studies.common import check_scale
from hpolab.studies.jd_mnist_setup import (
    BOX,
    CHANCE,
    CLAIM_P,
    DEFAULTS,
    GUARD_LRS,
    LR,
    configure,
    make_setup,
    study_threads,
)
from hpolab.tables import significant
from hpolab.validation import check_count


def estimate_beta(scale: str = "cpu", y0: Sequence[float] = (LR, 1.0, 0.0), seed: int = 0, batches: int = 5,
                  power_steps: int = 30, device: str = "cpu") -> float:
    """The largest |eigenvalue| of grad_x^2 f at the start x0 (seed ``seed``) and y0, the
    largest over ``batches`` minibatches (power iteration on Hessian-vector products): the
    smoothness the printed step ``1 / beta`` would use if it were measured where a run starts."""
    torch_device = resolve_device(device)
    setup = make_setup(scale, torch_device)
    stream = MinibatchStream(setup.images, setup.labels, setup.batch_size)
    stream.reset(seed)
    problem = activation_mlp(stream, setup.monitor, lr=LR, y0=y0)
    x0, y = problem.initial_point(torch.Generator().manual_seed(seed))
    gradient = functools.partial(grad(problem.objective), y=y)
    generator = torch.Generator().manual_seed(seed)
    largest = 0.0
    with study_threads(torch_device):
        for _ in range(batches):
            v = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
            v = v / v.norm()
            value = 0.0
            for _ in range(power_steps):
                _, hv = jvp(lambda x: gradient(x), (x0,), (v,))
                value = float(v @ hv)
                v = hv / hv.norm()
            largest = max(largest, abs(value))
            stream.advance()
    return largest


def collapsed(history: History, chance: float = CHANCE) -> bool:
    """The run ended at chance accuracy: at most ``chance`` at its end, after at least a tenth
    of its budget (the start is at chance too)."""
    frame = history.frame
    late = frame["iteration"] >= 0.1 * frame["iteration"].iloc[-1]
    return bool(late.any()) and float(frame["train_accuracy"].iloc[-1]) <= chance


def guard_check(scale: str = "cpu", seeds: int | None = None, iterations: int | None = None,
                lrs: Sequence[float] = GUARD_LRS, p: float = CLAIM_P, device: str = "cpu",
                progress: bool = True) -> pd.DataFrame:
    """JD (p) without each guard: larger gradient steps ``lrs`` (with the box), and no box
    (with ``LR``); one row per setting and seed: whether the run diverged or collapsed to
    chance accuracy, its final accuracy and the range y took."""
    check_scale(scale)
    iterations = check_count("iterations", DEFAULTS[scale]["iterations"] if iterations is None else iterations)
    seeds = check_count("seeds", DEFAULTS[scale]["seeds"] if seeds is None else seeds, minimum=1)
    torch_device = resolve_device(device)
    settings = [(f"lr {lr:g}, box", lr, BOX) for lr in lrs] + [(f"lr {LR:g}, no box", LR, None)]
    rows = []
    with progress_bar(total=len(settings) * seeds, desc="guards", disable=not progress) as bar, \
            study_threads(torch_device):
        for name, lr, box in settings:
            setup = make_setup(scale, torch_device, lr=lr, box=box)
            for seed in range(seeds):
                built, problem = configure(setup, "jd", p)
                history = run(built, problem, iterations, seed=seed)
                frame = history.frame
                rows.append({
                    "setting": name, "seed": seed, "diverged": history.status == "diverged",
                    "at iteration": int(frame["iteration"].iloc[-1]) if history.status == "diverged" else None,
                    "collapsed": history.status != "diverged" and collapsed(history),
                    "train acc": float(frame["train_accuracy"].iloc[-1]),
                    **{f"{n} range": f"{significant(frame[n].min()):g} .. {significant(frame[n].max()):g}"
                       for n in HYPERPARAMETERS},
                })
                bar.update()
    return pd.DataFrame(rows)
