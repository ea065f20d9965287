"""Hypergradients of a validation loss with respect to the hyperparameters of a training run.

Every estimator has one interface, ``estimate(task, hyperparameters, seed) -> Hypergradient``
(validation loss, hypergradient, cost record):

======================  =================================================================================
``forward``             forward mode, memory independent of T; FDS with windows W, RFHO FOR with W = 1
``greedy``              forward mode over chunks of H steps (H = 1: hypergradient descent's setting)
``reverse``             backpropagation through the unrolled run (RFHO REV); memory grows with T
``unrolled-forward``    forward mode through any inner optimizer (SGD, Adam); memory flat in T
``implicit``            HOAG: implicit differentiation at the L-BFGS minimizer (training-loss terms only)
``zeroth-order``        HOZOG: q + 1 trainings, batched with vmap
======================  =================================================================================
"""

import warnings

from hpolab.hypergrad.forward import forward_mode, greedy
from hpolab.hypergrad.hyperparameters import SCHEDULES, Hyperparameters, schedule
from hpolab.hypergrad.implicit import implicit
from hpolab.hypergrad.outer import OuterState, OuterUpdate, box, gradient_descent, per_entry, sign_descent
from hpolab.hypergrad.result import Estimator, Hypergradient
from hpolab.hypergrad.reverse import reverse_mode
from hpolab.hypergrad.task import FlatModel, InnerTask, classification_task
from hpolab.hypergrad.unroll import train
from hpolab.hypergrad.unrolled_forward import unrolled_forward
from hpolab.hypergrad.zeroth_order import validation_losses, zeroth_order
from hpolab.validation import check_choice

# torch.func's first jvp imports a deprecated torch.jit helper whose warning carries an
# absolute path (it would make notebook outputs differ between checkouts).
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)

ESTIMATORS = {
    "forward": forward_mode,
    "greedy": greedy,
    "reverse": reverse_mode,
    "unrolled-forward": unrolled_forward,
    "implicit": implicit,
    "zeroth-order": zeroth_order,
}


def make_estimator(name: str, **settings) -> Estimator:
    """The estimator called ``name`` (see the table above) with its settings."""
    check_choice("estimator", name, ESTIMATORS)
    return ESTIMATORS[name](**settings)


__all__ = [
    "ESTIMATORS", "SCHEDULES", "Estimator", "FlatModel", "Hypergradient", "Hyperparameters", "InnerTask",
    "OuterState", "OuterUpdate", "box", "classification_task", "forward_mode", "gradient_descent", "greedy",
    "implicit", "make_estimator", "per_entry", "reverse_mode", "schedule", "sign_descent", "train",
    "unrolled_forward", "validation_losses", "zeroth_order",
]
