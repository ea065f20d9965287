"""The checks of study 07's claims (the shapes of the sensitivity curves: constant rates,
lr-decay and HD per beta): each reads the sensitivity table (``result.summary``) as curve
shapes; those the paper makes for VGG-16 run on it or its stand-in (:func:`_on_vgg`). The
claims themselves are listed in :mod:`hpolab.studies.hd_vs_decay_claims`.
"""

from __future__ import annotations

import math

import numpy as np

from hpolab.claims import untestable, verdict
from hpolab.studies.hd_vs_decay_claims_rules import WIDER, _finite, _g, _r, below, curve_shape, wider


def _vgg(frame) -> str | None:
    tasks = set(frame["task"])
    return next((t for t in ("cifar-vgg16", "cifar-cnn") if t in tasks), None)


def _on_vgg(check):
    """Run ``check(frame, task)`` on VGG-16 or its stand-in, untestable without either."""
    def wrapped(result):
        frame = result.summary
        task = _vgg(frame)
        if task is None:
            return untestable("needs VGG-16 (paper) or its stand-in cifar-cnn (cpu)")
        found = check(frame, task)
        return found.__class__(found.status, f"{task}: {found.measured}")
    return wrapped


def _shapes(frame, task, curve, optimizers=("SGD", "SGDN", "Adam")):
    return {o: s for o in optimizers if (s := curve_shape(frame, task, o, curve)) is not None}


def check_sgd_worse_above_best(frame, task):
    shapes = _shapes(frame, task, "constant", ("SGD", "SGDN"))
    if len(shapes) < 2 or any(math.isnan(s.asymmetry) for s in shapes.values()):
        return untestable(f"constant SGD and SGDN need grid points on both sides of their best alpha_0 "
                          f"({', '.join(f'{o} best {s.best_lr:g}' for o, s in shapes.items())})")
    return verdict(all(s.asymmetry > 0.5 for s in shapes.values()),
                   "constant rate, training loss rise per decade left / right of the best alpha_0: " + "; ".join(
                       f"{o} {_r(s.rise_left)} / {_r(s.rise_right)}" for o, s in shapes.items()))


def check_adam_more_symmetric(frame, task):
    shapes = _shapes(frame, task, "constant")
    if len(shapes) < 3 or any(math.isnan(s.asymmetry) for s in shapes.values()):
        return untestable("constant SGD, SGDN and Adam need grid points on both sides of their best alpha_0")
    off = {o: abs(s.asymmetry - 0.5) for o, s in shapes.items()}
    return verdict(off["Adam"] < off["SGD"] and off["Adam"] < off["SGDN"],
                   "constant rate, asymmetry right / (left + right) of the rise around the best alpha_0: " + ", ".join(
                       f"{o} {s.asymmetry:.3g}" for o, s in shapes.items()) + " (0.5 symmetric)")


def check_resnet_wider_valley(result):
    frame = result.summary
    if not {"cifar-vgg16", "cifar-resnet18"} <= set(frame["task"]):
        return untestable("needs VGG-16 and ResNet-18 on CIFAR-10 (paper scale)")
    vgg, resnet = _shapes(frame, "cifar-vgg16", "constant"), _shapes(frame, "cifar-resnet18", "constant")
    names = [o for o in vgg if o in resnet]
    return verdict(bool(names) and all(wider(resnet[o].width, vgg[o].width) for o in names),
                   "constant rate, valley width in decades ResNet-18 vs VGG-16: " + ", ".join(
                       f"{o} {resnet[o].width:.3g} vs {vgg[o].width:.3g}" for o in names))


def check_adam_as_hard_as_sgd(result):
    frame = result.summary
    parts, holds = [], True
    for task in dict.fromkeys(frame["task"]):
        shapes = _shapes(frame, task, "constant")
        if len(shapes) < 3:
            continue
        holds &= not wider(shapes["Adam"].width, max(shapes["SGD"].width, shapes["SGDN"].width))
        parts.append(f"{task} " + ", ".join(f"{o} {s.width:.3g}" for o, s in shapes.items()))
    if not parts:
        return untestable("needs constant SGD, SGDN and Adam on a task")
    return verdict(holds, f"constant rate, valley width in decades (Adam not {WIDER:g}x the wider of SGD, SGDN): "
                   + "; ".join(parts))


