"""MNIST, MNIST + Barcoded and Barcoded-only with the paper's CNN (v1 Figs 2, 11, 14; NeurIPS Fig 2).

The source split's images are permuted with the data seed; at paper scale (``source=train``) the first
50,000 form the pool the classes are drawn from, as in the authors' code; ``source=test`` (the
10,000 local test images) uses all of them. ``mnist`` keeps ``plain_per_digit`` pool images of each
digit (all when None); ``mnist-barcoded`` adds ``per_class`` stamped images for each of the
10·2^bits (code, digit) classes, labelled after the ten digits; ``barcoded-only`` has the stamped
classes alone (balanced).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from heavytail.data.barcode import barcoded_samples, barcodes
from heavytail.data.mnist import load_mnist
from heavytail.models.cnn import cnn, cnn_activation_bytes, cnn_flops_per_image
from heavytail.options import ConfigError, check_choice, check_range
from heavytail.problems.base import LossWeights, Problem
from heavytail.seeding import derive_seed

Source = Literal["train", "test"]
Normalize = Literal["per-pixel", "as-coded", "standard"]
POOL = {"train": 50_000, "test": 10_000}  # images the classes are drawn from (the rest of train is the paper's validation pool)
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def normalize_images(images: torch.Tensor, how: Normalize) -> torch.Tensor:
    """Float (n, 1, 28, 28) inputs from uint8 images.

    ``per-pixel``: each pixel standardised by the set's own mean and std (std 0 left unscaled), the
    barcoded datasets' rule; ``as-coded``: (x − 0.1307)/0.3081 on raw 0–255 pixels, what the authors'
    plain-MNIST loader does (decisions D8); ``standard``: the same on pixels scaled to [0, 1].
    """
    x = images.float()
    if how == "per-pixel":
        mean, std = x.mean(0), x.std(0)
        x = (x - mean) / torch.where(std > 0, std, torch.ones_like(std))
    elif how == "as-coded":
        x = (x - MNIST_MEAN) / MNIST_STD
    else:
        x = (x / 255 - MNIST_MEAN) / MNIST_STD
    return x.unsqueeze(1).contiguous()


def _check_range(problem: str, key: str, value: int, lo: int, hi: int) -> None:
    check_range(f"{problem} problem option", key, value, lo, hi)


@dataclass(frozen=True)
class _CnnOptions(LossWeights):
    """Options every MNIST problem has: the source split, preprocessing, CNN widths (and loss weights)."""

    source: Source = "train"
    normalize: Normalize = "per-pixel"
    width1: int = 32
    width2: int = 100

    renamed_options: typing.ClassVar[dict[str, str]] = {"reweight": "loss_weights"}
    name: typing.ClassVar[str]
    group_names: typing.ClassVar[tuple[str, ...] | None] = None  # natural groups: plain digits, then barcoded classes
    cpu_gflops: typing.ClassVar[float] = 85.0  # measured on 2 idle cores: cnn-barcoded small 25.5 TFLOP in 4.8 min, cnn-optimizers ~62 TFLOP in 10.7 min

    def __post_init__(self) -> None:
        for key, value, choices in (("source", self.source, Source), ("normalize", self.normalize, Normalize)):
            check_choice(f"{self.name} problem option", key, value, choices)
        _check_range(self.name, "width1", self.width1, 1, 4096)
        _check_range(self.name, "width2", self.width2, 1, 4096)
        if getattr(self, "plain_per_digit", None) is not None:
            _check_range(self.name, "plain_per_digit", self.plain_per_digit, 1, 10_000)  # type: ignore[attr-defined]
        if hasattr(self, "bits"):
            _check_range(self.name, "bits", self.bits, 1, 16)  # type: ignore[attr-defined]
            _check_range(self.name, "per_class", self.per_class, 1, 10_000)  # type: ignore[attr-defined]

    def _plain(self) -> bool:
        return hasattr(self, "plain_per_digit")

    def _codes(self) -> int:
        return len(barcodes(self.bits, self.zero_code)) if hasattr(self, "bits") else 0  # type: ignore[attr-defined]

    def sizes(self) -> tuple[int, int]:
        """(n, c) of the data this builds, without reading it (plain digits estimated at a tenth of the pool each)."""
        plain = 10 * (getattr(self, "plain_per_digit", None) or POOL[self.source] // 10) if self._plain() else 0
        barcoded = 10 * self._codes() * getattr(self, "per_class", 0)
        return plain + barcoded, (10 if self._plain() else 0) + 10 * self._codes()

    def flops_per_step(self) -> float:
        n, c = self.sizes()
        return 3.0 * n * cnn_flops_per_image(c, self.width1, self.width2)  # forward + backward ≈ 3 forward

    def build(self, seed: int) -> Problem:
        """Draw the pool, the plain and barcoded samples, and the CNN, from independent streams of ``seed``."""
        images, digits = load_mnist(self.source)
        generator = np.random.default_rng(derive_seed(seed, "data"))
        pool = torch.from_numpy(generator.permutation(len(digits))[: POOL[self.source]])
        images, digits = images[pool], digits[pool]
        parts_x, parts_y, groups = [], [], []
        if self._plain():
            keep = torch.arange(len(digits))
            per_digit = self.plain_per_digit  # type: ignore[attr-defined]
            if per_digit is not None:
                keep = torch.cat([torch.nonzero(digits == d).squeeze(1)[:per_digit] for d in range(10)])
                if len(keep) < 10 * per_digit:
                    raise ConfigError(f"bad {self.name} problem option plain_per_digit={per_digit}; the {self.source} pool has fewer images of some digit")
            parts_x.append(images[keep])
            parts_y.append(digits[keep])
            groups.append(torch.zeros(10, dtype=torch.long))
        if self._codes():
            x, y = barcoded_samples(images, digits, self.bits, self.per_class, self.zero_code, generator)  # type: ignore[attr-defined]
            parts_x.append(x)
            parts_y.append(y + (10 if self._plain() else 0))
            groups.append(torch.full((10 * self._codes(),), len(groups), dtype=torch.long))
        x, y = normalize_images(torch.cat(parts_x), self.normalize), torch.cat(parts_y)
        num_classes = int(sum(len(g) for g in groups))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "model"))
            model = cnn(num_classes, self.width1, self.width2)
        natural = self.group_names is not None
        problem = Problem(
            model=model,
            x=x,
            y=y,
            num_classes=num_classes,
            class_groups=torch.cat(groups) if natural else None,
            group_names=self.group_names,
            activation_bytes_per_sample=cnn_activation_bytes(self.width1, self.width2),
            info={"n": len(y), "c": num_classes, "input_shape": list(x.shape[1:])},
        )
        return self.weighted(problem)


@dataclass(frozen=True)
class _PlainOptions:
    plain_per_digit: int | None = None  # pool images kept per digit (None: all, ≈5,000 at paper scale)


@dataclass(frozen=True)
class _BarcodeOptions:
    bits: int = 10  # code length b: 2^b codes × 10 digits barcoded classes
    per_class: int = 5  # images per barcoded class
    zero_code: bool = True  # include the all-zero code (decisions D6)


@dataclass(frozen=True)
class MnistProblem(_PlainOptions, _CnnOptions):
    """The paper's CNN on plain MNIST digits (``normalize=as-coded`` by default, as the authors' loader, D8)."""

    normalize: Normalize = "as-coded"
    name: typing.ClassVar[str] = "mnist"
    group_names: typing.ClassVar[tuple[str, ...] | None] = ("digits",)


@dataclass(frozen=True)
class MnistBarcodedProblem(_BarcodeOptions, _PlainOptions, _CnnOptions):
    """The paper's CNN on MNIST + Barcoded MNIST: 10 frequent digit classes and 10·2^bits rare barcoded ones."""

    name: typing.ClassVar[str] = "mnist-barcoded"
    group_names: typing.ClassVar[tuple[str, ...] | None] = ("original digits", "barcoded")


@dataclass(frozen=True)
class BarcodedOnlyProblem(_BarcodeOptions, _CnnOptions):
    """The paper's CNN on the barcoded classes alone: 10·2^bits balanced classes (v1 Fig 11)."""

    name: typing.ClassVar[str] = "barcoded-only"
