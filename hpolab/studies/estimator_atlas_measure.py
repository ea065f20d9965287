"""Study 14's measurement of one estimator variant at one point: its relative error against the
exact (float64 reverse-mode) hypergradient, wall time, peak memory and evaluations
(:func:`measure`), central finite differences as the reference-free baseline, where a variant
does not apply (:func:`applies`), and the allocator setting that makes CPU memory readings
mean what a run holds. Shared by the run (:mod:`hpolab.studies.estimator_atlas`) and its
widget panel.
"""

from __future__ import annotations

import ctypes
import math

import torch

from hpolab.hypergrad import make_estimator, schedule
from hpolab.hypergrad.cost import Meter
from hpolab.hypergrad.result import Hypergradient
from hpolab.hypergrad.zeroth_order import validation_losses


def exact_cpu_memory() -> None:
    """glibc: every allocation of 16 KiB or more from its own mapping, returned when freed (the
    threshold no longer rises after frees), so the Meter's resident-set growth counts what a run
    holds rather than what the allocator kept from earlier runs. Process-wide; no-op elsewhere."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 16 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def finite_differences(task, hyper, seed: int, step: float = 1e-5) -> Hypergradient:
    """Central differences, one pair of trainings per hyperparameter (all 2K + 1 batched),
    each entry moved by ``step * max(|h_k|, 1)``."""
    theta = task.init(seed)
    with Meter(theta.device) as meter:
        h = hyper.pack()
        steps = step * h.abs().clamp_min(1.0)
        moves = torch.diag(steps)
        points = torch.cat([h[None], h + moves, h - moves])
        losses = validation_losses(task, hyper, points, seed, True, meter).losses
        K = len(h)
        grad = (losses[1:K + 1] - losses[K + 1:]) / (2 * steps)
    return Hypergradient(float(losses[0]), grad, meter.cost())


def applies(label: str, name: str, settings: dict, family: str, horizon: int) -> str:
    """Why the variant does not apply here ("" when it does)."""
    if name == "implicit" and family != "logreg":
        return ("learning rates do not move a minimizer of the training loss: implicit differentiation "
                "needs training-loss hyperparameters (logreg's log_l2)")
    if name == "greedy" and settings["horizon"] >= horizon:
        return f"H = {settings['horizon']} >= T = {horizon}: one chunk, i.e. forward mode"
    return ""


def measure(task, hyper, label: str, name: str, settings: dict, exact: torch.Tensor, seed: int, mu: float,
            repeats: int, reference: Hypergradient | None = None, point: int = 0) -> dict:
    """One variant at one point: relative error against ``exact``, seconds, peak MiB, evaluations.

    The zeroth-order repeats draw their directions from a stream of their own for each point
    (``point``, the point's number in the sweep) and repeat: the claims summarize the error over
    points (a median), which estimates the expected error only if the points' directions are
    independent draws. (With one set of directions shared by every point, study 14's first cpu
    run measured its whole q sweep on five direction draws per q, and the error's slope in q
    came out -0.21 where 1/sqrt(q) is -0.5.)"""
    def relative(grad, truth):
        return float((grad - truth).norm() / truth.norm()) if grad is not None else math.nan

    if name == "reverse" and reference is not None:
        runs = [(reference, 0.0)]
    elif name == "finite-differences":
        result = finite_differences(task, hyper, seed)
        runs = [(result, relative(result.grad, exact))]
    elif name == "implicit":
        implicit_hyper = schedule(hyper.horizon, lr=hyper.values["lr"], momentum=hyper.values["momentum"],
                                  windows=hyper.windows, learn=("log_l2",), log_l2=hyper.values["log_l2"])
        result = make_estimator("implicit")(task, implicit_hyper, seed)
        truth = hyper.unpack(exact)["log_l2"].reshape(-1)
        runs = [(result, relative(result.grad, truth))]
    elif name == "zeroth-order":
        estimator = make_estimator(name, q=settings["q"], mu=mu)
        runs = []
        for r in range(repeats):
            generator = torch.Generator().manual_seed(1_000_000 * point + 10_000 * r + settings["q"])
            result = estimator(task, hyper, seed, generator=generator)
            runs.append((result, relative(result.grad, exact)))
    else:
        result = make_estimator(name, **settings)(task, hyper, seed)
        runs = [(result, relative(result.grad, exact))]
    errors = [e for _, e in runs]
    costs = [r.cost for r, _ in runs]
    return {"estimator": label, "error": math.sqrt(sum(e * e for e in errors) / len(errors)),
            "seconds": sum(c.wall_time for c in costs) / len(costs),
            "memory": max(c.peak_memory for c in costs) / 2**20,
            "evaluations": sum(c.evaluations + c.hvp_evaluations for c in costs) // len(costs),
            "diverged": any(r.diverged for r, _ in runs)}
