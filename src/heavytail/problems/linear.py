"""Softmax regression on Random Heavy-Tailed Labels: the paper's linear-model experiments."""

from __future__ import annotations

import os
import typing
from dataclasses import dataclass
from typing import ClassVar

import torch

from heavytail.data.synthetic import InputLaw, random_heavy_tailed_labels
from heavytail.models.linear import Init, linear_model
from heavytail.options import ConfigError
from heavytail.problems.base import LossWeights, Problem
from heavytail.seeding import derive_seed


@dataclass(frozen=True)
class LinearProblem(LossWeights):
    """Linear model + bias, cross-entropy, on Random Heavy-Tailed Labels with ``m`` groups.

    m = 11 is the paper's large problem, m = 7 its code's small one; the default m = 8 runs a
    full-batch step in tens of milliseconds on a laptop CPU. ``loss_weights`` = p weights class k
    by 1/pi_k^p (p = 1/2 and 1 in the paper; ``reweight``, its former name, still reads).
    """

    m: int = 8
    inputs: InputLaw = "uniform"
    mean: float = 0.0
    scale: float = 1.0
    d: int | None = None
    bias: bool = True
    init: Init = "default"

    renamed_options: ClassVar[dict[str, str]] = {"reweight": "loss_weights"}

    def __post_init__(self) -> None:
        if not 1 <= self.m <= 16:
            raise ConfigError(f"bad linear problem option m={self.m}; expected 1 <= m <= 16")
        if self.d is not None and self.d < 1:
            raise ConfigError(f"bad linear problem option d={self.d}; expected d >= 1")
        for name, value, choices in (("inputs", self.inputs, typing.get_args(InputLaw)), ("init", self.init, typing.get_args(Init))):
            if value not in choices:
                raise ConfigError(f"bad linear problem option {name}={value!r}; choose one of: {', '.join(choices)}")
        if self.inputs == "uniform" and (self.mean, self.scale) != (0.0, 1.0):
            raise ConfigError(
                f"linear problem options mean={self.mean} and scale={self.scale} need inputs=gaussian (inputs=uniform is U[0, 1])"
            )

    def sizes(self) -> tuple[int, int, int]:
        """(n, d, c) of the data this builds, without building it."""
        return self.m * 2**self.m, self.d or (self.m + 1) * 2**self.m, 2**self.m - 1

    def flops_per_step(self) -> float:
        """Floating-point operations of one full-batch step: forward and weight-gradient GEMMs, 2ndc each."""
        n, d, c = self.sizes()
        return 4.0 * n * d * c

    def build(self, seed: int) -> Problem:
        """Draw the data and initialise the model from independent streams of ``seed`` (on the CPU)."""
        n, d, _ = self.sizes()
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else None
        if available is not None and 4 * n * d > available:
            raise ConfigError(
                f"linear problem m={self.m} needs {4 * n * d / 2**30:.1f} GiB for its inputs; "
                f"this machine has {available / 2**30:.1f} GiB free (use a smaller m or d)"
            )
        data = random_heavy_tailed_labels(
            self.m, d=self.d, inputs=self.inputs, mean=self.mean, scale=self.scale, seed=derive_seed(seed, "data")
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "model"))
            model = linear_model(data.x.shape[1], data.num_classes, bias=self.bias, init=self.init)
        n, d = data.x.shape
        info = {"n": n, "d": d, "c": data.num_classes}
        return self.weighted(Problem(model=model, x=data.x, y=data.y, num_classes=data.num_classes, info=info))
