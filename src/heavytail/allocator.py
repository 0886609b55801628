"""Memory-allocator settings for heavytail's own processes (the command line and sweep workers)."""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
KEEP_BYTES = 1 << 30


def reuse_freed_memory() -> bool:
    """Let glibc keep freed blocks of up to 1 GiB for reuse instead of handing each back to the kernel.

    A training step allocates and frees tensors of tens of MB (logits over a vocabulary and their
    gradient). Above glibc's mmap threshold (at most 32 MB) each is mapped and unmapped anew, and the
    next step pays a page fault per 4 KiB page to get it back: 40 % of a step of the small PTB preset
    (system time) on our 2-core machine. Returns whether the setting took (False off glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
