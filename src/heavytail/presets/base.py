"""What a preset declares: one paper figure as data (problem, optimizers, grids, steps, scales)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Literal, Mapping

from heavytail.options import ConfigError
from heavytail.problems import make_problem_options
from heavytail.sweep.protocol import GridConfig

CPU_GFLOPS = 125.0  # rates assumed by cost estimates: float32 GEMM on a 2-core laptop CPU,
GPU_GFLOPS = 40_000.0  # and float32 (no TF32) on one H100
FigureKind = Literal["groups", "horizons", "overall"]


@dataclass(frozen=True)
class Curve:
    """One optimizer of a figure: its step size comes from the protocol over ``grid``, or is ``fixed``."""

    optimizer: str
    grid: GridConfig | None = None
    fixed: Fraction | None = None  # exponent e of a step size 10^e fixed by the paper
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.grid is None) == (self.fixed is None):
            raise ValueError(f"curve {self.optimizer!r} needs exactly one of grid= or fixed=")

    def expected_runs(self) -> int:
        """Runs a sweep of this curve needs when no grid extension is necessary."""
        if self.grid is None:
            return 1
        g = self.grid
        sparse = (g.hi - g.lo + 1) * len(g.sparse_seeds)
        low, high = g.bounds
        window = min(2 * math.floor(2 * g.dense_radius), 2 * (high - low)) + 1  # half powers within the radius
        integers = min(2 * math.floor(g.dense_radius), high - low) + 1  # of which integer powers (run in the sparse pass)
        shared = len(set(g.sparse_seeds) & set(g.dense_seeds))
        return sparse + window * len(g.dense_seeds) - integers * shared


@dataclass(frozen=True)
class Scale:
    """Sizes and horizon of one scale of a preset, and its curves (label -> curve).

    The horizon is ``steps`` optimizer steps, or ``epochs`` passes over the data (mini-batch
    presets; the runs' steps are then counted from the data once per problem). ``batch_size``
    None trains full batch.
    """

    problem_options: Mapping[str, Any]
    steps: int = 0
    curves: Mapping[str, Curve] = field(default_factory=dict)
    horizons: tuple[int, ...] = ()  # steps at which the figure shows the curves ("horizons" figures)
    show_steps: int | None = None  # the figure's x-range (None: all steps)
    variant_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # label -> options at this scale only
    batch_size: int | None = None  # samples per step (None: full batch)
    checkpoint_every: int | None = None  # default --checkpoint-every of the scale's runs (long runs)
    epochs: int | None = None  # horizon in epochs instead of steps

    def __post_init__(self) -> None:
        if (self.steps > 0) == (self.epochs is not None):
            raise ValueError(f"a scale needs exactly one horizon: steps={self.steps}, epochs={self.epochs}")


@dataclass(frozen=True)
class Preset:
    """A paper figure: problem(s), scales, and how its figure is drawn. ``variants`` compares problems."""

    name: str
    title: str
    v1_figure: str
    neurips_figure: str
    scales: Mapping[str, Scale]
    problem: str = "linear"
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # label -> extra problem options
    variant_problems: Mapping[str, str] = field(default_factory=dict)  # label -> problem, for variants that are other problems
    figure: FigureKind = "groups"
    aliases: tuple[str, ...] = ()
    notes: str = ""

    def scale(self, name: str) -> Scale:
        try:
            return self.scales[name]
        except KeyError:
            raise ConfigError(f"unknown scale {name!r} for preset {self.name!r}; choose one of: {', '.join(self.scales)}") from None

    def problem_name(self, label: str) -> str:
        """The registered problem a variant (or the single problem) trains."""
        return self.variant_problems.get(label, self.problem)

    def problems(self, scale: str) -> dict[str, dict[str, Any]]:
        """Problem label -> full problem options; a single-problem preset has the label ``problem``."""
        s = self.scale(scale)
        base = dict(s.problem_options)
        if not self.variants:
            return {self.problem: base}
        return {label: {**base, **extra, **s.variant_options.get(label, {})} for label, extra in self.variants.items()}

    def cost(self, scale: str) -> dict[str, Any]:
        """Expected number of runs, total FLOPs and minutes on a 2-core CPU (before any grid extension)."""
        s = self.scale(scale)
        runs = flops = cpu_seconds = 0.0
        for label, options in self.problems(scale).items():
            problem = make_problem_options(self.problem_name(label), options)
            per_sample = getattr(problem, "flops_per_sample", None)  # mini-batch cost, where the problem declares it
            per_step = s.batch_size * per_sample() if s.batch_size is not None and per_sample else problem.flops_per_step()
            passes = s.steps
            if s.epochs is not None:  # an epoch of mini-batches costs about one full-batch step
                per_step, passes = problem.flops_per_step(), s.epochs
            for curve in s.curves.values():
                runs += curve.expected_runs()
                flops += curve.expected_runs() * passes * per_step
                cpu_seconds += curve.expected_runs() * passes * per_step / (getattr(problem, "cpu_gflops", CPU_GFLOPS) * 1e9)
        return {
            "runs": int(runs),
            "tflop": flops / 1e12,
            "cpu_minutes": cpu_seconds / 60,
            "gpu_minutes": flops / (GPU_GFLOPS * 1e9) / 60,
        }


StudyCompute = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Study:
    """A paper figure computed by a function instead of a step-size sweep (statistics, analyses, theory).

    ``compute(params, *, store, out, device, progress)`` gets the scale's parameters, does the work
    (training runs go through :func:`heavytail.run` and the store like any other), draws its figure(s)
    under ``out`` and returns the summary: JSON-ready, with ``figures`` (paths) among its keys.
    ``minutes`` declares the expected cost per scale for ``reproduce --list``:
    ``{"small": (cpu_minutes, gpu_minutes), ...}``.
    """

    name: str
    title: str
    v1_figure: str
    neurips_figure: str
    scales: Mapping[str, Mapping[str, Any]]
    compute: StudyCompute
    minutes: Mapping[str, tuple[float, float]]
    aliases: tuple[str, ...] = ()
    notes: str = ""

    def scale(self, name: str) -> Mapping[str, Any]:
        try:
            return self.scales[name]
        except KeyError:
            raise ConfigError(f"unknown scale {name!r} for preset {self.name!r}; choose one of: {', '.join(self.scales)}") from None

    def cost(self, scale: str) -> dict[str, Any]:
        """The declared cost, in the same keys as :meth:`Preset.cost` (no sweep: ``runs`` counts 0)."""
        self.scale(scale)
        cpu, gpu = self.minutes.get(scale, (float("nan"), float("nan")))
        return {"runs": 0, "tflop": float("nan"), "cpu_minutes": cpu, "gpu_minutes": gpu}
