"""The run store: one directory per run id under a results root, no server.

    ROOT/runs/RUN_ID/spec.json      the normalized spec (written first)
    ROOT/runs/RUN_ID/lock.json      flock-ed by the process computing the run (names its host and pid)
    ROOT/runs/RUN_ID/history.npz    per-class histories (written before the result)
    ROOT/runs/RUN_ID/result.json    status, summary numbers and provenance (written last)
    ROOT/runs/RUN_ID/history-rows/  tracked runs only: one file per logged row until the run is closed
    ROOT/runs/RUN_ID/snapshots/step-N.pt   model state dict after N steps (only with ``snapshots=``)

Every file is written to a temporary name and renamed into place, so a killed process never leaves
a half-written file under a final name; a run counts as finished only once ``result.json`` exists.
The root is ``--results DIR``, else ``$HEAVYTAIL_RESULTS``, else ``./heavytail-results``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from heavytail.options import ConfigError
from heavytail.spec import RunSpec, TrackedSpec, spec_from_dict
from heavytail.train.history import History

RESULTS_ENV = "HEAVYTAIL_RESULTS"
DEFAULT_RESULTS = "heavytail-results"
FINISHED = ("complete", "diverged")  # final outcomes: never recomputed unless forced
ROWS_DIR = "history-rows"  # a tracked run's rows, one file each, so a killed training keeps every logged row
SNAPSHOT_DIR = "snapshots"


def default_results_dir() -> Path:
    return Path(os.environ.get(RESULTS_ENV) or DEFAULT_RESULTS)


def _atomic_write(path: Path, write: Any, mode: str = "w", sync: bool = True) -> None:
    """Write via ``write(file)`` to a temporary sibling, fsync it (unless ``sync=False``), then rename it onto ``path``."""
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    """Atomically write ``data`` as indented JSON (non-finite floats become null)."""
    _atomic_write(path, lambda f: f.write(json.dumps(json_safe(data), indent=1, allow_nan=False) + "\n"))


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats replaced by None, so that it is valid JSON."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _is_locked(path: Path) -> bool:
    """Whether some process holds the ``flock`` on ``path`` (a missing file is not locked)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _lock(path: Path, attempts: int = 1) -> int | None:
    """Open ``path`` and take an exclusive ``flock`` on it without waiting; None if another holds it.

    The kernel drops the lock when its process dies, so a killed run never leaves a lock that
    looks held. The inode check guards against a lock file unlinked by its owner meanwhile.
    """
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            attempts -= 1
            if attempts <= 0:
                return None
            time.sleep(0.02)
            continue
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@dataclass
class RunRecord:
    """A stored run: its spec, its ``result.json`` (None while running) and, lazily, its history."""

    run_id: str
    path: Path
    spec: RunSpec | TrackedSpec
    result: dict[str, Any] | None
    status: str
    skipped: bool = False  # set by heavytail.run when a finished result was reused

    @cached_property
    def history(self) -> History:
        if (self.path / "history.npz").exists():
            return History.load(self.path / "history.npz")
        return History.concatenate([History.load(p) for p in sorted((self.path / ROWS_DIR).glob("*.npz"))])

    @property
    def has_history(self) -> bool:
        return (self.path / "history.npz").exists() or any((self.path / ROWS_DIR).glob("*.npz"))

    @property
    def snapshot_steps(self) -> list[int]:
        """Steps whose model parameters this run keeps (``result.json``'s ``snapshots``)."""
        return list((self.result or {}).get("snapshots", []))

    def snapshot(self, step: int) -> dict[str, Any]:
        """The model's state dict after ``step`` steps; a one-line error if the run did not keep it."""
        if step not in self.snapshot_steps:
            kept = ", ".join(map(str, self.snapshot_steps)) or "none"
            raise ConfigError(
                f"run {self.run_id} has no snapshot at step {step} (kept: {kept}); "
                f"run it again with --snapshots including {step}"
            )
        return torch.load(self.path / SNAPSHOT_DIR / f"step-{step}.pt", weights_only=True)


class RunLocked(RuntimeError):
    """Another process is computing this run."""


