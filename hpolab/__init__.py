"""hpolab: training and tuning methods, the problems they solve, their histories and plots."""

from hpolab.devices import available_devices, resolve_device
from hpolab.history import History, combine
from hpolab.methods import (
    METHODS,
    accelerated_joint_descent,
    alternating_bayesian,
    alternating_zeroth_order,
    joint_descent,
    make_method,
)
from hpolab.oracle import Oracle
from hpolab.problems import Problem, make_problem, sphere
from hpolab.protocol import Cost, Method
from hpolab.runner import run
from hpolab.seeding import make_generator, seed_everything

__version__ = "0.1.0"

__all__ = [
    "Cost",
    "History",
    "METHODS",
    "Method",
    "Oracle",
    "Problem",
    "accelerated_joint_descent",
    "alternating_bayesian",
    "alternating_zeroth_order",
    "available_devices",
    "combine",
    "joint_descent",
    "make_generator",
    "make_method",
    "make_problem",
    "resolve_device",
    "run",
    "seed_everything",
    "sphere",
]
