"""MNIST from the standard IDX files (gzipped or not), with shape, dtype, magic and md5 checked.

Files live in ``DATA_DIR/mnist/`` by their standard names; ``../shared/data`` holds the 10,000-image
test split, the data directory of a networked machine all four (``heavytail data download mnist``).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from heavytail.data.datadir import DataError, dataset_file

Split = Literal["train", "test"]
SPLIT_SIZES = {"train": 60_000, "test": 10_000}
_MAGIC = {0x00000801: 1, 0x00000803: 3}  # unsigned bytes; 1-d labels, 3-d images


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """The uint8 array of an IDX file (``.gz`` or raw); a one-line :class:`DataError` naming the file if malformed."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from None
    if len(raw) < 4:
        raise DataError(f"IDX file {path} is truncated: {len(raw)} bytes, expected a 4-byte magic number and a header")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in _MAGIC:
        raise DataError(f"IDX file {path} has magic {magic:#010x}; expected 0x00000801 (labels) or 0x00000803 (images), unsigned bytes")
    ndim = _MAGIC[magic]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"IDX file {path} holds {len(raw):,} bytes, expected {expected:,} for shape {shape} (truncated or corrupted)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_mnist(split: Split = "test", data_dir: str | os.PathLike[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (n, 28, 28) uint8 and labels (n,) int64 of one split, both files verified by md5 first."""
    if split not in SPLIT_SIZES:
        raise DataError(f"unknown MNIST split {split!r}; choose one of: train, test")
    images = read_idx(dataset_file("mnist", f"{split}-images", data_dir))
    labels = read_idx(dataset_file("mnist", f"{split}-labels", data_dir))
    n = SPLIT_SIZES[split]
    if images.shape != (n, 28, 28) or labels.shape != (n,) or labels.max() > 9:
        raise DataError(f"MNIST {split} files hold images {images.shape} and labels {labels.shape}; expected ({n}, 28, 28) and ({n},) with digits 0-9")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))
