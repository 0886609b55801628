"""PTB at word level, as the TinyPTB and PTB problems share it: vocabulary choices and sizes, and the
``vocab=used`` re-indexing (the word types of the tokens trained on, most frequent first)."""

from __future__ import annotations

from typing import Literal

import torch

Vocab = Literal["train", "valid+test", "used"]  # PTB train's words (the paper's), PTB valid's and test's, or those trained on
VOCAB_SIZES = {"train": 9_920, "valid+test": 7_534}  # word-tokenizer vocabulary sizes, for cost estimates
SPLIT_TOKENS = {"train": 924_400, "valid": 73_339}  # word-tokenizer tokens of each split (train: about), for cost estimates


def used_types_estimate(tokens: int) -> int:
    """Word types among PTB's first ``tokens`` tokens, by Heaps' law fitted on PTB valid (5,680 tokens -> 1,532, 73,339 -> 5,980)."""
    return round(15.36 * tokens**0.5324)


def reindex_by_use(tokens: torch.Tensor, vocab_size: int) -> tuple[torch.Tensor, int]:
    """``tokens`` re-indexed over the word types they use, by decreasing count (ties by vocabulary index),
    and the number of those types."""
    used, counts = torch.unique(tokens, return_counts=True)
    order = torch.sort(counts, descending=True, stable=True).indices
    remap = torch.full((vocab_size,), -1, dtype=torch.long)
    remap[used[order]] = torch.arange(len(used))
    return remap[tokens], len(used)
