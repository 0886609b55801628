"""Optimizers of the paper and the registry that names them."""

from heavytail.optim.registry import (
    OptimizerEntry,
    make_optimizer,
    optimizer_entries,
    optimizer_kwargs,
    optimizer_names,
    register_optimizer,
    resolve_optimizer,
)
from heavytail.optim.rules import GD, AdaGrad, Adam, DirectionOptimizer, NormalizedGD, SignDescent

__all__ = [
    "GD",
    "AdaGrad",
    "Adam",
    "DirectionOptimizer",
    "NormalizedGD",
    "OptimizerEntry",
    "SignDescent",
    "make_optimizer",
    "optimizer_entries",
    "optimizer_kwargs",
    "optimizer_names",
    "register_optimizer",
    "resolve_optimizer",
]
