"""Named problems: a problem is a frozen options dataclass with ``build(seed) -> Problem``."""

from __future__ import annotations

from typing import Any, Mapping, Protocol

from heavytail.options import ConfigError, build_options
from heavytail.problems.base import Problem


class ProblemOptions(Protocol):
    """A frozen dataclass of problem options that can build the problem for a seed.

    It may declare ``cpu_gflops``, the float32 rate its steps reach on a 2-core CPU, when that is far
    from the GEMM rate cost estimates assume (small convolutions, for example).
    """

    def build(self, seed: int) -> Problem: ...

    def flops_per_step(self) -> float:
        """Rough cost of one full-batch optimizer step, for the cost estimates of presets.

        Problems trained on mini-batches may also define ``flops_per_sample()``; presets with a batch
        size use it (else this full-batch cost, an upper bound)."""
        ...


_PROBLEMS: dict[str, type] = {}


def register_problem(name: str, options_cls: type) -> None:
    """Make ``options_cls`` available as problem ``name`` in specs, presets and the CLI."""
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
    return build_options(problem_class(name), values or {}, f"{name} problem")
