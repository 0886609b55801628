"""Problems (data + model + loss) and the registry that names them for specs and the CLI."""

from heavytail.problems.base import Problem, class_loss_weights
from heavytail.problems.linear import LinearProblem
from heavytail.problems.registry import make_problem_options, problem_names, register_problem

register_problem("linear", LinearProblem)

__all__ = [
    "LinearProblem",
    "Problem",
    "class_loss_weights",
    "make_problem_options",
    "problem_names",
    "register_problem",
]
