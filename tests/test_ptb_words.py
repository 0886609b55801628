"""PTB's word-level vocabulary shared by the TinyPTB and PTB problems, and the allocator setting of heavytail's processes."""

from __future__ import annotations

import platform
import sys

import torch

from heavytail.allocator import reuse_freed_memory
from heavytail.problems.ptb_words import reindex_by_use, used_types_estimate


def test_used_vocabulary_is_reindexed_by_decreasing_count_ties_by_index():
    tokens = torch.tensor([7, 3, 7, 5, 3, 7, 9, 5])  # counts: 7 -> 3, 3 -> 2, 5 -> 2, 9 -> 1; 1 unused type below 10
    reindexed, used = reindex_by_use(tokens, vocab_size=10)
    assert used == 4
    assert reindexed.tolist() == [0, 1, 0, 2, 1, 0, 3, 2]  # 7 first, then 3 before 5 (same count, lower index), then 9


def test_heaps_law_estimate_fits_the_two_measured_ptb_sizes():
    assert abs(used_types_estimate(5_680) - 1_532) / 1_532 < 0.05
    assert abs(used_types_estimate(73_339) - 5_980) / 5_980 < 0.05


def test_freed_memory_is_kept_on_glibc():
    """The command line and sweep workers keep freed blocks for reuse (no page faults every step); off glibc it says no."""
    on_glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert reuse_freed_memory() is on_glibc
