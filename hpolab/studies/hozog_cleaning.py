"""Study 05: data hyper-cleaning on MNIST (HOZOG paper, section 3.3, Figure 3).

Half the training labels are replaced by random ones; softmax regression trains by plain
gradient descent (step 0.05) on the training loss with each example weighted by
sigmoid(lambda_g) of its group g, and tuning lowers the cross-entropy on a clean validation
set. HOZOG, random search, the BOHB-like method and reverse mode (REV) get the same wall time
per size. Shared pieces are in :mod:`hpolab.studies.hozog`.

The paper's setting and ours (docs/studies/05_hozog_hypercleaning.md has the full table):

* sizes (Ntr, Nval, Ntest, Nh) = (1000, 1000, 4000, 500) and (5000, 5000, 10000, 1250): the
  ``paper`` scale runs both, ``cpu`` the first; T = 4000 inner steps at ``paper``, 300 at
  ``cpu`` (a HOZOG step trains q + 1 = 6 models: at T = 4000 one step takes minutes on two cores).
* groups: a random partition of the training examples into Nh groups of equal size
  (Ntr / Nh = 2 or 4 examples each).
* HOZOG: q = 5 and mu = 1 (Table 2), directions uniform on the unit sphere with the factor
  p / (mu q) of Eq. 3. Table 2's gamma for this row is illegible in our copy of the paper, so
  gamma is picked by a pilot over a fixed grid (:data:`GAMMA_GRID`), for HOZOG and REV
  separately, each by its own validation loss after :data:`PILOT_STEPS` steps: never by
  comparing methods. The notebook shows every pilot run.
* lambda starts at 0 (weight 1/2) and is unbounded for HOZOG and REV (lambda in R^Nh, Eq. 6);
  random search and BOHB need a box and search lambda_g in [-6, 6] (weights 0.0025 to 0.9975).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import pandas as pd
import torch
from torch import nn

from hpolab import claims
from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.hypergrad import box, classification_task, schedule
from hpolab.problems.tuning import tuning_problem
from hpolab.progress import progress_bar
from hpolab.runner import run
from hpolab.splits import Split
from hpolab.studies.common import StudyResult, check_scale
from hpolab.validation import check_count, check_positive
from hpolab.studies.hozog import (
    LABELS, _gamma_slider, _seconds_box, device_replicas, hozog_executor, seconds_per_step,
    tuning_method, with_suboptimality,
)
from hpolab.seeding import global_seed


class Size(NamedTuple):
    """One data hyper-cleaning problem and its budget."""

    n_train: int
    n_val: int
    n_test: int
    groups: int  # Nh, the number of hyperparameters
    horizon: int  # T, inner gradient-descent steps
    seconds: float | None  # wall time per method; None: a budget in training steps (smoke, deterministic)


CLEANING_SIZES = {
    "smoke": [Size(200, 200, 400, 50, 20, None)],
    "cpu": [Size(1000, 1000, 4000, 500, 300, 90.0)],
    "paper": [Size(1000, 1000, 4000, 500, 4000, 1200.0), Size(5000, 5000, 10000, 1250, 4000, 3600.0)],
}
CLEANING_METHODS = ("hozog", "random-search", "bohb", "reverse")
GRADIENT_METHODS = ("hozog", "reverse")
CLEANING_LR = 0.05  # the paper's inner gradient-descent step
CLEANING_Q = 5  # Table 2
CLEANING_MU = 1.0  # Table 2
GAMMA_GRID = (10.0, 100.0, 1000.0, 10000.0)  # decades; the pilot extends it while its best lies on an edge
PILOT_STEPS = {"smoke": 2, "cpu": 3, "paper": 10}  # outer steps of each pilot run (the first trains at lambda_0)
GRID_EXTENSIONS = 2  # decades added to the grid while the best gamma lies on its edge
SMOKE_STEPS = 4  # smoke budgets: the training steps of 4 HOZOG meta-iterations, for every method
CLEANING_BOX = (-6.0, 6.0)  # range of each group's logit lambda_g for the black-box methods
EARLY_FRACTION = 0.1  # "the early stage" of the REV comparison: the first 10 % of the wall time
_SPLITS: dict = {}


@dataclass(frozen=True)
class Cleaning:
    """MNIST with half the training labels replaced by random ones, examples in random groups."""

    split: Split
    groups: torch.Tensor  # group of each training example
    corrupted: torch.Tensor  # bool per training example: its label was replaced
    group_corrupted: torch.Tensor  # bool per group: most of its examples are corrupted


def random_groups(n_examples: int, n_groups: int, generator: torch.Generator) -> torch.Tensor:
    """A random partition of ``n_examples`` into ``n_groups`` groups whose sizes differ by at
    most one (every group holds examples, so every lambda_g acts on the training loss)."""
    check_count("n_groups", n_groups, minimum=1)
    if n_groups > n_examples:
        raise ValueError(f"n_groups must be <= the {n_examples} training examples, got {n_groups}")
    groups = torch.empty(n_examples, dtype=torch.long)
    groups[torch.randperm(n_examples, generator=generator)] = torch.arange(n_examples) % n_groups
    return groups


def cleaning_data(n_train: int, n_val: int, n_test: int, n_groups: int, seed: int = 0, device="cpu") -> Cleaning:
    """Real MNIST (pixels in [0, 1], flattened), split without overlap; half the training
    examples, drawn at random, get a uniformly random label (possibly the right one, as in the
    paper); the examples fall into ``n_groups`` random groups of equal size."""
    from hpolab.data import as_tensors, load_mnist

    x, y = as_tensors(load_mnist(train=True))
    x_test, y_test = as_tensors(load_mnist(train=False), limit=n_test)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=generator)[: n_train + n_val]
    x, y = x.reshape(len(x), -1).double(), y
    train_idx, val_idx = order[:n_train], order[n_train:]
    labels = y[train_idx].clone()
    corrupted = torch.zeros(n_train, dtype=torch.bool)
    corrupted[torch.randperm(n_train, generator=generator)[: n_train // 2]] = True
    labels[corrupted] = torch.randint(0, 10, (int(corrupted.sum()),), generator=generator)
    groups = random_groups(n_train, n_groups, generator)
    share = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, groups, corrupted.double())
    sizes = torch.bincount(groups, minlength=n_groups).double()
    split = Split((x[train_idx].to(device), labels.to(device)), (x[val_idx].to(device), y[val_idx].to(device)),
                  (x_test.reshape(len(x_test), -1).double().to(device), y_test.to(device)), name="mnist-cleaning")
    return Cleaning(split, groups, corrupted, share > sizes / 2)


def cleaning_setting(data: Cleaning, horizon: int, lr: float = CLEANING_LR):
    """(task, hyperparameters): softmax regression trained by full-batch gradient descent, each
    example's loss weighted by sigmoid(lambda_g) of its group, lambda = 0 to start."""
    with global_seed(0):  # the template's weights; every training draws its own from its seed
        module = nn.Linear(784, 10)
    task = classification_task(module, data.split.train, data.split.val, batch_size=None,
                               example_groups=data.groups, dtype=torch.float64,
                               device=data.split.train[0].device, name="mnist-cleaning")
    n_groups = int(data.group_corrupted.numel())
    hyper = schedule(horizon, lr=lr, learn=("example_weights",),
                     example_weights=torch.zeros(n_groups, dtype=torch.float64))
    return task, hyper


