"""The methods, each a factory returning a :class:`~hpolab.protocol.Method`.

``METHODS`` maps the names used by notebooks, histories and the widget panel to the
factories; :func:`make_method` builds one by name. The tuners of training runs
(:class:`~hpolab.hypergrad.task.InnerTask`) are here too: :func:`hypergradient_descent`
(any estimator of :mod:`hpolab.hypergrad`) and :func:`hoag` (HOAG, Pedregosa 2016).
"""

from hpolab.methods.accelerated_joint_descent import accelerated_joint_descent, unbiased_joint_gradient
from hpolab.methods.alternating import alternating_bayesian, alternating_zeroth_order
from hpolab.methods.hoag import hoag
from hpolab.methods.hypergradient_descent import hypergradient_descent
from hpolab.methods.joint_descent import gradientless_step, joint_descent
from hpolab.methods.online_hypergradient import learning_rate_problem, online_hypergradient
from hpolab.validation import check_choice

METHODS = {
    "jd": joint_descent,
    "ajd": accelerated_joint_descent,
    "alt-bo": alternating_bayesian,
    "alt-zo": alternating_zeroth_order,
}

USES_P = {"jd", "ajd"}  # the methods that take a gradient-step probability p


def make_method(name: str, **settings):
    """Build the method called ``name`` with the given settings (``p=...``, ``mu=...``)."""
    check_choice("method", name, METHODS)
    return METHODS[name](**settings)


__all__ = [
    "METHODS",
    "USES_P",
    "make_method",
    "joint_descent",
    "accelerated_joint_descent",
    "alternating_bayesian",
    "alternating_zeroth_order",
    "gradientless_step",
    "hoag",
    "hypergradient_descent",
    "learning_rate_problem",
    "online_hypergradient",
    "unbiased_joint_gradient",
]
