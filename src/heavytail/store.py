"""The run store: one directory per run id under a results root, no server.

    ROOT/runs/RUN_ID/spec.json      the normalized spec (written when the run is first claimed)
    ROOT/runs/RUN_ID/lock.json      flock-ed by the process computing the run (names its host and pid)
    ROOT/runs/RUN_ID/history.npz    per-class histories (written before the result)
    ROOT/runs/RUN_ID/result.json    status, summary numbers, provenance and the history's checksum (written last)
    ROOT/runs/RUN_ID/history-rows/  tracked runs only: one file per logged row until the run is closed
    ROOT/runs/RUN_ID/snapshots/step-N.pt   model state dict after N steps (only with ``snapshots=``)
    ROOT/runs/RUN_ID/checkpoint.pt  resumable training state while the run is unfinished (only with ``checkpoint_every=``)
    ROOT/quarantine/RUN_ID.STAMP/   a damaged run's files, set aside (never deleted) before it is recomputed

Every file is written to a temporary name and renamed into place, so a killed process never leaves
a half-written file under a final name; a run counts as finished only once ``result.json`` exists.
What a run directory holds is checked when it is read (:mod:`heavytail.integrity`): a damaged run
has status ``corrupt`` and is never used as finished.
The root is ``--results DIR``, else ``$HEAVYTAIL_RESULTS``, else ``./heavytail-results``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, Collection, Iterator

import numpy as np
import torch

from heavytail.integrity import (
    DATA_FILES, HISTORY, LOCK, RESULT, SPEC, CorruptRunError, deep_damage, history_entry, is_stray, load_history,
    quick_damage, read_json, temporary_files,
)
from heavytail.options import ConfigError
from heavytail.spec import RunSpec, TrackedSpec, spec_from_dict
from heavytail.train.history import History

RESULTS_ENV = "HEAVYTAIL_RESULTS"
DEFAULT_RESULTS = "heavytail-results"
FINISHED = ("complete", "diverged")  # final outcomes: never recomputed unless forced
ROWS_DIR = "history-rows"  # a tracked run's rows, one file each, so a killed training keeps every logged row
SNAPSHOT_DIR = "snapshots"
CHECKPOINT = "checkpoint.pt"


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
    data, _ = read_json(path)
    return data if isinstance(data, dict) else None


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
    """A stored run: its spec, its ``result.json`` (None while running) and, lazily, its checked history.

    ``spec`` is None and ``damage`` names the file and the reason when the run is ``corrupt``.
    """

    run_id: str
    path: Path
    spec: RunSpec | TrackedSpec | None
    result: dict[str, Any] | None
    status: str
    skipped: bool = False  # set by heavytail.run when a finished result was reused
    damage: str | None = None

    @cached_property
    def history(self) -> History:
        """The history, verified against the checksum and shapes ``result.json`` records; a tracked run's
        row files while it is still open."""
        if self.damage is not None:
            raise CorruptRunError(self.damage)
        if not (self.path / HISTORY).exists() and any((self.path / ROWS_DIR).glob("*.npz")):
            return History.concatenate([History.load(p) for p in sorted((self.path / ROWS_DIR).glob("*.npz"))])
        return load_history(self.path / HISTORY, (self.result or {}).get("history"))

    @property
    def has_history(self) -> bool:
        return (self.path / HISTORY).exists() or any((self.path / ROWS_DIR).glob("*.npz"))

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


@dataclass
class Finding:
    """One problem :meth:`Store.scan` found: a damaged run, a stale lock or a stray file, and what repair did."""

    kind: str  # "damaged run", "stale lock" or "stray file"
    path: Path
    reason: str
    repaired: str | None = None  # what --repair did, None if nothing


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
        """``complete``, ``diverged``, ``failed``, ``running``, ``corrupt``, or None if the store has no such run.

        Cheap checks only (see :func:`heavytail.integrity.quick_damage`); :meth:`finished` verifies fully.
        """
        path = self.run_dir(run_id)
        damage = quick_damage(path)
        result = _read_json(path / RESULT)
        if damage is None and result is not None and result.get("status") in FINISHED:
            return result["status"]
        if run_id in self._held or _is_locked(path / LOCK):
            return "running"
        if damage is not None:
            return "corrupt"
        return "failed" if (path / SPEC).exists() else None

    def load(self, run_id: str) -> RunRecord:
        """The run whose id is (or uniquely starts with) ``run_id``; a damaged run loads with status ``corrupt``."""
        run_id = self.resolve(run_id)
        path = self.run_dir(run_id)
        status = self.status(run_id) or "failed"
        damage = quick_damage(path) if status in ("corrupt", "running") else None
        spec = None
        if damage is None:
            try:
                spec = spec_from_dict(_read_json(path / SPEC) or {})
            except (TypeError, KeyError, ConfigError) as exc:
                damage, status = f"{path / SPEC}: not a run spec ({exc})", "corrupt"
        return RunRecord(run_id, path, spec, _read_json(path / RESULT), status, damage=damage)

    def finished(self, run_id: str) -> RunRecord | None:
        """The run if it is finished and every file verifies (checksum included), else None; cleans up
        a stale lock and stray temporary files that a finished run no longer needs."""
        path = self.run_dir(run_id)
        if self.status(run_id) not in FINISHED or deep_damage(path) is not None:
            return None
        record = self.load(run_id)
        self.tidy(run_id)
        return record

    def tidy(self, run_id: str) -> None:
        """Remove a lock file nobody holds and temporary files whose writers are gone (if no one holds the run)."""
        path = self.run_dir(run_id)
        strays = [tmp for tmp in temporary_files(path) if is_stray(tmp)]
        if run_id in self._held or not (strays or (path / LOCK).exists()):
            return
        fd = _lock(path / LOCK)
        if fd is None:
            return
        for tmp in strays:
            tmp.unlink(missing_ok=True)
        (path / LOCK).unlink(missing_ok=True)  # unlinked while held: see _lock's inode check
        os.close(fd)

    def quarantine(self, run_id: str, reason: str) -> Path:
        """Move a damaged run's files (all but its lock) to ``ROOT/quarantine/RUN_ID.STAMP/``; needs the run's lock."""
        assert run_id in self._held, "quarantine() needs the run's lock"
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        dest = self.root / "quarantine" / f"{run_id}.{stamp}"
        dest.mkdir(parents=True)
        for entry in self.run_dir(run_id).iterdir():
            if entry.name != LOCK:
                shutil.move(str(entry), str(dest / entry.name))
        (dest / "reason.txt").write_text(reason + "\n")
        return dest

    def scan(self, repair: bool = False) -> tuple[int, list[Finding]]:
        """Check every run not being computed (checksums included): ``(runs checked, findings)``; with
        ``repair``, damaged runs are quarantined and stale locks and stray files removed."""
        findings: list[Finding] = []
        checked = 0
        for path in sorted(self.runs_dir.iterdir()) if self.runs_dir.is_dir() else []:
            if not path.is_dir():
                findings.append(Finding("stray file", path, "not a run directory"))
                continue
            if _is_locked(path / LOCK):
                continue  # being computed: judged once its owner is done
            checked += 1
            run_findings = [Finding("stray file", tmp, "temporary file of an interrupted write") for tmp in temporary_files(path)]
            if (path / LOCK).exists():
                run_findings.append(Finding("stale lock", path / LOCK, "held by no process"))
            damage = deep_damage(path)
            if damage is not None:
                run_findings.insert(0, Finding("damaged run", path, damage))
            if repair and run_findings:
                self._repair(path.name, run_findings)
            findings += run_findings
        for path in sorted((self.root / "sweeps").glob("*.lock")):  # registrations of sweeps killed before they could remove them
            if not _is_locked(path):
                finding = Finding("stale lock", path, "sweep registration held by no process")
                if repair:
                    path.unlink(missing_ok=True)
                    finding.repaired = "removed"
                findings.append(finding)
        return checked, findings

    def _repair(self, run_id: str, findings: list[Finding]) -> None:
        fd = _lock(self.run_dir(run_id) / LOCK)
        if fd is None:
            return  # claimed meanwhile: its new owner cleans up
        self._held[run_id] = fd
        try:
            for finding in findings:
                if finding.kind == "damaged run":
                    finding.repaired = f"moved to {self.quarantine(run_id, finding.reason)}"
                elif finding.kind == "stray file":
                    finding.path.unlink(missing_ok=True)
                    finding.repaired = "removed"
                else:
                    finding.repaired = "removed"
        finally:
            self.release(run_id)  # removes the lock file too
        if not any((self.run_dir(run_id) / name).exists() for name in DATA_FILES):
            try:
                self.run_dir(run_id).rmdir()
            except OSError:
                pass

    def resolve(self, prefix: str) -> str:
        """Expand a unique prefix of a run id (taken literally, never as a pattern); one-line errors when none or several match."""
        if not prefix or prefix.startswith(".") or not all(ch.isalnum() or ch in "._-" for ch in prefix):
            raise ConfigError(f"bad run id {prefix!r}; expected a run id or its prefix (letters, digits, '.', '_', '-'; see `heavytail list`)")
        named = self.tracked(prefix)
        if len(named) == 1:
            return named[0]
        if named:
            raise ConfigError(f"{len(named)} tracked runs are named {prefix!r} in {self.root}; give a run id: {', '.join(named)}")
        matches = [run_id for run_id in self.run_ids() if run_id.startswith(prefix)]
        if prefix in matches:
            return prefix
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ConfigError(f"no run {prefix!r} in {self.root}; `heavytail list --results {self.root}` shows them")
        raise ConfigError(f"run id prefix {prefix!r} is ambiguous in {self.root}: {', '.join(sorted(matches))}")

    def tracked(self, name: str) -> list[str]:
        """Ids of the tracked runs named ``name``."""
        return [run_id for run_id in self.run_ids() if (_read_json(self.run_dir(run_id) / SPEC) or {}).get("name") == name]

    def resolve_all(self, name_or_prefix: str) -> list[str]:
        """Every tracked run named ``name_or_prefix``, else the one run whose id it exactly is or begins."""
        if (self.run_dir(name_or_prefix) / SPEC).exists():
            return [name_or_prefix]
        return self.tracked(name_or_prefix) or [self.resolve(name_or_prefix)]

    def require_root(self, must_exist: bool = True) -> None:
        """One-line error when the results path is not a directory, or (``must_exist``, for commands that only read) is missing."""
        if must_exist and not self.root.exists():
            raise ConfigError(f"results directory {str(self.root)!r} does not exist")
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"results path {str(self.root)!r} is a file, not a results directory")

    def run_ids(self) -> list[str]:
        """Every run directory that holds a run's file (damaged ones included)."""
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir() if any((p / name).exists() for name in DATA_FILES))

    def records(self) -> Iterator[RunRecord]:
        for run_id in self.run_ids():
            yield self.load(run_id)

    def claim(self, spec: RunSpec, attempts: int = 25) -> str:
        """Lock ``spec``'s run for this process and register its spec; :class:`RunLocked` if another process holds it.

        Under the lock, a damaged run is quarantined (one line on stderr) and temporary files left by
        dead writers are removed, so the run is computed afresh.
        """
        run_id = spec.run_id
        path = self.run_dir(run_id)
        path.mkdir(parents=True, exist_ok=True)
        fd = _lock(path / LOCK, attempts=attempts)  # the default rides out status probes, which hold it for microseconds
        if fd is None:
            owner = _read_json(path / LOCK) or {}
            raise RunLocked(f"run {run_id} is being computed by pid {owner.get('pid')} on {owner.get('host')}")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode(), 0)
        self._held[run_id] = fd
        try:
            for tmp in temporary_files(path):  # only the lock holder writes here: every one is a leftover
                tmp.unlink(missing_ok=True)
            damage = deep_damage(path)
            if damage is not None:
                dest = self.quarantine(run_id, damage)
                print(f"heavytail: damaged run {run_id} set aside as {dest} ({damage}); computing it again", file=sys.stderr)
            if not (path / SPEC).exists():
                write_json(path / SPEC, spec.to_dict())
        except BaseException:
            self.release(run_id)
            raise
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
        (path / RESULT).unlink(missing_ok=True)
        if history is not None:
            _atomic_write(path / HISTORY, history.save, mode="wb")
            result = {**result, "history": history_entry(path / HISTORY, history)}
        write_json(path / RESULT, result)
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

    def save_checkpoint(self, run_id: str, state: dict[str, Any]) -> None:
        """Write a resumable training state (:mod:`heavytail.train.checkpoint`) as ``checkpoint.pt``, atomically."""
        _atomic_write(self.run_dir(run_id) / CHECKPOINT, lambda f: torch.save(state, f), mode="wb")

    def load_checkpoint(self, run_id: str) -> dict[str, Any] | None:
        """The run's checkpoint (``torch.load(weights_only=True)``, on the CPU), None if it has none; a one-line
        error if the file is unreadable."""
        path = self.run_dir(run_id) / CHECKPOINT
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is a damaged file
            raise CorruptRunError(f"{path}: unreadable checkpoint ({type(exc).__name__}); delete it to start the run afresh") from None

    def remove_checkpoint(self, run_id: str) -> None:
        (self.run_dir(run_id) / CHECKPOINT).unlink(missing_ok=True)

    def forget_if_empty(self, run_id: str) -> None:
        """Remove a run directory that holds nothing but its spec (a run refused before it started)."""
        path = self.run_dir(run_id)
        if not (path / "result.json").exists() and not (path / "history.npz").exists():
            (path / "spec.json").unlink(missing_ok=True)
            try:
                path.rmdir()
            except OSError:
                pass

    def discard(self, run_id: str, keep_snapshots: Collection[int] = ()) -> None:
        """Forget a run's outcome so that it is computed again (``--force``); a resumed run keeps the
        snapshots its checkpoint took (``keep_snapshots``) and the checkpoint itself."""
        for name in ("result.json", "history.npz"):
            (self.run_dir(run_id) / name).unlink(missing_ok=True)
        shutil.rmtree(self.run_dir(run_id) / ROWS_DIR, ignore_errors=True)
        kept = {f"step-{s}.pt" for s in keep_snapshots}
        for snapshot in (self.run_dir(run_id) / SNAPSHOT_DIR).glob("step-*.pt"):
            if snapshot.name not in kept:
                snapshot.unlink()

    def to_frame(self) -> Any:
        """One row per stored run: id, status, spec fields, sizes and summary losses (a pandas DataFrame)."""
        import pandas as pd

        rows = []
        for record in self.records():
            spec = record.spec.to_dict() if record.spec is not None else {}
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
