"""Problems: an objective f(x, y) and what methods need to know about it."""

from hpolab.problems.base import Problem
from hpolab.problems.quadratic import sphere
from hpolab.validation import check_choice

FUNCTIONS = {
    "sphere": lambda **kw: sphere(ill_conditioned=False, **kw),
    "ill-conditioned sphere": lambda **kw: sphere(ill_conditioned=True, **kw),
}


def make_problem(function: str, **kwargs) -> Problem:
    """Build a named problem (``"sphere"`` or ``"ill-conditioned sphere"``)."""
    check_choice("function", function, FUNCTIONS)
    return FUNCTIONS[function](**kwargs)


__all__ = ["Problem", "sphere", "make_problem", "FUNCTIONS"]
