"""The claims of "Combining adaptive algorithms and hypergradient method" that studies 06 and 07 check.

Study 06's checks read its comparison of the tuned configurations (``result.summary``: one
row per task, method and role, ``tuned`` or Baydin et al.'s ``suggested`` setting, with the
final training and test loss over seeds and their 95 % half-widths) and its tuning grid
(``result.tuning``). Study 07's read the sensitivity table (``result.summary``: per task,
optimizer, curve and alpha_0 the minimal training loss reached, mean over seeds).

The paper states its findings in words; the checks make each one a comparison of numbers:

- "significantly" lower: the two 95 % intervals over seeds do not overlap;
- "most" settings: more than half of those the run has;
- a curve's **valley**: the alpha_0 around its best whose loss stays within
  :data:`NEAR_BEST` of the way from the best loss to chance (ln 10, ten classes), the curve
  read as straight lines between grid points on a log axis; its **width** is the span of
  those alpha_0 in decades (wider: easier to tune); one valley is **wider** than another
  when it spans at least :data:`WIDER` times the decades (a difference of a few hundredths of
  a decade, such as HD with a beta too small to move the rate against the constant rate, is
  no difference);
- the **rise** on either side of the best alpha_0: the loss gained per decade to the next
  grid point (infinite when that run diverged); a curve that "worsens faster when
  increasing the learning rate" rises more to the right than to the left.

A diverged configuration counts as worse than any finite loss. Statements the paper makes
for VGG-16 are checked on VGG-16 (``paper`` scale) or its ``cpu`` stand-in, the small CNN on
the CIFAR-10 subset; statements comparing VGG-16 with ResNet-18 need both (``paper`` scale).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd

from hpolab.claims import Claim, untestable, verdict

CHANCE_LOSS = math.log(10)
NEAR_BEST = 0.1
WIDER = 2.0  # a valley is "wider" than another when it spans at least twice the decades
SOURCE = "HD vs lr-decay (ICLR 2019 submission)"
HD_NAMES = ("SGD-HD", "SGDN-HD", "Adam-HD")


def _g(value: float) -> str:
    """A loss in 3 significant digits; NaN or inf is a diverged configuration."""
    return "diverged" if value is None or not np.isfinite(value) else f"{value:.3g}"


def _r(value: float) -> str:
    """A rise per decade: NaN where the best alpha_0 is at the grid's edge, inf where the
    neighbour diverged."""
    return "edge" if math.isnan(value) else "inf (diverged)" if math.isinf(value) else f"{value:.3g}"


def _finite(value) -> float:
    """NaN (a diverged configuration) as +inf: worse than any loss."""
    return math.inf if value is None or math.isnan(value) else float(value)


def below(a: float, a_half: float, b: float, b_half: float) -> bool:
    """a significantly below b: a's 95 % interval lies wholly under b's (NaN: diverged, worst)."""
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a + (0.0 if math.isnan(a_half) else a_half) < b - (0.0 if math.isnan(b_half) else b_half)


def wider(a: float, b: float) -> bool:
    """Valley width a is wider than b: at least :data:`WIDER` times it (and not both zero)."""
    return a > 0 and a >= WIDER * b


def _most(count: int, total: int) -> bool:
    return total > 0 and count > total / 2


# ---------------------------------------------------------------------------------------------
# Study 06


def _tuned(summary: pd.DataFrame, task: str, method: str, role: str = "tuned"):
    rows = summary[(summary["task"] == task) & (summary["method"] == method) & (summary["role"] == role)]
    return rows.iloc[0] if len(rows) else None


def _cifar(tasks) -> list[str]:
    return [t for t in tasks if str(t).startswith("cifar")]


def check_hd_tuning_beats_suggested(result):
    summary = result.summary
    pairs = []
    for task in dict.fromkeys(summary["task"]):
        for method in HD_NAMES:
            tuned, given = _tuned(summary, task, method), _tuned(summary, task, method, "suggested")
            if tuned is not None and given is not None:
                better = below(tuned["train"], tuned["train ±95%"], given["train"], given["train ±95%"])
                pairs.append((better, f"{task} {method} {_g(tuned['train'])} vs {_g(given['train'])}"))
    if not pairs:
        return untestable("no HD method ran both tuned and at Baydin et al.'s setting")
    count = sum(b for b, _ in pairs)
    return verdict(_most(count, len(pairs)),
                   f"final training loss, tuned vs Baydin et al.'s (alpha_0, beta): significantly lower in {count} of "
                   f"{len(pairs)} ({'; '.join(t for _, t in pairs)})")


def check_hd_needs_both(result):
    summary, tuning = result.summary, result.tuning
    pairs = []
    for task in dict.fromkeys(summary["task"]):
        for method in HD_NAMES:
            tuned, given = _tuned(summary, task, method), _tuned(summary, task, method, "suggested")
            grid = tuning[(tuning["task"] == task) & (tuning["method"] == method)]
            if tuned is None or given is None or not len(grid):
                continue
            at_beta = grid[np.isclose(grid["beta"], given["beta"])]
            at_alpha = grid[np.isclose(grid["alpha_0"], given["alpha_0"])]
            if not len(at_beta) or not len(at_alpha):
                continue
            joint = _finite(grid["best train"].min())
            only_alpha, only_beta = _finite(at_beta["best train"].min()), _finite(at_alpha["best train"].min())
            noise = 0.0 if math.isnan(tuned["best train ±95%"]) else tuned["best train ±95%"]
            both = joint < only_alpha - noise and joint < only_beta - noise
            numbers = f"both {_g(joint)}, alpha_0 only {_g(only_alpha)}, beta only {_g(only_beta)}, noise {_g(noise)}"
            pairs.append((both, f"{task} {method} {numbers}"))
    if not pairs:
        return untestable("the grid lacks Baydin et al.'s alpha_0 or beta, so one-parameter tuning cannot be read from it")
    count = sum(b for b, _ in pairs)
    return verdict(_most(count, len(pairs)),
                   f"best training loss on the grid, tuning both vs tuning alpha_0 at Baydin's beta / beta at Baydin's "
                   f"alpha_0: both better by more than the seeds' 95 % half-width in {count} of {len(pairs)} "
                   f"({'; '.join(t for _, t in pairs)})")


def _task_rows(summary: pd.DataFrame, methods, tasks=None):
    """Per task, the tuned row of each method, for the tasks that have all of them."""
    out = {}
    for task in tasks if tasks is not None else dict.fromkeys(summary["task"]):
        rows = {m: _tuned(summary, task, m) for m in methods}
        if all(r is not None for r in rows.values()):
            out[task] = rows
    return out


def check_adam_hd_tuned_is_baydins(result):
    tuned, given = (_tuned(result.summary, "mnist-mlp", "Adam-HD", role) for role in ("tuned", "suggested"))
    if tuned is None or given is None:
        return untestable("needs Adam-HD on MNIST, tuned and at Baydin et al.'s setting")
    same = bool(np.isclose(tuned["alpha_0"], given["alpha_0"]) and np.isclose(tuned["beta"], given["beta"]))
    return verdict(same, f"mnist-mlp Adam-HD (alpha_0, beta): tuned ({tuned['alpha_0']:g}, {tuned['beta']:g}), "
                         f"Baydin et al.'s ({given['alpha_0']:g}, {given['beta']:g})")


def check_sgd_hd_beats_adam_hd(result):
    tasks = _task_rows(result.summary, HD_NAMES)
    if not tasks:
        return untestable("needs tuned SGD-HD, SGDN-HD and Adam-HD on a task")
    wins, parts = 0, []
    for task, rows in tasks.items():
        best = min(("SGD-HD", "SGDN-HD"), key=lambda m: _finite(rows[m]["train"]))
        won = _finite(rows[best]["train"]) < _finite(rows["Adam-HD"]["train"])
        wins += won
        parts.append(f"{task} {best} {_g(rows[best]['train'])} vs Adam-HD {_g(rows['Adam-HD']['train'])}")
    return verdict(_most(wins, len(tasks)), f"final training loss, better of SGD(N)-HD vs Adam-HD: lower on {wins} of "
                                            f"{len(tasks)} tasks ({'; '.join(parts)})")


def check_adam_hd_generalizes_worst(result):
    tasks = _task_rows(result.summary, HD_NAMES)
    if not tasks:
        return untestable("needs tuned SGD-HD, SGDN-HD and Adam-HD on a task")
    wins, parts = 0, []
    for task, rows in tasks.items():
        adam = _finite(rows["Adam-HD"]["test"])
        wins += _finite(rows["SGD-HD"]["test"]) < adam and _finite(rows["SGDN-HD"]["test"]) < adam
        parts.append(f"{task} SGD-HD {_g(rows['SGD-HD']['test'])}, SGDN-HD {_g(rows['SGDN-HD']['test'])}, "
                     f"Adam-HD {_g(rows['Adam-HD']['test'])}")
    return verdict(wins == len(tasks), f"final test loss: SGD-HD and SGDN-HD both below Adam-HD on {wins} of "
                                       f"{len(tasks)} tasks ({'; '.join(parts)})")


def _hd_decay_pairs(summary):
    for task in dict.fromkeys(summary["task"]):
        for name in ("SGD", "SGDN", "Adam"):
            hd, decay = _tuned(summary, task, f"{name}-HD"), _tuned(summary, task, f"{name}-decay")
            if hd is not None and decay is not None:
                yield task, name, hd, decay


def check_hd_not_better_than_decay(result):
    counts = {"HD better": 0, "comparable": 0, "HD worse": 0}
    parts = []
    for task, name, hd, decay in _hd_decay_pairs(result.summary):
        if below(hd["train"], hd["train ±95%"], decay["train"], decay["train ±95%"]):
            kind = "HD better"
        elif below(decay["train"], decay["train ±95%"], hd["train"], hd["train ±95%"]):
            kind = "HD worse"
        else:
            kind = "comparable"
        counts[kind] += 1
        parts.append(f"{task} {name} {_g(hd['train'])} vs {_g(decay['train'])}")
    total = sum(counts.values())
    if not total:
        return untestable("needs tuned HD and lr-decay for the same optimizer")
    return verdict(counts["HD better"] == 0,
                   f"final training loss, HD vs lr-decay over {total} settings: {counts['HD better']} HD significantly "
                   f"lower, {counts['comparable']} comparable, {counts['HD worse']} HD significantly higher "
                   f"({'; '.join(parts)})")


def check_decay_generalizes_better(result):
    wins, parts = 0, []
    for task, name, hd, decay in _hd_decay_pairs(result.summary):
        wins += _finite(decay["test"]) < _finite(hd["test"])
        parts.append(f"{task} {name} decay {_g(decay['test'])} vs HD {_g(hd['test'])}")
    if not parts:
        return untestable("needs tuned HD and lr-decay for the same optimizer")
    return verdict(_most(wins, len(parts)), f"final test loss: lr-decay below HD in {wins} of {len(parts)} settings "
                                            f"({'; '.join(parts)})")


def check_sgd_decay_generalizes_better_than_adam(result):
    methods = ("SGD-decay", "SGDN-decay", "Adam-decay")
    tasks = _task_rows(result.summary, methods, _cifar(dict.fromkeys(result.summary["task"])))
    if not tasks:
        return untestable("needs tuned SGD-, SGDN- and Adam-decay on a CIFAR-10 task")
    wins, parts = 0, []
    for task, rows in tasks.items():
        adam = _finite(rows["Adam-decay"]["test"])
        wins += _finite(rows["SGD-decay"]["test"]) < adam and _finite(rows["SGDN-decay"]["test"]) < adam
        parts.append(f"{task} SGD {_g(rows['SGD-decay']['test'])}, SGDN {_g(rows['SGDN-decay']['test'])}, "
                     f"Adam {_g(rows['Adam-decay']['test'])}")
    return verdict(wins == len(tasks), f"final test loss of lr-decay: SGD and SGDN both below Adam on {wins} of "
                                       f"{len(tasks)} CIFAR-10 tasks ({'; '.join(parts)})")


def check_decay_best_training_on_cifar(result):
    summary = result.summary
    tuned = summary[(summary["role"] == "tuned") & summary["task"].astype(str).str.startswith("cifar")]
    if not len(tuned) or not {"SGD-decay", "SGDN-decay"} & set(tuned["method"]):
        return untestable("needs tuned lr-decay methods on a CIFAR-10 task")
    wins, parts = 0, []
    for task, rows in tuned.groupby("task", sort=False):
        losses = rows.set_index("method")["train"].map(_finite)
        best = losses.idxmin()
        wins += best in ("SGD-decay", "SGDN-decay")
        parts.append(f"{task} best {best} {_g(losses[best])}")
    total = tuned["task"].nunique()
    return verdict(wins == total, f"lowest final training loss among the tuned methods is SGD- or SGDN-decay on {wins} "
                                  f"of {total} CIFAR-10 tasks ({'; '.join(parts)})")


# ---------------------------------------------------------------------------------------------
# Study 07: curve shapes


class Shape(NamedTuple):
    """A sensitivity curve read as numbers: the best alpha_0 and loss, the valley's width in
    decades, and the rise per decade to the grid points either side of the best (NaN where
    the best is at the grid's edge; inf where that neighbour diverged)."""

    best_lr: float
    best: float
    width: float
    rise_left: float
    rise_right: float

    @property
    def asymmetry(self) -> float:
        """rise_right / (rise_left + rise_right): 0.5 symmetric, above it steeper to the right."""
        left, right = self.rise_left, self.rise_right
        if math.isnan(left) or math.isnan(right):
            return math.nan
        if math.isinf(left) and math.isinf(right):
            return 0.5
        if math.isinf(right):
            return 1.0
        if math.isinf(left):
            return 0.0
        return 0.5 if left + right == 0 else right / (left + right)


def shape(lrs, losses) -> Shape:
    """The :class:`Shape` of a curve of ``losses`` (NaN: diverged) at ``lrs``.

    The valley's ends are where the curve, drawn as straight lines between grid points on a
    log alpha_0 axis (as the paper's figures draw it), crosses the near-best level: a valley
    narrower than the grid's spacing still has a width, and widths compare across grids. A
    diverged neighbour ends the valley at the last finite point.
    """
    order = np.argsort(np.asarray(lrs, dtype=float))
    logs = np.log10(np.asarray(lrs, dtype=float)[order])
    values = np.array([_finite(v) for v in np.asarray(losses, dtype=float)[order]])
    if not np.isfinite(values).any():
        return Shape(math.nan, math.inf, 0.0, math.nan, math.nan)
    i = int(np.argmin(values))
    best = float(values[i])
    limit = best + NEAR_BEST * abs(CHANCE_LOSS - best)

    def end(step):
        j = i
        while 0 <= j + step < len(values) and values[j + step] <= limit:
            j += step
        outside = j + step
        if not 0 <= outside < len(values) or not np.isfinite(values[outside]):
            return logs[j]
        fraction = (limit - values[j]) / (values[outside] - values[j])
        return logs[j] + fraction * (logs[outside] - logs[j])

    def rise(j):
        if not 0 <= j < len(values):
            return math.nan
        return (values[j] - best) / abs(logs[j] - logs[i])

    return Shape(float(10 ** logs[i]), best, float(end(1) - end(-1)), rise(i - 1), rise(i + 1))


def curve_shape(frame: pd.DataFrame, task: str, optimizer: str, curve: str, loss: str = "train") -> Shape | None:
    line = frame[(frame["task"] == task) & (frame["optimizer"] == optimizer) & (frame["curve"] == curve)]
    return shape(line["lr0"], line[loss]) if len(line) else None


def shapes_table(frame: pd.DataFrame, loss: str = "train") -> pd.DataFrame:
    """Every curve's :class:`Shape`, one row per task, optimizer and curve (what the claims read)."""
    rows = []
    for (task, optimizer, curve), line in frame.groupby(["task", "optimizer", "curve"], sort=False):
        s = shape(line["lr0"], line[loss])
        rows.append({"task": task, "optimizer": optimizer, "curve": curve, "best alpha_0": s.best_lr,
                     "best loss": s.best, "valley (decades)": s.width, "rise left /decade": s.rise_left,
                     "rise right /decade": s.rise_right, "asymmetry": s.asymmetry})
    return pd.DataFrame(rows)


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


# ---------------------------------------------------------------------------------------------

N06, N07 = "06_hd_vs_decay", "07_lr_sensitivity"
CLAIMS = [
    Claim("hd-tuning-beats-suggested", N06,
          "As can be seen in Figure 1 [hypergradient with the parameters suggested by Baydin et al. (2018) against "
          "the optimized ones], a slightly better tuning improves drastically the performance.",
          f"{SOURCE}, section 3.2, Figure 1",
          check_hd_tuning_beats_suggested),
    Claim("hd-needs-alpha0-and-beta", N06,
          "Even if hypergradient decreases the sensitivity to the initial learning rate for a fixed value of beta, "
          "tuning both parameters remains essential.", f"{SOURCE}, section 3.2, Figure 1", check_hd_needs_both),
    Claim("adam-hd-tuned-is-baydins", N06,
          "Our tuned configuration for ADAM-HD actually coincides with the one given in Baydin et al. (2018) "
          "[on MNIST].", f"{SOURCE}, section 3.2, Figure 1 (top)", check_adam_hd_tuned_is_baydins),
    Claim("sgd-hd-beats-adam-hd", N06,
          "SGD-HD and SGDN-HD are competitive and able to outperform ADAM-HD.", f"{SOURCE}, section 3.2, Figure 1",
          check_sgd_hd_beats_adam_hd),
    Claim("adam-hd-generalizes-worst", N06,
          "ADAM-HD is consistently outperformed by SGD-HD and SGDN-HD [in test loss].",
          f"{SOURCE}, section 3.4, Figure 3", check_adam_hd_generalizes_worst),
    Claim("hd-not-better-than-decay", N06,
          "Hypergradient can replicate a close training performance to lr-decay: in 5 out of 9 settings it performs "
          "comparably to lr-decay, in the 4 others significantly worse; it does not perform better than the fixed "
          "decay.", f"{SOURCE}, section 3.3, Figure 2; section 5", check_hd_not_better_than_decay),
    Claim("decay-generalizes-better-than-hd", N06,
          "Hypergradient has a worse generalization performance than lr-decay, except SGDN-HD that is the best "
          "generalizing method for VGG net.", f"{SOURCE}, section 3.3, Figure 3", check_decay_generalizes_better),
    Claim("sgd-decay-generalizes-better-than-adam-decay", N06,
          "SGD-decay and SGDN-decay tend to generalize better than ADAM-decay for the VGG network; the same "
          "observation can be made for ResNet18.", f"{SOURCE}, section 3.4, Figure 3",
          check_sgd_decay_generalizes_better_than_adam),
    Claim("decay-trains-best-on-cifar", N06,
          "When training on CIFAR-10, SGD-decay and SGDN-decay provide consistently the best performance.",
          f"{SOURCE}, section 3.3, Figure 2", check_decay_best_training_on_cifar),
    Claim("sgd-worse-above-best-lr", N07,
          "For VGG net, the performance of SGD and SGDN worsens faster when increasing the learning rate than when "
          "decreasing it.", f"{SOURCE}, section 4, Figure 4", _on_vgg(check_sgd_worse_above_best)),
    Claim("adam-more-symmetric", N07,
          "ADAM shows a similar U-shaped dependency of the performance with respect to the initial learning rate, "
          "but its behaviour is more symmetric.", f"{SOURCE}, section 4, Figure 4", _on_vgg(check_adam_more_symmetric)),
    Claim("resnet-wider-valley", N07,
          "All the three gradient methods exhibit a wider valley around the best learning rate value [on ResNet18 "
          "than on VGG16]: it is easier to tune the learning rate for a ResNet18.", f"{SOURCE}, section 4, Figures 4-5",
          check_resnet_wider_valley),
    Claim("adam-as-hard-to-tune-as-sgd", N07,
          "ADAM with a constant stepsize is as difficult to tune as stochastic gradient.",
          f"{SOURCE}, section 4, Figures 4-5", check_adam_as_hard_as_sgd),
    Claim("decay-raises-best-lr", N07,
          "For all these experiments, lr-decay moves the best learning rate value to a higher one.",
          f"{SOURCE}, section 4.1, Figure 6", check_decay_raises_best_lr),
    Claim("decay-improves-sgd", N07,
          "Concerning the VGG architecture, for SGD and SGDN, lr-decay improves over their performance with the best "
          "constant stepsize.", f"{SOURCE}, section 4.1, Figure 6a", _on_vgg(check_decay_improves_sgd)),
    Claim("decay-steeper-right-of-best", N07,
          "[For SGD and SGDN on VGG, lr-decay's improvement comes] at the expense of a much sharper slope at the "
          "right of its own new best learning rate.", f"{SOURCE}, section 4.1, Figure 6a",
          _on_vgg(check_decay_steeper_right)),
    Claim("decay-eases-adam", N07,
          "For ADAM, lr-decay decreases the sensitivity at the right of best stepsize, which makes tuning less "
          "challenging for ADAM-decay than SGD/SGDN-decay.", f"{SOURCE}, section 4.1, Figure 6a",
          _on_vgg(check_decay_eases_adam)),
    Claim("decay-harmless-at-small-lr", N07,
          "For smaller scales of the learning rate lr-decay is not penalizing the performance.",
          f"{SOURCE}, section 4.1, Figure 6a", _on_vgg(check_decay_harmless_small_lr)),
    Claim("resnet-decay-flattens-adam", N07,
          "For ResNet18, lr-decay seems to significantly decrease the sensitivity for ADAM, by flattening its "
          "U-shaped sensitivity curve.", f"{SOURCE}, section 4.1, Figure 6b", check_resnet_decay_flattens_adam),
    Claim("hd-robust-to-alpha0", N07,
          "Hypergradient methods have a low sensitivity to the choice of the stepsize alpha_0, for a fixed "
          "hypergradient learning rate beta: for several settings of beta, the performance is nearly constant.",
          f"{SOURCE}, section 4.2, Figure 7", _on_vgg(check_hd_robust_to_alpha0)),
    Claim("hd-needs-beta-tuned", N07,
          "To reach higher performance, tuning beta is crucial.", f"{SOURCE}, section 4.2, Figure 7",
          _on_vgg(check_hd_needs_beta)),
    Claim("sgdn-hd-least-sensitive", N07,
          "SGDN is the one [of the hypergradient methods] that is less sensitive to the tuning compared to "
          "stochastic gradient and Adam.", f"{SOURCE}, section 4.2, Figure 7", _on_vgg(check_sgdn_hd_least_sensitive)),
]
