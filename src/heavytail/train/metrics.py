"""Per-class statistics from the training pass, and the paper's frequency groups.

Statistics are (sum, count) pairs per class, so chunks, mini-batches and devices reduce exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor


LOG2 = math.log(2.0)


def correct_predictions(logits: Tensor, targets: Tensor, losses: Tensor) -> Tensor:
    """``logits.argmax(1) == targets`` (first maximum wins ties), from a max pass instead of an argmax pass.

    A sample whose target logit is below the maximum is wrong. One whose target logit attains the
    maximum is right unless an earlier class ties it; a tie of k classes at the maximum forces a loss
    of at least log k, so only rows with loss >= log 2 need the exact argmax (on CPU a max pass costs
    a quarter of an argmax pass).
    """
    target_logit = logits.gather(1, targets[:, None]).squeeze(1)
    correct = target_logit >= logits.amax(dim=1)
    ambiguous = (correct & (losses >= LOG2)).nonzero().squeeze(1)
    if len(ambiguous):
        correct[ambiguous] = logits[ambiguous].argmax(dim=1) == targets[ambiguous]
    return correct


class ClassStats:
    """Running per-class sums of loss and correct predictions over one history row."""

    def __init__(self, num_classes: int, device: torch.device | str) -> None:
        self.loss_sum = torch.zeros(num_classes, dtype=torch.float64, device=device)
        self.correct = torch.zeros(num_classes, dtype=torch.float64, device=device)
        self.seen = torch.zeros(num_classes, dtype=torch.float64, device=device)

    def reset(self) -> None:
        self.loss_sum.zero_()
        self.correct.zero_()
        self.seen.zero_()

    def add(self, losses: Tensor, logits: Tensor, targets: Tensor) -> None:
        """Add per-sample ``losses`` (N,), ``logits`` (N, c) and ``targets`` (N,) of one forward pass."""
        self.loss_sum.index_add_(0, targets, losses.double())
        self.correct.index_add_(0, targets, correct_predictions(logits, targets, losses).double())
        self.seen.index_add_(0, targets, torch.ones_like(targets, dtype=torch.float64))


@dataclass(frozen=True)
class FrequencyGroups:
    """Classes sorted by frequency and cut into groups of about equal sample mass (paper section 2.11).

    Each cut q/G (q = 1 .. G-1) ends a group after the first sorted class whose cumulative mass
    reaches it, so a class straddling a cut belongs to the more frequent group; a group may be
    empty when one class spans several cuts. Ties in count keep class-index order.
    """

    counts: np.ndarray  # samples per class, indexed by class
    order: np.ndarray  # class indices, most to least frequent
    ends: np.ndarray  # group g holds order[ends[g-1]:ends[g]]

    @classmethod
    def from_counts(cls, counts: Any, num_groups: int = 10) -> FrequencyGroups:
        counts = np.asarray(counts, dtype=np.int64)
        if num_groups < 1:
            raise ValueError(f"number of groups must be >= 1, got {num_groups}")
        order = np.argsort(-counts, kind="stable")
        mass = np.cumsum(counts[order]) / counts.sum()
        cuts = np.arange(1, num_groups) / num_groups
        ends = np.searchsorted(mass, cuts - 1e-12, side="left") + 1  # tolerance for rounding in the cumsum
        return cls(counts=counts, order=order, ends=np.append(ends, len(counts)))

    @classmethod
    def from_assignment(cls, counts: Any, class_groups: Any) -> FrequencyGroups:
        """A problem's natural groups: group ``class_groups[k]`` holds class k (group 0 listed first).

        Within a group classes are sorted by count, descending, as in :meth:`from_counts`.
        """
        counts = np.asarray(counts, dtype=np.int64)
        class_groups = np.asarray(class_groups, dtype=np.int64)
        order = np.lexsort((-counts, class_groups))  # by group, then most frequent first (stable for ties)
        ends = np.cumsum(np.bincount(class_groups, minlength=int(class_groups.max()) + 1))
        return cls(counts=counts, order=order, ends=ends)

    @property
    def num_groups(self) -> int:
        return len(self.ends)

    def members(self) -> list[np.ndarray]:
        """Class indices of each group, most frequent group first."""
        starts = np.concatenate([[0], self.ends[:-1]])
        return [self.order[s:e] for s, e in zip(starts, self.ends)]

    def assignment(self) -> np.ndarray:
        """Group index of every class."""
        group_of = np.empty(len(self.counts), dtype=np.int64)
        for g, members in enumerate(self.members()):
            group_of[members] = g
        return group_of

    def mass(self) -> np.ndarray:
        """Share of samples in each group."""
        return np.array([self.counts[m].sum() for m in self.members()]) / self.counts.sum()

    def describe(self) -> list[dict[str, Any]]:
        """Group boundaries for reports: ranks, number of classes, counts and sample share."""
        rows, start = [], 0
        for g, (members, share) in enumerate(zip(self.members(), self.mass())):
            counts = self.counts[members]
            rows.append(
                {
                    "group": g,
                    "first_rank": start,
                    "last_rank": start + len(members) - 1,
                    "num_classes": len(members),
                    "max_count": int(counts.max()) if len(members) else 0,
                    "min_count": int(counts.min()) if len(members) else 0,
                    "mass": float(share),
                }
            )
            start += len(members)
        return rows

    def reduce(self, class_values: np.ndarray) -> np.ndarray:
        """Sample-weighted group means sum_k n_k v_k / sum_k n_k of per-class values (..., c) -> (..., G).

        NaN values (a class not seen in a partial epoch) are left out of their group's mean.
        """
        values = np.asarray(class_values, dtype=np.float64)
        out = np.full(values.shape[:-1] + (self.num_groups,), np.nan)
        for g, members in enumerate(self.members()):
            part = values[..., members]
            weights = np.where(np.isnan(part), 0, self.counts[members])
            total = weights.sum(axis=-1)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[..., g] = np.where(total > 0, np.nansum(part * weights, axis=-1) / total, np.nan)
        return out
