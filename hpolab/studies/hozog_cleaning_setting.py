"""Study 05's setting: the sizes per scale (:class:`Size`) and Table 2's settings, the MNIST
data with half its training labels corrupted and its examples in random groups
(:class:`Cleaning`), the task (softmax regression weighted by sigmoid(lambda_g)) and the
measure of how well a run flagged the corrupted groups. Kept apart from the run
(:mod:`hpolab.studies.hozog_cleaning`, which also builds the methods and holds the widget
panel) so that the run and the study's tables read one definition of the problem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from hpolab.history import History
from hpolab.hypergrad import classification_task, schedule
from hpolab.seeding import global_seed
from hpolab.splits import Split
from hpolab.validation import check_count


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