def check_decay_raises_best_lr(result):
    frame = result.summary
    parts, count = [], 0
    for task in dict.fromkeys(frame["task"]):
        constant, decay = _shapes(frame, task, "constant"), _shapes(frame, task, "lr-decay")
        for o in constant:
            if o in decay:
                count += decay[o].best_lr > constant[o].best_lr
                parts.append(f"{task} {o} {decay[o].best_lr:g} vs {constant[o].best_lr:g}")
    if not parts:
        return untestable("needs constant and lr-decay curves for the same optimizer")
    return verdict(count == len(parts), f"best alpha_0 of lr-decay above the constant rate's in {count} of {len(parts)} "
                                        f"({'; '.join(parts)})")


def check_decay_improves_sgd(frame, task):
    constant, decay = _shapes(frame, task, "constant", ("SGD", "SGDN")), _shapes(frame, task, "lr-decay", ("SGD", "SGDN"))
    names = [o for o in constant if o in decay]
    if len(names) < 2:
        return untestable("needs constant and lr-decay curves of SGD and SGDN")
    return verdict(all(decay[o].best < constant[o].best for o in names),
                   "best training loss, lr-decay vs constant: " + ", ".join(
                       f"{o} {_g(decay[o].best)} vs {_g(constant[o].best)}" for o in names))


def check_decay_steeper_right(frame, task):
    constant, decay = _shapes(frame, task, "constant", ("SGD", "SGDN")), _shapes(frame, task, "lr-decay", ("SGD", "SGDN"))
    names = [o for o in constant if o in decay]
    if len(names) < 2 or any(math.isnan(x) for o in names for x in (constant[o].rise_right, decay[o].rise_right)):
        return untestable("SGD and SGDN need a grid point right of the best alpha_0, with and without lr-decay")
    return verdict(all(decay[o].rise_right > constant[o].rise_right for o in names),
                   "training loss rise per decade right of the best alpha_0, lr-decay vs constant: " + ", ".join(
                       f"{o} {_r(decay[o].rise_right)} vs {_r(constant[o].rise_right)}" for o in names))


def check_decay_eases_adam(frame, task):
    constant, decay = _shapes(frame, task, "constant"), _shapes(frame, task, "lr-decay")
    if len(decay) < 3 or "Adam" not in constant:
        return untestable("needs lr-decay curves of SGD, SGDN and Adam and Adam's constant curve")
    values = {"Adam-decay": decay["Adam"].rise_right, "Adam": constant["Adam"].rise_right,
              "SGD-decay": decay["SGD"].rise_right, "SGDN-decay": decay["SGDN"].rise_right}
    if any(math.isnan(v) for v in values.values()):
        return untestable("a best alpha_0 at the grid's right edge: " + ", ".join(f"{k} {_r(v)}" for k, v in values.items()))
    adam = values["Adam-decay"]
    return verdict(adam < values["Adam"] and adam < values["SGD-decay"] and adam < values["SGDN-decay"],
                   "training loss rise per decade right of the best alpha_0: " + ", ".join(
                       f"{k} {_r(v)}" for k, v in values.items()))


def check_decay_harmless_small_lr(frame, task):
    parts, worse = [], 0
    for o in ("SGD", "SGDN", "Adam"):
        constant = frame[(frame["task"] == task) & (frame["optimizer"] == o) & (frame["curve"] == "constant")]
        decay = frame[(frame["task"] == task) & (frame["optimizer"] == o) & (frame["curve"] == "lr-decay")]
        if not len(constant) or not len(decay):
            continue
        best_lr = curve_shape(frame, task, o, "constant").best_lr
        pairs = constant.merge(decay, on="lr0", suffixes=("", " decay"))
        pairs = pairs[pairs["lr0"] < best_lr]
        for _, row in pairs.iterrows():
            worse += below(row["train"], row["train ±95%"], row["train decay"], row["train ±95% decay"])
            parts.append(f"{o} {row['lr0']:g}: {_g(row['train decay'])} vs {_g(row['train'])}")
    if not parts:
        return untestable("no alpha_0 below the constant rate's best is on both curves")
    return verdict(worse == 0, f"best training loss at alpha_0 below the constant rate's best, lr-decay vs constant: "
                               f"significantly worse at {worse} of {len(parts)} ({'; '.join(parts)})")