def cleaning_quality(history: History, data: Cleaning) -> dict:
    """Precision and recall of the groups with weight below 1/2 (lambda < 0) as the corrupted
    ones, at the history's lowest validation loss."""
    frame = history.frame
    row = frame.loc[frame["objective"].idxmin()]
    names = [c for c in frame.columns if c.startswith("example_weights[")]
    flagged = torch.tensor(row[names].to_numpy(dtype=float) < 0)
    truth = data.group_corrupted
    true_positive = int((flagged & truth).sum())
    precision = true_positive / int(flagged.sum()) if flagged.any() else math.nan
    recall = true_positive / int(truth.sum()) if truth.any() else math.nan
    return {"precision": precision, "recall": recall, "flagged": int(flagged.sum())}


def _method(name: str, task, hyper, q: int, mu: float, gamma: float, replicas=None, executor=None):
    """A study method: the gradient-based ones unbounded (lambda in R^Nh), the black-box ones in
    :data:`CLEANING_BOX`."""
    limits = None if name in GRADIENT_METHODS else box(hyper, {"example_weights": CLEANING_BOX})
    return tuning_method(name, task, hyper, limits, q, mu, gamma, directions="sphere", replicas=replicas,
                         executor=executor)


def _steps(count: int):
    """``should_stop`` for the runner: true once ``count`` outer steps have been taken."""
    taken = [0]

    def should_stop() -> bool:
        taken[0] += 1
        return taken[0] >= count

    return should_stop


