"""Random Heavy-Tailed Labels (paper App. A.3): power-law class sizes, inputs independent of labels.

Group i (i = 0 .. m-1) holds 2^i classes of 2^(m-i) samples each, so every group holds 2^m samples
and the most frequent class is 2^(m-1) times as frequent as the least frequent one.

Sizes follow the construction and the authors' code: n = m 2^m, c = 2^m - 1, d = (m+1) 2^m.
The paper's text states c = 2^(m+1) - 1 (4 095 at m = 11), which its own construction does not
give; we follow the construction (see docs/decisions.md, D1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

InputLaw = Literal["uniform", "gaussian"]


@dataclass(frozen=True)
class LabeledData:
    """Inputs ``x`` (n, d) and integer class targets ``y`` (n,), on the CPU."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int


def heavy_tailed_class_sizes(m: int) -> torch.Tensor:
    """Samples per class, most frequent first: 2^i classes of 2^(m-i) samples for i < m."""
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    return torch.cat([torch.full((2**i,), 2 ** (m - i), dtype=torch.long) for i in range(m)])


def natural_groups(m: int) -> torch.Tensor:
    """Construction group (0 .. m-1) of every class: the m power-of-two groups of the paper."""
    return torch.cat([torch.full((2**i,), i, dtype=torch.long) for i in range(m)])


def random_heavy_tailed_labels(
    m: int,
    *,
    d: int | None = None,
    inputs: InputLaw = "uniform",
    mean: float = 0.0,
    scale: float = 1.0,
    seed: int = 0,
) -> LabeledData:
    """Build the dataset; labels are laid out contiguously (class 0's samples first).

    ``inputs="uniform"`` draws U[0, 1] (the paper's default); ``"gaussian"`` draws
    ``mean + scale * N(0, 1)`` (App. E.3 uses N(1, 1) and N(0, 1)).
    """
    sizes = heavy_tailed_class_sizes(m)
    num_classes = len(sizes)
    y = torch.repeat_interleave(torch.arange(num_classes), sizes)
    dim = (m + 1) * 2**m if d is None else d
    if dim < 1:
        raise ValueError(f"d must be >= 1, got {dim}")
    generator = torch.Generator().manual_seed(seed)
    if inputs == "uniform":
        x = torch.rand(len(y), dim, generator=generator)
    elif inputs == "gaussian":
        x = torch.randn(len(y), dim, generator=generator).mul_(scale).add_(mean)
    else:
        raise ValueError(f"unknown input law {inputs!r}; choose one of: uniform, gaussian")
    return LabeledData(x=x, y=y, num_classes=num_classes)
