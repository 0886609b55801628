"""Per-group training loss for any training loop: :class:`GroupTracker`.

The tracker accumulates per-class (sum, count) of the losses the loop already computed, with the same
:class:`~heavytail.train.metrics.ClassStats` as heavytail's own loop, on the device of the losses and
without waiting for it. ``log(step)`` brings the sums to the host once, reduces them to frequency
groups and appends the row to the store as a tracked run (one file per row), so that ``heavytail
list``, ``heavytail plot NAME`` and ``ht.load_results()`` see it like any other run.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor

from heavytail.options import ConfigError
from heavytail.spec import TrackedSpec
from heavytail.store import Store
from heavytail.train.history import History, HistoryRecorder
from heavytail.train.metrics import ClassStats, FrequencyGroups

IGNORE_INDEX = -100  # PyTorch's default for F.cross_entropy
STATS_KEYS = ("class_counts", "counts")  # where the counts are in a JSON object (``heavytail stats --json``)


class RowLogger(Protocol):
    """Anything that receives each logged row (TensorBoard, wandb: see ``heavytail.integrations``)."""

    def log_row(self, row: dict[str, Any]) -> None: ...


def class_counts_from_labels(
    labels: Any, num_classes: int | None = None, ignore_index: int | None = IGNORE_INDEX
) -> np.ndarray:
    """Samples per class of training ``labels``: a tensor, an array, or a file (``.npy``, or ``.txt`` with one label a line)."""
    if isinstance(labels, (str, os.PathLike)):
        path = Path(labels)
        if path.suffix == ".npy":
            labels = np.load(path)
        elif path.suffix == ".txt":
            labels = np.loadtxt(path, dtype=np.int64, ndmin=1)
        else:
            raise ConfigError(
                f"bad labels file {str(path)!r}; expected .npy, .txt (one label a line) or use from_stats for .json"
            )
    values = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels).reshape(-1).astype(np.int64)
    if ignore_index is not None:
        values = values[values != ignore_index]
    if len(values) and values.min() < 0:
        raise ConfigError(
            f"bad label {values.min()}; labels are class indices >= 0 (or the ignore index {ignore_index})"
        )
    if num_classes is not None and len(values) and values.max() >= num_classes:
        raise ConfigError(f"bad label {values.max()}; expected labels below num_classes={num_classes}")
    return np.bincount(values, minlength=num_classes or 0)


def class_counts_from_stats(stats: Any) -> np.ndarray:
    """Samples per class from a JSON object (a dict or a ``.json`` file) with a ``class_counts`` (or ``counts``) list."""
    if isinstance(stats, (str, os.PathLike)):
        try:
            stats = json.loads(Path(stats).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read class counts from {str(stats)!r}: {exc}") from None
    for key in STATS_KEYS:
        if isinstance(stats, dict) and key in stats:
            return np.asarray(stats[key], dtype=np.int64)
    raise ConfigError(
        f"no class counts in the statistics; expected a JSON object with one of the keys: {', '.join(STATS_KEYS)}"
    )


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class GroupTracker:
    """Loss and accuracy of frequency groups for any training loop; rows go to the heavytail store.

    ``class_counts`` are the training samples per class; groups hold equal shares of them (``num_groups``,
    most to least frequent), unless ``groups`` gives each class's group. With a ``name``, rows are
    stored as a tracked run in ``store`` (default: ``$HEAVYTAIL_RESULTS`` or ``./heavytail-results``).
    Under ``torch.distributed`` the sums are all-reduced at each ``log``; only rank 0 writes.
    """

    def __init__(
        self,
        class_counts: Any,
        *,
        num_groups: int = 10,
        groups: Sequence[int] | np.ndarray | None = None,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        store: Store | str | os.PathLike[str] | None = None,
        ignore_index: int | None = IGNORE_INDEX,
        loggers: Sequence[RowLogger] = (),
    ) -> None:
        counts = np.asarray(
            torch.as_tensor(class_counts).cpu() if isinstance(class_counts, Tensor) else class_counts, dtype=np.int64
        )
        if counts.ndim != 1 or not len(counts) or counts.min() < 0 or counts.sum() == 0:
            raise ConfigError(
                f"bad class counts (shape {counts.shape}); expected one count >= 0 per class, not all zero"
            )
        if num_groups < 1:
            raise ConfigError(f"bad number of groups {num_groups}; expected an integer >= 1")
        self.groups = (
            FrequencyGroups.from_counts(counts, num_groups)
            if groups is None
            else FrequencyGroups.from_assignment(counts, groups)
        )
        self.num_classes, self.ignore_index = len(counts), ignore_index
        self.loggers = list(loggers) if _rank() == 0 else []
        self.stats: ClassStats | None = None  # made on the device of the first losses
        self.recorder = HistoryRecorder(counts)
        self.rows_written, self.started, self.start_time = 0, datetime.now(timezone.utc), time.perf_counter()
        self.device: torch.device | None = None
        if store is not None and name is None:
            raise ConfigError("a tracked run needs a name to be stored; pass name='my-run'")
        self.store, self.spec, self.run_id, self.closed = None, None, None, False
        if name is not None and _rank() == 0:
            self.store = store if isinstance(store, Store) else Store(store)
            self.spec = TrackedSpec(name=name, metadata=metadata or {})
            self.run_id = self.store.claim(self.spec)  # RunLocked if another process tracks the same run
            self.store.discard(self.run_id)  # the same name and metadata again: a new run replaces the old

    @classmethod
    def from_counts(cls, class_counts: Any, **options: Any) -> GroupTracker:
        """A tracker from training samples per class (a list, an array or a tensor)."""
        return cls(class_counts, **options)

    @classmethod
    def from_labels(cls, labels: Any, num_classes: int | None = None, **options: Any) -> GroupTracker:
        """A tracker from the training labels: a tensor or array of any shape, or a ``.npy`` / ``.txt`` file.

        Give ``num_classes`` (e.g. the vocabulary size) when some classes never occur in ``labels``.
        """
        counts = class_counts_from_labels(labels, num_classes, options.get("ignore_index", IGNORE_INDEX))
        return cls(counts, **options)

    @classmethod
    def from_stats(cls, stats: Any, **options: Any) -> GroupTracker:
        """A tracker from a JSON object with a ``class_counts`` (or ``counts``) list, e.g. ``heavytail stats --json``."""
        return cls(class_counts_from_stats(stats), **options)

    def update(self, losses: Tensor, targets: Tensor, logits: Tensor | None = None) -> None:
        """Add per-sample (or per-token) ``losses`` with their ``targets`` (same shape); ``logits`` (..., c) add accuracy.

        Runs on the device of the losses and never waits for it; targets equal to the ignore index are skipped.
        """
        if self.stats is None:
            self.device = losses.device
            self.stats = ClassStats(self.num_classes, losses.device, self.ignore_index)
        self.stats.add(losses, targets, logits)

    def log(self, step: int) -> dict[str, Any]:
        """Group losses over the updates since the last ``log``, as a row; stored and sent to the loggers.

        The row: ``step``, ``loss`` (mean over the samples), ``samples``, ``group_loss`` and
        ``group_accuracy`` (lists, most to least frequent group; accuracy None without logits).
        """
        stats = self.stats or ClassStats(self.num_classes, "cpu", self.ignore_index)
        stats.all_reduce()
        samples = int(stats.seen.sum().item())
        loss = self.recorder.record(int(step), False, stats)
        _, _, _, _, class_loss, class_accuracy = self.recorder.rows[-1]
        row = {
            "step": int(step),
            "loss": loss,
            "samples": samples,
            "group_loss": self.groups.reduce(class_loss).tolist(),
            "group_accuracy": self.groups.reduce(class_accuracy).tolist() if stats.with_accuracy else None,
        }
        stats.reset()
        if samples == 0:  # nothing since the last log: no row
            self.recorder.rows.pop()
            return row
        if self.closed:
            raise RuntimeError("this tracker is closed; make a new one to track another run")
        if self.store is not None:
            self.store.append_rows(self.run_id, self.recorder.history(), self.rows_written)
            self.recorder.rows.clear()  # on disk now; the history is read back from the store at close
        self.rows_written += 1
        for logger in self.loggers:
            logger.log_row(row)
        return row

    def history(self) -> History:
        """Every logged row (from the store for a stored run)."""
        if self.store is None:
            return self.recorder.history()
        return self.store.load(self.run_id).history if self.rows_written else self.recorder.history()

    def close(self, status: str = "complete", error: str | None = None) -> None:
        """Finish the stored run: one ``history.npz`` in place of the row files, then ``result.json``."""
        if self.store is None or self.closed:
            return
        from heavytail.runner import environment

        store, run_id, self.closed = self.store, self.run_id, True
        try:
            history = store.load(run_id).history if self.rows_written else self.recorder.history()
            loss = history.loss
            result = {
                "run_id": run_id,
                "status": status,
                "spec": self.spec.to_dict(),
                "problem_info": {"c": self.num_classes, "n": int(self.recorder.class_counts.sum())},
                "steps_done": int(history.step[-1]) if len(loss) else 0,
                "initial_loss": float(loss[0]) if len(loss) else None,
                "final_loss": float(loss[-1]) if len(loss) else None,
                "max_loss": float(np.max(loss)) if len(loss) else None,
                "wall_time": time.perf_counter() - self.start_time,
                "started": self.started.isoformat(timespec="seconds"),
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "environment": environment(self.device or torch.device("cpu")),
                **({"error": error} if error else {}),
            }
            store.save(run_id, history, result)
        finally:
            store.release(run_id)

    def __enter__(self) -> GroupTracker:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, traceback: object) -> None:
        self.close("complete" if exc is None else "failed", None if exc is None else f"{type(exc).__name__}: {exc}")