def pick_gamma(method: str, task, hyper, problem, steps: int, q: int = CLEANING_Q, mu: float = CLEANING_MU,
               gammas: Sequence[float] = GAMMA_GRID, extend: int = GRID_EXTENSIONS) -> tuple[float, list[dict]]:
    """The step gamma for ``method`` (HOZOG or REV): each gamma of the grid runs ``steps`` outer
    steps, and the one with the lowest validation loss found wins (ties: the smaller gamma; a
    diverged run counts as infinite). While the winner is the grid's largest or smallest value
    and beats its neighbour, the grid grows by a factor 10 on that side, at most ``extend``
    times. The first step trains at the starting lambda, so ``steps`` >= 2. Only the method's own
    objective decides. Returns the gamma and one row per pilot run."""
    check_count("steps", steps, minimum=2)
    rows: list[dict] = []

    def trial(gamma: float) -> None:
        history = run(_method(method, task, hyper, q, mu, gamma), problem, None, seed=0, should_stop=_steps(steps))
        best = float(history.frame["best_objective"].iloc[-1])
        rows.append({"method": LABELS[method], "gamma": float(gamma), "steps": len(history.frame) - 1,
                     "start val loss": float(history.frame["objective"].iloc[0]),
                     "best val loss": math.inf if history.status == "diverged" else best,
                     "seconds": float(history.frame["wall_time"].iloc[-1])})

    def winner() -> dict:
        return min(rows, key=lambda row: (row["best val loss"], row["gamma"]))

    for gamma in sorted(gammas):
        trial(gamma)
    for _ in range(extend):
        ranked = sorted(rows, key=lambda row: row["gamma"])
        best = winner()
        if best is ranked[-1] and best["best val loss"] < ranked[-2]["best val loss"]:
            trial(best["gamma"] * 10)
        elif best is ranked[0] and best["best val loss"] < ranked[1]["best val loss"]:
            trial(best["gamma"] / 10)
        else:
            break
    chosen = winner()
    for row in rows:
        row["chosen"] = row is chosen
    return chosen["gamma"], rows


