"""The clock every benchmark here uses (``from timing import clock``; benchmarks run as ``python bench/NAME.py``)."""

from __future__ import annotations

import time
from typing import Callable

import torch


def clock(fn: Callable[[], object], device: torch.device) -> float:
    """Wall-clock seconds of ``fn()``, synchronising the GPU before each clock read."""
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start
