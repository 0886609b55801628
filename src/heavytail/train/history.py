"""Training histories: per-class loss and accuracy at each logged step, saved as ``.npz``."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from heavytail.train.metrics import ClassStats, FrequencyGroups

PER_CLASS_FIELDS = ("class_counts", "class_groups")  # fields describing the classes, not the rows
DEFAULT_GROUPS = 10  # the paper's equal-mass groups, when a problem declares no natural ones


@dataclass
class History:
    """Rows of per-class statistics; row r describes the iterate after ``step[r]`` optimizer steps.

    ``exact[r]`` is True when the row is a pass over all samples at that iterate (every row in full
    batch); False when it accumulates the mini-batches of the epoch that ended at ``step[r]``.
    ``loss`` is the plain mean cross-entropy, ``objective`` the (possibly reweighted) training loss.
    """

    step: np.ndarray  # (R,) int64
    exact: np.ndarray  # (R,) bool
    loss: np.ndarray  # (R,) float64
    objective: np.ndarray  # (R,) float64
    class_loss: np.ndarray  # (R, c) float32, NaN where a class had no sample in the row
    class_accuracy: np.ndarray  # (R, c) float32
    class_counts: np.ndarray  # (c,) int64, training samples per class
    class_groups: np.ndarray | None = None  # (c,) int64, the problem's natural group of each class, if it has them

    @property
    def num_classes(self) -> int:
        return len(self.class_counts)

    def groups(self, num_groups: int | None = None) -> FrequencyGroups:
        """``num_groups`` equal-mass frequency groups; None: the problem's natural groups, else 10 equal-mass ones."""
        if num_groups is None and self.class_groups is not None:
            return FrequencyGroups.from_assignment(self.class_counts, self.class_groups)
        return FrequencyGroups.from_counts(self.class_counts, num_groups or DEFAULT_GROUPS)

    def group_loss(self, num_groups: int | None = None) -> np.ndarray:
        """(R, G) loss of each group (see :meth:`groups`), most to least frequent."""
        return self.groups(num_groups).reduce(self.class_loss)

    def group_accuracy(self, num_groups: int | None = None) -> np.ndarray:
        """(R, G) accuracy of each group (see :meth:`groups`), most to least frequent."""
        return self.groups(num_groups).reduce(self.class_accuracy)

    def save(self, path: Path) -> None:
        """Write all arrays to ``path`` (an open file or a path; callers make it atomic)."""
        arrays = {f.name: getattr(self, f.name) for f in fields(self)}
        np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})

    @classmethod
    def load(cls, path: Path) -> History:
        """Read a saved history (files written before an optional field existed load with it unset)."""
        with np.load(path) as data:
            return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data.files})

    @classmethod
    def concatenate(cls, parts: list[History]) -> History:
        """One history from consecutive parts of the same run (the row files of a tracked run)."""
        if not parts:
            raise ValueError("no history rows to concatenate")
        rows = {f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls) if f.name not in PER_CLASS_FIELDS}
        return cls(**rows, class_counts=parts[-1].class_counts, class_groups=parts[-1].class_groups)

    def select_rows(self, keep: np.ndarray) -> History:
        """The rows ``keep`` selects (a mask or indices), with the same classes."""
        return replace(self, **{f.name: getattr(self, f.name)[keep] for f in fields(self) if f.name not in PER_CLASS_FIELDS})


class HistoryRecorder:
    """Collects rows from :class:`ClassStats` during training; keeps them if training stops early."""

    def __init__(
        self,
        class_counts: torch.Tensor | np.ndarray,
        class_weights: torch.Tensor | None = None,
        class_groups: torch.Tensor | None = None,
    ) -> None:
        self.class_counts = np.asarray(torch.as_tensor(class_counts).cpu(), dtype=np.int64)
        self.class_weights = None if class_weights is None else class_weights.double().cpu().numpy()
        self.class_groups = None if class_groups is None else class_groups.cpu().numpy().astype(np.int64)
        self.rows: list[tuple[int, bool, float, float, np.ndarray, np.ndarray]] = []

    def record(self, step: int, exact: bool, stats: ClassStats) -> float:
        """Append one row and return its mean loss (NaN/inf if training diverged)."""
        loss_sum, correct, seen = (t.cpu().numpy() for t in (stats.loss_sum, stats.correct, stats.seen))
        with np.errstate(invalid="ignore", divide="ignore"):
            class_loss = np.where(seen > 0, loss_sum / seen, np.nan)
            class_accuracy = np.where((seen > 0) & stats.with_accuracy, correct / seen, np.nan)
            loss = loss_sum.sum() / seen.sum()
            objective = loss
            if self.class_weights is not None:
                objective = (self.class_weights * loss_sum).sum() / (self.class_weights * seen).sum()
        self.rows.append(
            (step, exact, float(loss), float(objective), class_loss.astype(np.float32), class_accuracy.astype(np.float32))
        )
        return float(loss)

    def history(self, start: int = 0) -> History:
        """Rows ``start`` onwards as a :class:`History` (all of them by default)."""
        c = len(self.class_counts)
        step, exact, loss, objective, class_loss, class_accuracy = list(zip(*self.rows[start:])) or [()] * 6
        return History(
            step=np.asarray(step, dtype=np.int64),
            exact=np.asarray(exact, dtype=bool),
            loss=np.asarray(loss, dtype=np.float64),
            objective=np.asarray(objective, dtype=np.float64),
            class_loss=np.asarray(class_loss, dtype=np.float32).reshape(-1, c),
            class_accuracy=np.asarray(class_accuracy, dtype=np.float32).reshape(-1, c),
            class_counts=self.class_counts,
            class_groups=self.class_groups,
        )