def run_study(scale: str = "cpu", methods: Sequence[str] = CLEANING_METHODS, q: int = CLEANING_Q,
                       mu: float = CLEANING_MU, gamma: float | None = None, seconds: float | None = None,
                       device: str = "cpu", address: str = "", progress: bool = True,
                       gammas: Sequence[float] = GAMMA_GRID) -> StudyResult:
    """Study 05: HOZOG (q directions on the unit sphere, Eq. 3) against random search, the
    BOHB-like method and reverse mode, for the same wall time per size.

    Args:
      gamma: the outer step of HOZOG and REV; None picks one per method and size by
        :func:`pick_gamma` over ``gammas`` (Table 2's value is illegible in our copy).
      seconds: wall time per method and size (None: the scale's, see :data:`CLEANING_SIZES`).
    """
    check_scale(scale)
    check_count("q", q, minimum=1)
    check_positive("mu", mu)
    if gamma is not None:
        check_positive("gamma", gamma)
    for name in methods:
        if name not in CLEANING_METHODS:
            raise ValueError(f"method must be one of {sorted(CLEANING_METHODS)}, got {name!r}")
    torch_device = resolve_device(device)
    histories, quality, pilots, chosen = [], [], [], {}
    sizes = CLEANING_SIZES[scale]
    with hozog_executor(address) as executor, \
            progress_bar(total=len(sizes) * len(methods), desc="runs", disable=not progress) as bar:
        for size in sizes:
            budget_seconds = size.seconds if seconds is None else check_positive("seconds", seconds)
            data = cleaning_data(size.n_train, size.n_val, size.n_test, size.groups, device=torch_device)
            task, hyper = cleaning_setting(data, size.horizon)
            problem = tuning_problem(task, hyper, test=data.split.test)
            replicas = device_replicas(lambda d: cleaning_setting(cleaning_data(
                size.n_train, size.n_val, size.n_test, size.groups, device=d), size.horizon)[0], torch_device)
            label = f"{size.groups} groups"
            steps = {}
            for name in (m for m in methods if m in GRADIENT_METHODS):
                if gamma is None:
                    steps[name], rows = pick_gamma(name, task, hyper, problem, PILOT_STEPS[scale], q, mu, gammas)
                    pilots += [{"size": label, **row} for row in rows]
                else:
                    steps[name] = gamma
            chosen[label] = {LABELS[name]: value for name, value in steps.items()}
            for name in methods:
                bar.set_postfix_str(f"{label}, {LABELS[name]}", refresh=False)
                method = _method(name, task, hyper, q, mu, steps.get(name, 1.0), replicas, executor)
                budget = None if budget_seconds else SMOKE_STEPS * (q + 1) * (size.horizon + 1)
                history = run(method, problem, budget, seed=0, max_seconds=budget_seconds)
                history.problem = label
                history.config.update({"method": name, "groups": size.groups, "n_train": size.n_train,
                                       "horizon": size.horizon, "seconds": budget_seconds})
                histories.append(history)
                quality.append(cleaning_quality(history, data))
                bar.update()
    with_suboptimality(histories)
    summary = pd.DataFrame([{
        "size": h.problem, "method": h.label, "gamma": chosen[h.problem].get(h.label, math.nan),
        "best val loss": float(h.frame["objective"].min()),
        "test error": float(h.frame.loc[h.frame["objective"].idxmin(), "test_error"]),
        "suboptimality": float(h.frame["suboptimality"].iloc[-1]), "steps": len(h.frame) - 1,
        "precision": q_["precision"], "recall": q_["recall"], "flagged groups": q_["flagged"],
    } for h, q_ in zip(histories, quality)])
    parameters = {"scale": scale, "methods": list(methods), "q": q, "mu": mu, "gamma": gamma,
                  "gamma_chosen": chosen, "gamma_pilot": pilots, "gammas": [float(g) for g in gammas],
                  "pilot_steps": PILOT_STEPS[scale], "seconds": seconds, "device": str(torch_device),
                  "address": address, "sizes": [s._asdict() for s in sizes]}
    return StudyResult(histories, summary, parameters)


def settings_table(scale: str) -> pd.DataFrame:
    """The setting a run at ``scale`` uses next to the paper's, one row per setting."""
    mine, paper = CLEANING_SIZES[check_scale(scale)], CLEANING_SIZES["paper"]

    def sizes(entries):
        return "; ".join(f"({s.n_train}, {s.n_val}, {s.n_test}, {s.groups})" for s in entries)

    rows = [("(Ntr, Nval, Ntest, Nh)", sizes(paper), sizes(mine)),
            ("inner solver", "gradient descent, step 0.05, 4000 steps",
             f"full-batch gradient descent, step {CLEANING_LR}, {mine[0].horizon} steps"),
            ("corrupted labels", "0.5 Ntr random labels", "0.5 Ntr random labels (uniform over 10 classes)"),
            ("groups", "Nh groups drawn at random", "random partition into Nh groups of equal size"),
            ("example weight", "sigmoid(lambda_g)", "sigmoid(lambda_g), lambda starts at 0"),
            ("HOZOG q, mu", "5, 1 (Table 2; mu from a garbled cell)", f"{CLEANING_Q}, {CLEANING_MU:g} (directions on the unit sphere)"),
            ("HOZOG and REV gamma", "illegible in our copy of Table 2",
             f"picked per method by a pilot over {[float(g) for g in GAMMA_GRID]}, {PILOT_STEPS[scale]} steps each"),
            ("box of lambda_g", "none (lambda in R^Nh)", f"none for HOZOG and REV; {list(CLEANING_BOX)} for RS and BOHB"),
            ("budget per method and size", "not stated (Figure 3's time axis)",
             "; ".join(f"{s.seconds:g} s" if s.seconds else f"{SMOKE_STEPS} HOZOG steps' training steps" for s in mine))]
    return pd.DataFrame(rows, columns=["setting", "paper", f"this run ({scale})"])


