"""Problems (data + model + loss) and the registry that names them for specs and the CLI."""

from heavytail.problems.base import LossWeights, Problem, class_loss_weights
from heavytail.problems.linear import LinearProblem
from heavytail.problems.mnist import BarcodedOnlyProblem, MnistBarcodedProblem, MnistProblem
from heavytail.problems.registry import make_problem_options, problem_names, register_problem
from heavytail.problems.ptb import PtbTwoLayer  # after the registry: data.text imports the store, whose specs need it

register_problem("linear", LinearProblem)
for _mnist_problem in (MnistProblem, MnistBarcodedProblem, BarcodedOnlyProblem):
    register_problem(_mnist_problem.name, _mnist_problem)
register_problem(PtbTwoLayer.name, PtbTwoLayer)

__all__ = [
    "BarcodedOnlyProblem",
    "LinearProblem",
    "LossWeights",
    "MnistBarcodedProblem",
    "MnistProblem",
    "Problem",
    "PtbTwoLayer",
    "class_loss_weights",
    "make_problem_options",
    "problem_names",
    "register_problem",
]
