"""Named problems: a problem is a frozen options dataclass with ``build(seed) -> Problem``."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Protocol

from heavytail.options import ConfigError, build_options
from heavytail.problems.base import Problem, check_loss_weights


class ProblemOptions(Protocol):
    """A frozen dataclass of problem options that can build the problem for a seed.

    It inherits :class:`~heavytail.problems.base.LossWeights`, so every problem has ``loss_weights``;
    ``renamed_options`` (optional class attribute) maps old option names to current ones, so stored
    specs that use them still build. It may declare ``cpu_gflops``, the float32 rate its steps reach
    on a 2-core CPU, when that is far from the GEMM rate cost estimates assume (small convolutions,
    for example).
    """

    loss_weights: float

    def build(self, seed: int) -> Problem: ...

    def flops_per_step(self) -> float:
        """Rough cost of one full-batch optimizer step, for the cost estimates of presets.

        Problems trained on mini-batches may also define ``flops_per_sample()``; presets with a batch
        size use it (else this full-batch cost, an upper bound)."""
        ...


_PROBLEMS: dict[str, type] = {}


def register_problem(name: str, options_cls: type) -> None:
    """Make ``options_cls`` available as problem ``name`` in specs, presets and the CLI."""
    if "loss_weights" not in {f.name for f in dataclasses.fields(options_cls)}:
        raise ConfigError(f"problem {name!r}: options class {options_cls.__name__} has no loss_weights option; inherit heavytail.problems.LossWeights")
    _PROBLEMS[name] = options_cls


def problem_names() -> list[str]:
    return sorted(_PROBLEMS)


def problem_class(name: str) -> type:
    """The options class registered as ``name``."""
    try:
        return _PROBLEMS[name]
    except KeyError:
        raise ConfigError(f"unknown problem {name!r}; choose one of: {', '.join(problem_names())}") from None


def make_problem_options(name: str, values: Mapping[str, Any] | None = None) -> ProblemOptions:
    """Validated options of problem ``name`` from loosely typed values (e.g. ``-p m=8``)."""
    cls = problem_class(name)
    renamed: dict[str, str] = getattr(cls, "renamed_options", {})
    current: dict[str, Any] = {}
    given: dict[str, str] = {}  # current name -> the name it was given as
    for key, value in (values or {}).items():
        new = renamed.get(key, key)
        if new in current:
            raise ConfigError(f"{name} problem options {given[new]!r} and {key!r} are the same option; give one")
        current[new], given[new] = value, key
    options = build_options(cls, current, f"{name} problem")
    check_loss_weights(options, name)
    return options
