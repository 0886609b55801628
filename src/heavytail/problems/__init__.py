"""Problems (data + model + loss) and the registry that names them for specs and the CLI."""

from heavytail.problems.base import LossWeights, Problem, class_loss_weights
from heavytail.problems.gpt2 import GPT2WikiTextProblem
from heavytail.problems.linear import LinearProblem
from heavytail.problems.mnist import BarcodedOnlyProblem, MnistBarcodedProblem, MnistProblem
from heavytail.problems.ptb import PtbTwoLayer
from heavytail.problems.registry import make_problem_options, problem_names, register_problem
from heavytail.problems.tinyptb import TinyPtbLastLayer, TinyPtbOneLayer

register_problem("linear", LinearProblem)
register_problem("gpt2-wikitext", GPT2WikiTextProblem)
for _mnist_problem in (MnistProblem, MnistBarcodedProblem, BarcodedOnlyProblem):
    register_problem(_mnist_problem.name, _mnist_problem)
for _text_problem in (TinyPtbLastLayer, TinyPtbOneLayer, PtbTwoLayer):
    register_problem(_text_problem.name, _text_problem)

__all__ = [
    "BarcodedOnlyProblem",
    "GPT2WikiTextProblem",
    "LinearProblem",
    "LossWeights",
    "MnistBarcodedProblem",
    "MnistProblem",
    "Problem",
    "PtbTwoLayer",
    "TinyPtbLastLayer",
    "TinyPtbOneLayer",
    "class_loss_weights",
    "make_problem_options",
    "problem_names",
    "register_problem",
]