def costs(result: StudyResult) -> pd.DataFrame:
    """Wall time per outer step (a hypergradient, or a black-box trial) and per run, by size and
    method: the paper's 40 s (REV) against 24 s (HOZOG) at 1250 hyperparameters."""
    return pd.DataFrame([{"size": h.problem, "method": h.label, "steps": len(h.frame) - 1,
                          "seconds": float(h.frame["wall_time"].iloc[-1]), "s per step": seconds_per_step(h)}
                         for h in result.histories])


def pilot_table(result: StudyResult) -> pd.DataFrame:
    """The gamma pilot runs of a study result (empty when gamma was given); their wall times are
    in ``result.parameters["gamma_pilot"]``."""
    columns = ["size", "method", "gamma", "steps", "start val loss", "best val loss", "chosen"]
    return pd.DataFrame(result.parameters.get("gamma_pilot", []), columns=columns)


# ---------------------------------------------------------------------------------------------
# The paper's claims (section 3.3), checked on a study result


def _by_size(result) -> dict[str, dict[str, History]]:
    sizes: dict[str, dict[str, History]] = {}
    for h in result.histories:
        sizes.setdefault(h.problem, {})[h.label] = h
    return sizes


def _best(history: History) -> float:
    return float(history.frame["best_objective"].iloc[-1])


def _best_at(history: History, seconds: float) -> float:
    """The running best validation loss at wall time ``seconds`` (the start's value before any step)."""
    frame = history.frame
    seen = frame[frame["wall_time"] <= seconds]
    return float((seen if len(seen) else frame.iloc[:1])["best_objective"].iloc[-1])


def _compare(result, rival: str, better) -> claims.Verdict:
    """``better(hozog, rival) -> bool`` at every size run with both methods."""
    found, parts = [], []
    for size, runs in _by_size(result).items():
        if "HOZOG" in runs and rival in runs:
            hozog, other = runs["HOZOG"], runs[rival]
            found.append(bool(better(hozog, other)))
            parts.append(f"{size}: best val loss HOZOG {_best(hozog):.3g}, {rival} {_best(other):.3g}")
    if not found:
        return claims.untestable(f"HOZOG and {rival} were not both run")
    return claims.verdict(all(found), "; ".join(parts) + " (same wall time)")


def check_beats_random_search(result) -> claims.Verdict:
    return _compare(result, "RS", lambda hozog, other: _best(hozog) < _best(other))


def check_beats_bohb(result) -> claims.Verdict:
    return _compare(result, LABELS["bohb"], lambda hozog, other: _best(hozog) < _best(other))


def check_reverse_better_in_the_long_run(result) -> claims.Verdict:
    return _compare(result, "REV", lambda hozog, other: _best(other) < _best(hozog))


def _untimed(result, verdict: claims.Verdict) -> claims.Verdict:
    """``verdict``, except at smoke scale, where wall times differ between runs (and nbval
    compares the ledger): a fixed line instead."""
    if result.parameters.get("scale") == "smoke":
        return claims.untestable("wall times vary from run to run; not shown at smoke scale")
    return verdict


def check_hozog_faster_early(result) -> claims.Verdict:
    found, parts = [], []
    for size, runs in _by_size(result).items():
        if "HOZOG" in runs and "REV" in runs:
            hozog, rev = runs["HOZOG"], runs["REV"]
            early = EARLY_FRACTION * min(float(hozog.frame["wall_time"].iloc[-1]), float(rev.frame["wall_time"].iloc[-1]))
            a, b = _best_at(hozog, early), _best_at(rev, early)
            start = float(hozog.frame["objective"].iloc[0])
            if a == b == start:
                parts.append(f"{size}: neither method finished a step in the first {early:.3g} s")
                continue
            found.append(a < b)
            parts.append(f"{size}: best val loss at {early:.3g} s HOZOG {a:.3g}, REV {b:.3g}")
    if not found:
        return _untimed(result, claims.untestable("; ".join(parts) or "HOZOG and REV were not both run"))
    return _untimed(result, claims.verdict(all(found), "; ".join(parts)))


