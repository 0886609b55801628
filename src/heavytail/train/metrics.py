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
    """``logits.argmax(1) == targets`` (first maximum wins ties), without a host sync on accelerators.

    On the CPU, from a max pass instead of an argmax pass: a sample whose target logit is below the
    maximum is wrong; one whose target logit attains it is right unless an earlier class ties it, and a
    tie of k classes at the maximum forces a loss of at least log k, so only rows with loss >= log 2
    need the exact argmax (a max pass costs a quarter of an argmax pass). Elsewhere the argmax itself,
    since picking out the ambiguous rows would wait for the device.
    """
    if not logits.is_cpu:
        return logits.argmax(dim=1) == targets
    target_logit = logits.gather(1, targets[:, None]).squeeze(1)
    correct = target_logit >= logits.amax(dim=1)
    ambiguous = (correct & (losses >= LOG2)).nonzero().squeeze(1)
    if len(ambiguous):
        correct[ambiguous] = logits[ambiguous].argmax(dim=1) == targets[ambiguous]
    return correct


class ClassStats:
    """Per-class (sum, count) of loss and of correct predictions, accumulated on the device of the losses.

    The one accumulation component behind heavytail's training loop and :class:`heavytail.GroupTracker`.
    ``add`` never waits for the device: targets equal to ``ignore_index`` are routed to an extra slot
    past the last class instead of being filtered out. The sums live in one (3, c + 1) float64 buffer,
    so a multi-process run reduces them with a single all-reduce.
    """

    def __init__(self, num_classes: int, device: torch.device | str, ignore_index: int | None = None) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.sums = torch.zeros(3, num_classes + 1, dtype=torch.float64, device=device)  # last column: ignored
        self.loss_sum, self.correct, self.seen = (row[:num_classes] for row in self.sums)
        self.with_accuracy = True  # False once a batch came without logits: accuracy is then unknown

    def reset(self) -> None:
        self.sums.zero_()
        self.with_accuracy = True

    def add(self, losses: Tensor, targets: Tensor, logits: Tensor | None = None) -> None:
        """Add per-sample ``losses`` and ``targets`` of any matching shape, and optionally ``logits`` (..., c).

        Accuracy is counted only when every batch since the last reset came with its logits.
        """
        losses, targets = losses.detach().reshape(-1), targets.reshape(-1)
        if self.ignore_index is not None:
            ignored = targets == self.ignore_index
            slot = targets.masked_fill(ignored, self.num_classes)
            targets = targets.masked_fill(ignored, 0)  # any valid class, for the gather in the accuracy
        else:
            slot = targets
        self.sums[0].index_add_(0, slot, losses.double())
        self.sums[2].index_add_(0, slot, torch.ones_like(slot, dtype=torch.float64))
        if logits is None:
            self.with_accuracy = False
        elif self.with_accuracy:
            correct = correct_predictions(logits.detach().reshape(-1, logits.shape[-1]), targets, losses)
            self.sums[1].index_add_(0, slot, correct.double())

    def all_reduce(self) -> None:
        """Sum the statistics over the processes of ``torch.distributed`` (a no-op without it)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(self.sums)


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
    def from_assignment(cls, counts: Any, group_of: Any) -> FrequencyGroups:
        """Given groups instead of equal-mass ones (a problem's natural groups): ``group_of[k]`` is class k's group.

        Group 0 is listed first; within a group classes are sorted by count, descending, as in :meth:`from_counts`.
        """
        counts, group_of = np.asarray(counts, dtype=np.int64), np.asarray(group_of, dtype=np.int64)
        if group_of.shape != counts.shape or (len(group_of) and group_of.min() < 0):
            raise ValueError(f"need one group index >= 0 per class ({len(counts)} classes), got shape {group_of.shape}")
        order = np.lexsort((-counts, group_of))  # by group, then most frequent first (stable for ties)
        ends = np.cumsum(np.bincount(group_of, minlength=int(group_of.max(initial=-1)) + 1))
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
