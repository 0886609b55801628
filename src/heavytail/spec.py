"""Run specifications: everything that determines a run's result, hashed into its run id.

The id hashes the problem, optimizer, step size, steps and seed, plus only those options that differ
from their defaults, so adding an option with a default later keeps every stored id valid. How a run
is executed (device, chunking) is not part of it; the store records that beside the result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from heavytail.optim.registry import optimizer_kwargs, resolve_optimizer
from heavytail.options import ConfigError, literal, non_defaults
from heavytail.problems import make_problem_options
from heavytail.problems.base import Problem


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    return value


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """One training run: problem (with options), optimizer (with options), step size, steps, seed.

    ``batch_size=None`` is full-batch training; ``steps`` counts optimizer steps either way.
    """

    problem: str = "linear"
    problem_options: Mapping[str, Any] = field(default_factory=dict)
    optimizer: str
    optimizer_options: Mapping[str, Any] = field(default_factory=dict)
    lr: float
    steps: int
    seed: int = 0
    batch_size: int | None = None
    _normalized: bool = field(default=False, repr=False, compare=False)  # set on specs already validated

    def __post_init__(self) -> None:
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"bad learning rate {self.lr!r}; expected a positive number")
        if not isinstance(self.steps, int) or self.steps < 0:
            raise ConfigError(f"bad number of steps {self.steps!r}; expected an integer >= 0")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"bad batch size {self.batch_size!r}; expected an integer >= 1 or none (full batch)")
        object.__setattr__(self, "lr", float(self.lr))
        object.__setattr__(self, "problem_options", dict(self.problem_options))
        object.__setattr__(self, "optimizer_options", dict(self.optimizer_options))

    def normalized(self) -> RunSpec:
        """The same run with options validated, typed, and stripped of values equal to their defaults."""
        if self._normalized:
            return self
        problem_options = non_defaults(make_problem_options(self.problem, self.problem_options))
        defaults = resolve_optimizer(self.optimizer).default_options()
        optimizer_kwargs(self.optimizer, self.optimizer_options)  # validates option names and values, as given
        given = {key: literal(value) for key, value in self.optimizer_options.items()}
        optimizer_options = {
            key: value for key, value in given.items() if _jsonable(defaults.get(key, object())) != _jsonable(value)
        }
        return dataclasses.replace(
            self, problem_options=problem_options, optimizer_options=optimizer_options, _normalized=True
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the normalized spec (what the store writes and the run id hashes)."""
        spec = self.normalized()
        out: dict[str, Any] = {
            "problem": spec.problem,
            "optimizer": spec.optimizer,
            "lr": spec.lr,
            "steps": spec.steps,
            "seed": spec.seed,
        }
        if spec.problem_options:
            out["problem_options"] = _jsonable(spec.problem_options)
        if spec.optimizer_options:
            out["optimizer_options"] = _jsonable(spec.optimizer_options)
        if spec.batch_size is not None:
            out["batch_size"] = spec.batch_size
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, normalized: bool = False) -> RunSpec:
        """Rebuild a spec; ``normalized=True`` trusts ``data`` (a stored spec) instead of re-validating it,
        so a store stays readable where its runs' optimizers or problems cannot be imported."""
        return cls(**data, _normalized=normalized)

    @property
    def run_id(self) -> str:
        """16 hex digits of the SHA-256 of the normalized spec's canonical JSON."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def build_problem(self) -> Problem:
        """Data, model and loss of this run, deterministic given the seed (built on the CPU)."""
        return make_problem_options(self.problem, self.problem_options).build(self.seed)

    def label(self) -> str:
        """Short human-readable description, e.g. ``linear(m=9) adam+m lr=0.001 T=150 seed=0``."""
        spec = self.normalized()
        opts = ",".join(f"{k}={v}" for k, v in sorted(spec.problem_options.items()))
        oopts = "".join(f" {k}={v}" for k, v in sorted(spec.optimizer_options.items()))
        batch = "" if spec.batch_size is None else f" B={spec.batch_size}"
        return f"{spec.problem}({opts}) {spec.optimizer}{oopts} lr={spec.lr:.3g} T={spec.steps}{batch} seed={spec.seed}"


@dataclass(frozen=True, kw_only=True)
class TrackedSpec:
    """A run trained by the user's own loop and recorded by :class:`heavytail.GroupTracker`: a name and metadata.

    Stored beside :class:`RunSpec` runs; its ``spec.json`` says ``"kind": "tracked"``, which is how the
    store tells the two apart. The id hashes the name and metadata, so tracking again under the same
    name and metadata replaces the earlier run.
    """

    name: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"bad tracked run name {self.name!r}; expected a non-empty string")
        metadata = _jsonable(dict(self.metadata))
        try:
            json.dumps(metadata, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"metadata of tracked run {self.name!r} is not JSON ({exc}); use str, numbers, lists, dicts") from None
        object.__setattr__(self, "metadata", metadata)

    def normalized(self) -> TrackedSpec:
        return self

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "tracked", "name": self.name}
        if self.metadata:
            out["metadata"] = self.metadata
        return out

    @property
    def run_id(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def label(self) -> str:
        """The name and the metadata, e.g. ``my-gpt optimizer=adam lr=0.001``."""
        return self.name + "".join(f" {k}={v}" for k, v in sorted(self.metadata.items()))


def spec_from_dict(data: Mapping[str, Any]) -> RunSpec | TrackedSpec:
    """A stored spec: a tracked run's when it says ``"kind": "tracked"``, else a (trusted) :class:`RunSpec`."""
    if data.get("kind") == "tracked":
        return TrackedSpec(name=data["name"], metadata=data.get("metadata", {}))
    return RunSpec.from_dict(data, normalized=True)
