"""Problems (data + model + loss) and the registry that names them for specs and the CLI."""

from heavytail.problems.base import LossWeights, Problem, class_loss_weights
from heavytail.problems.gpt2 import GPT2WikiTextProblem
from heavytail.problems.linear import LinearProblem
from heavytail.problems.mnist import BarcodedOnlyProblem, MnistBarcodedProblem, MnistProblem
from heavytail.problems.ptb import PtbTwoLayer
from heavytail.problems.registry import make_problem_options, problem_names, register_problem

register_problem("linear", LinearProblem)
register_problem("gpt2-wikitext", GPT2WikiTextProblem)
for _mnist_problem in (MnistProblem, MnistBarcodedProblem, BarcodedOnlyProblem):
    register_problem(_mnist_problem.name, _mnist_problem)
register_problem(PtbTwoLayer.name, PtbTwoLayer)

__all__ = [
    "BarcodedOnlyProblem",
    "GPT2WikiTextProblem",
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
