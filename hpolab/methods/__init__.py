"""The methods, each a factory returning a :class:`~hpolab.protocol.Method`.

``METHODS`` maps the names used by notebooks, histories and the widget panel to the
factories; :func:`make_method` builds one by name. The tuners of training runs
(:class:`~hpolab.hypergrad.task.InnerTask`) have their registry, ``TUNERS``, of factories
``(task, hyper, limits, **settings) -> Method``: gradient-based tuning with any estimator of
:mod:`hpolab.hypergrad` (:func:`hypergradient_tuning`), FDS (its sign step, :func:`fds_tuning`),
HOAG (Pedregosa 2016), Self-Tuning Networks (:func:`stn_tuning`, a learned best response) and
the black-box searches (random search, Bayesian optimization, Hyperband, BOHB);
:func:`make_tuner` builds one by name. ``tests/test_methods.py`` and ``tests/test_tuners.py``
run every entry of the two registries through :func:`hpolab.run`.
"""

from hpolab.methods.accelerated_joint_descent import accelerated_joint_descent, unbiased_joint_gradient
from hpolab.methods.alternating import alternating_bayesian, alternating_zeroth_order
from hpolab.methods.fds import fds_tuning
from hpolab.methods.hoag import hoag
from hpolab.methods.blackbox import BLACKBOX_METHODS
from hpolab.methods.hypergradient_tuning import hypergradient_tuning
from hpolab.methods.joint_descent import gradientless_step, joint_descent
from hpolab.methods.online_hypergradient import learning_rate_problem, online_hypergradient
from hpolab.methods.stn import stn_tuning
from hpolab.validation import check_choice

METHODS = {
    "jd": joint_descent,
    "ajd": accelerated_joint_descent,
    "alt-bo": alternating_bayesian,
    "alt-zo": alternating_zeroth_order,
}

TUNERS = {
    "hypergradient": hypergradient_tuning,
    "fds": fds_tuning,
    "hoag": hoag,
    "stn": stn_tuning,
    **BLACKBOX_METHODS,
}

USES_P = {"jd", "ajd"}  # the methods that take a gradient-step probability p


def make_method(name: str, **settings):
    """Build the method called ``name`` with the given settings (``p=...``, ``mu=...``)."""
    check_choice("method", name, METHODS)
    return METHODS[name](**settings)


def make_tuner(name: str, task, hyper, limits, **settings):
    """Build the tuner called ``name`` for ``task``'s hyperparameters ``hyper.learn`` in ``limits``."""
    check_choice("tuner", name, TUNERS)
    return TUNERS[name](task, hyper, limits, **settings)


__all__ = [
    "METHODS",
    "TUNERS",
    "make_tuner",
    "hypergradient_tuning",
    "fds_tuning",
    "stn_tuning",
    "USES_P",
    "make_method",
    "joint_descent",
    "accelerated_joint_descent",
    "alternating_bayesian",
    "alternating_zeroth_order",
    "gradientless_step",
    "hoag",
    "learning_rate_problem",
    "online_hypergradient",
    "unbiased_joint_gradient",
]