class Store:
    """Results directory holding runs keyed by run id."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_results_dir()
        self.runs_dir = self.root / "runs"
        self._held: dict[str, int] = {}  # run id -> descriptor of the lock this process holds

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def status(self, run_id: str) -> str | None:
        """``complete``, ``diverged``, ``failed``, ``running``, or None if the store has no such run."""
        path = self.run_dir(run_id)
        result = _read_json(path / "result.json")
        if result is not None and result["status"] in FINISHED:
            return result["status"]
        if run_id in self._held or _is_locked(path / "lock.json"):
            return "running"
        return "failed" if (path / "spec.json").exists() else None

    def load(self, run_id: str) -> RunRecord:
        """The run whose id is (or uniquely starts with) ``run_id``."""
        run_id = self.resolve(run_id)
        path = self.run_dir(run_id)
        try:
            spec = spec_from_dict(json.loads((path / "spec.json").read_text()))
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            raise ConfigError(f"run {run_id} in {self.root} has an unreadable spec.json ({exc}); delete {path}") from None
        return RunRecord(run_id, path, spec, _read_json(path / "result.json"), self.status(run_id) or "failed")

    def resolve(self, prefix: str) -> str:
        """Expand a unique prefix of a run id, or a tracked run's name; one-line errors when none or several match."""
        if (self.run_dir(prefix) / "spec.json").exists():
            return prefix
        named = self.tracked(prefix)
        if len(named) == 1:
            return named[0]
        if named:
            raise ConfigError(f"{len(named)} tracked runs are named {prefix!r} in {self.root}; give a run id: {', '.join(named)}")
        matches = [p.name for p in self.runs_dir.glob(f"{prefix}*") if (p / "spec.json").exists()]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ConfigError(f"no run {prefix!r} in {self.root}; `heavytail list --results {self.root}` shows them")
        raise ConfigError(f"run id prefix {prefix!r} is ambiguous in {self.root}: {', '.join(sorted(matches))}")

    def tracked(self, name: str) -> list[str]:
        """Ids of the tracked runs named ``name``."""
        return [run_id for run_id in self.run_ids() if (_read_json(self.run_dir(run_id) / "spec.json") or {}).get("name") == name]

    def resolve_all(self, name_or_prefix: str) -> list[str]:
        """Every tracked run named ``name_or_prefix``, else the one run whose id it exactly is or begins."""
        if (self.run_dir(name_or_prefix) / "spec.json").exists():
            return [name_or_prefix]
        return self.tracked(name_or_prefix) or [self.resolve(name_or_prefix)]

    def run_ids(self) -> list[str]:
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir() if (p / "spec.json").exists())

    def records(self) -> Iterator[RunRecord]:
        for run_id in self.run_ids():
            yield self.load(run_id)

    def claim(self, spec: RunSpec) -> str:
        """Register ``spec`` and lock it for this process; :class:`RunLocked` if another process holds it."""
        run_id = spec.run_id
        path = self.run_dir(run_id)
        path.mkdir(parents=True, exist_ok=True)
        if not (path / "spec.json").exists():
            write_json(path / "spec.json", spec.to_dict())
        fd = _lock(path / "lock.json", attempts=25)  # rides out status probes, which hold it for microseconds
        if fd is None:
            owner = _read_json(path / "lock.json") or {}
            raise RunLocked(f"run {run_id} is being computed by pid {owner.get('pid')} on {owner.get('host')}")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode(), 0)
        self._held[run_id] = fd
        return run_id

    def release(self, run_id: str) -> None:
        """Drop this process's lock on ``run_id`` (removing the lock file first, while still holding it)."""
        fd = self._held.pop(run_id, None)
        if fd is not None:
            (self.run_dir(run_id) / "lock.json").unlink(missing_ok=True)
            os.close(fd)

    def save(self, run_id: str, history: History | None, result: dict[str, Any]) -> None:
        """Write the history, then the result that marks the run finished (or failed)."""
        path = self.run_dir(run_id)
        (path / "result.json").unlink(missing_ok=True)
        if history is not None:
            _atomic_write(path / "history.npz", history.save, mode="wb")
        write_json(path / "result.json", result)
        if history is not None:
            shutil.rmtree(path / ROWS_DIR, ignore_errors=True)  # history.npz holds them now

    def append_rows(self, run_id: str, rows: History, index: int) -> None:
        """Write logged ``rows`` of a tracked run as row file ``index`` (atomic; read back by ``RunRecord.history``).

        Not fsync-ed: the rename alone keeps every row through a killed process (the training loop waits
        for each write); ``close`` writes the fsync-ed ``history.npz``.
        """
        directory = self.run_dir(run_id) / ROWS_DIR
        directory.mkdir(exist_ok=True)
        _atomic_write(directory / f"{index:09d}.npz", rows.save, mode="wb", sync=False)

    def save_snapshot(self, run_id: str, step: int, state_dict: dict[str, Any]) -> None:
        """Write a model state dict (moved to the CPU) as ``snapshots/step-N.pt``, atomically."""
        folder = self.run_dir(run_id) / SNAPSHOT_DIR
        folder.mkdir(exist_ok=True)
        state = {name: tensor.detach().to("cpu", copy=True) for name, tensor in state_dict.items()}
        _atomic_write(folder / f"step-{step}.pt", lambda f: torch.save(state, f), mode="wb")

    def forget_if_empty(self, run_id: str) -> None:
        """Remove a run directory that holds nothing but its spec (a run refused before it started)."""
        path = self.run_dir(run_id)
        if not (path / "result.json").exists() and not (path / "history.npz").exists():
            (path / "spec.json").unlink(missing_ok=True)
            try:
                path.rmdir()
            except OSError:
                pass

    def discard(self, run_id: str) -> None:
        """Forget a run's outcome so that it is computed again (``--force``)."""
        for name in ("result.json", "history.npz"):
            (self.run_dir(run_id) / name).unlink(missing_ok=True)
        shutil.rmtree(self.run_dir(run_id) / ROWS_DIR, ignore_errors=True)
        for snapshot in (self.run_dir(run_id) / SNAPSHOT_DIR).glob("step-*.pt"):
            snapshot.unlink()

    def to_frame(self) -> Any:
        """One row per stored run: id, status, spec fields, sizes and summary losses (a pandas DataFrame)."""
        import pandas as pd

        rows = []
        for record in self.records():
            spec = record.spec.to_dict()
            result = record.result or {}
            row = {"run_id": record.run_id, "status": record.status}
            row.update({k: v for k, v in spec.items() if k not in ("problem_options", "optimizer_options", "metadata")})
            row.update({f"metadata.{k}": v for k, v in spec.get("metadata", {}).items()})
            row.update({f"problem.{k}": v for k, v in spec.get("problem_options", {}).items()})
            row.update({f"optimizer.{k}": v for k, v in spec.get("optimizer_options", {}).items()})
            row.update(result.get("problem_info", {}))
            for key in ("initial_loss", "final_loss", "max_loss", "steps_done", "wall_time"):
                row[key] = result.get(key)
            row["finished"] = result.get("finished")
            rows.append(row)
        return pd.DataFrame(rows)