def check_reverse_costlier_per_hypergradient(result) -> claims.Verdict:
    runs = _by_size(result)
    both = [size for size, r in runs.items() if "HOZOG" in r and "REV" in r and len(r["HOZOG"].frame) > 1
            and len(r["REV"].frame) > 1]
    if not both:
        return claims.untestable("HOZOG and REV did not both take a step")
    size = max(both, key=lambda s: int(s.split()[0]))
    rev, hozog = seconds_per_step(runs[size]["REV"]), seconds_per_step(runs[size]["HOZOG"])
    return _untimed(result, claims.verdict(rev > hozog, f"{size}: {rev:.3g} s per hypergradient for REV, "
                                                        f"{hozog:.3g} s for HOZOG (ratio {rev / hozog:.3g}; "
                                                        f"paper 40 / 24 = 1.67)"))


SOURCE = "HOZOG, section 3.3, Figure 3"
NOTEBOOK = "05_hozog_hypercleaning"
CLAIMS = [
    claims.Claim("cleaning-hozog-beats-random-search", NOTEBOOK,
                 "HOZOG can beat RS easily (lower validation loss for the same wall time).", SOURCE,
                 check_beats_random_search),
    claims.Claim("cleaning-hozog-beats-bohb", NOTEBOOK,
                 "HOZOG can beat BOHB easily (lower validation loss for the same wall time).", SOURCE,
                 check_beats_bohb),
    claims.Claim("cleaning-rev-better-in-the-long-run", NOTEBOOK,
                 "HOZOG does not perform completely as good as REV in the long run (REV ends lower).", SOURCE,
                 check_reverse_better_in_the_long_run),
    claims.Claim("cleaning-hozog-faster-than-rev-early", NOTEBOOK,
                 "Our method converges faster than REV in the early stage of training (here: lower "
                 "best validation loss after the first 10 % of the wall time).", SOURCE,
                 check_hozog_faster_early),
    claims.Claim("cleaning-rev-costlier-per-hypergradient", NOTEBOOK,
                 "REV takes about 40 seconds to compute one hypergradient with 1250 hyperparameters, "
                 "HOZOG about 24 seconds (here: at the largest size run).", SOURCE,
                 check_reverse_costlier_per_hypergradient),
]


# ---------------------------------------------------------------------------------------------
# The panel


def cleaning_run_one(method: str = "hozog", q: int = CLEANING_Q, mu: float = CLEANING_MU, gamma: float = 1000.0,
                     seconds: float = 30.0, scale: str = "cpu", device: str = "cpu", callback=None,
                     should_stop=None) -> History:
    """One method on the scale's hyper-cleaning data for ``seconds`` (what the panel runs)."""
    size = CLEANING_SIZES[check_scale(scale)][0]
    key = (size.n_train, size.n_val, size.n_test, size.groups, str(resolve_device(device)))
    if key not in _SPLITS:
        _SPLITS[key] = cleaning_data(size.n_train, size.n_val, size.n_test, size.groups, device=resolve_device(device))
    data = _SPLITS[key]
    task, hyper = cleaning_setting(data, size.horizon)
    built = _method(method, task, hyper, q, mu, gamma)
    return run(built, tuning_problem(task, hyper, test=data.split.test), None, seed=0, max_seconds=seconds,
               callback=callback, should_stop=should_stop)


def cleaning_panel(values: dict | None = None, **overrides):
    """Study 05's widget panel, from the notebook's parameters (``globals()``) and ``overrides``:
    method, q, mu, scale, device, gamma, seconds."""
    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    extra = {"gamma": _gamma_slider(values.get("gamma") or 1000.0, 0, 4),
             "seconds": _seconds_box(values.get("seconds") or 30.0)}
    uses = {"hozog": {"q", "mu", "gamma"}, "reverse": {"gamma"}, "random-search": set(), "bohb": set()}
    return panel_for(cleaning_run_one, {LABELS[m]: m for m in CLEANING_METHODS}, uses, values, extra,
                     x="wall_time", y="objective", total=lambda s: s["seconds"])
