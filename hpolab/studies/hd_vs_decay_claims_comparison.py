"""The checks of study 06's claims (HD tuned against Baydin et al.'s setting, HD against
lr-decay, SGD against Adam): each reads the comparison of the tuned configurations
(``result.summary``) and, for one claim, the tuning grid (``result.tuning``). The claims
themselves are listed in :mod:`hpolab.studies.hd_vs_decay_claims`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hpolab.claims import untestable, verdict
from hpolab.studies.hd_vs_decay_claims_rules import _finite, _g, _most, below

HD_NAMES = ("SGD-HD", "SGDN-HD", "Adam-HD")


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