def check_resnet_decay_flattens_adam(result):
    frame = result.summary
    if "cifar-resnet18" not in set(frame["task"]):
        return untestable("needs ResNet-18 on CIFAR-10 (paper scale)")
    constant = curve_shape(frame, "cifar-resnet18", "Adam", "constant")
    decay = curve_shape(frame, "cifar-resnet18", "Adam", "lr-decay")
    if constant is None or decay is None:
        return untestable("needs Adam's constant and lr-decay curves on ResNet-18")
    return verdict(wider(decay.width, constant.width), f"Adam on ResNet-18, valley width in decades: lr-decay "
                                                 f"{decay.width:.3g} vs constant {constant.width:.3g}")


def _hd_shapes(frame, task, optimizer):
    curves = [c for c in dict.fromkeys(frame["curve"]) if str(c).startswith("HD")]
    return {c: s for c in curves if (s := curve_shape(frame, task, optimizer, c)) is not None}


def check_hd_robust_to_alpha0(frame, task):
    parts, holds, tested = [], True, 0
    for o in ("SGD", "SGDN", "Adam"):
        hd, constant = _hd_shapes(frame, task, o), curve_shape(frame, task, o, "constant")
        if len(hd) < 2 or constant is None:
            continue
        tested += 1
        count = sum(wider(s.width, constant.width) for s in hd.values())
        holds &= count >= 2
        parts.append(f"{o}-HD {count} of {len(hd)} betas (widths " + ", ".join(f"{s.width:.3g}" for s in hd.values())
                     + f"; constant {constant.width:.3g})")
    if not tested:
        return untestable("needs HD curves for two or more betas and the constant curve")
    return verdict(holds, f"valley width in decades {WIDER:g}x the constant rate's or more for several (>= 2) betas: "
                   + "; ".join(parts))


def check_hd_needs_beta(frame, task):
    parts, holds, tested = [], True, 0
    for o in ("SGD", "SGDN", "Adam"):
        lines = frame[(frame["task"] == task) & (frame["optimizer"] == o) & frame["curve"].astype(str).str.startswith("HD")]
        if lines["curve"].nunique() < 2:
            continue
        tested += 1
        bests = lines.assign(score=lines["train"].map(_finite)).sort_values("score").groupby("curve", sort=False).head(1)
        top, bottom = bests.iloc[0], bests.iloc[-1]
        apart = below(top["train"], top["train ±95%"], bottom["train"], bottom["train ±95%"])
        holds &= apart
        parts.append(f"{o}-HD best {_g(top['train'])} ({top['curve']}) vs worst beta's best {_g(bottom['train'])} "
                     f"({bottom['curve']})")
    if not tested:
        return untestable("needs HD curves for two or more betas")
    return verdict(holds, "best training loss over alpha_0, best vs worst beta (95 % intervals apart): " + "; ".join(parts))


def check_sgdn_hd_least_sensitive(frame, task):
    widths = {o: np.mean([s.width for s in hd.values()]) for o in ("SGD", "SGDN", "Adam")
              if (hd := _hd_shapes(frame, task, o))}
    if len(widths) < 3:
        return untestable("needs HD curves of SGD, SGDN and Adam")
    return verdict(wider(widths["SGDN"], widths["SGD"]) and wider(widths["SGDN"], widths["Adam"]),
                   f"HD valley width in decades, mean over betas (SGDN {WIDER:g}x the others?): " + ", ".join(f"{o} {w:.3g}" for o, w in widths.items()))
