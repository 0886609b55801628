"""Barcoded MNIST (paper App. A.3): rare classes made by stamping a binary code into an image's top row.

Code b (of 2^bits, lexicographic, first bit = column 0) is written into row 0, columns 0..bits-1: a
set bit sets that pixel to 255, a clear bit leaves it (these pixels are 0 in almost every digit).
Class id of code b and digit d is 10·b + d; each class gets ``per_class`` images of its digit drawn
uniformly with replacement. The all-zero code is included by default, as in the authors' code, so
10 "barcoded" classes are plain digits (decisions D6); ``zero_code=False`` drops it.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

BAR_VALUE = 255  # the largest raw pixel value of the training pool


def barcodes(bits: int, zero_code: bool = True) -> np.ndarray:
    """All ``2^bits`` codes as a (codes, bits) bool array in lexicographic order (without 0...0 if asked)."""
    codes = np.array(list(itertools.product((0, 1), repeat=bits)), dtype=bool).reshape(-1, bits)
    return codes if zero_code else codes[1:]


def stamp(images: torch.Tensor, codes: np.ndarray) -> torch.Tensor:
    """Copies of uint8 ``images`` (n, 28, 28) with row 0 carrying each image's code (n, bits)."""
    out = images.clone()
    bits = codes.shape[1]
    row = out[:, 0, :bits]
    row[torch.from_numpy(codes)] = BAR_VALUE
    return out


def read_codes(images: torch.Tensor, bits: int) -> torch.Tensor:
    """The code index stamped in each image (inverse of :func:`stamp` on pixels that were 0)."""
    set_bits = (images[:, 0, :bits] == BAR_VALUE).long()
    weights = 2 ** torch.arange(bits - 1, -1, -1)
    return set_bits @ weights


def barcoded_samples(
    images: torch.Tensor, digits: torch.Tensor, bits: int, per_class: int, zero_code: bool, generator: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` stamped images for every (code, digit) class; labels 10·code + digit (code index among those used)."""
    codes = barcodes(bits, zero_code)
    by_digit = [np.flatnonzero(digits.numpy() == d) for d in range(10)]
    picks, labels, code_rows = [], [], []
    for b in range(len(codes)):
        for d in range(10):
            picks.append(generator.choice(by_digit[d], size=per_class, replace=True))
            labels.append(np.full(per_class, 10 * b + d))
            code_rows.append(np.repeat(codes[b][None], per_class, axis=0))
    index = torch.from_numpy(np.concatenate(picks))
    return stamp(images[index], np.concatenate(code_rows)), torch.from_numpy(np.concatenate(labels))
