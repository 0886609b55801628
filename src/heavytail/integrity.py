"""Checks on what a run directory holds: which file is damaged and why, in one line.

Two depths, so that listing a big store stays cheap: :func:`quick_damage` parses the JSON files and
compares ``history.npz``'s size (and zip trailer) with what ``result.json`` records; :func:`deep_damage`
also verifies the history's SHA-256 and loads its arrays with the shapes ``result.json`` declares.
It runs whenever a history is loaded or a finished run is reused. Results written before checksums
were recorded carry no ``history`` entry and are accepted when every other check passes.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import zipfile
from pathlib import Path
from typing import Any


from heavytail.train.history import History

SPEC, RESULT, HISTORY, LOCK = "spec.json", "result.json", "history.npz", "lock.json"
DATA_FILES = (SPEC, RESULT, HISTORY)  # a directory holding any of these is a run
STRAY_AGE_SECONDS = 3600.0  # a temporary file from another host is stray once this old
_ZIP_END = b"PK\x05\x06"  # end-of-central-directory signature, within the last 64 KiB of a zip


class CorruptRunError(RuntimeError):
    """A stored run's files are damaged; the message names the file and the reason."""


def read_json(path: Path) -> tuple[Any, str | None]:
    """``(data, None)``, or ``(None, reason)`` when ``path`` is missing, not UTF-8, or not JSON."""
    try:
        return json.loads(path.read_bytes().decode("utf-8")), None
    except FileNotFoundError:
        return None, "missing"
    except UnicodeDecodeError:
        return None, "not text (binary garbage)"
    except json.JSONDecodeError as exc:
        return None, "empty" if not path.stat().st_size else f"not valid JSON ({exc.msg} at byte {exc.pos})"
    except OSError as exc:
        return None, f"unreadable ({exc.strerror})"


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def history_entry(path: Path, history: History) -> dict[str, Any]:
    """What ``result.json`` records about a written history: checksum, size, rows and classes."""
    return {"sha256": file_digest(path), "bytes": path.stat().st_size, "rows": len(history.step), "classes": history.num_classes}


def _check_json(path: Path) -> tuple[Any, str | None]:
    data, reason = read_json(path)
    if reason is None and not isinstance(data, dict):
        return None, f"{path}: not a JSON object"
    return data, None if reason is None else f"{path}: {reason}"


def _quick_history(path: Path, declared: dict[str, Any] | None) -> str | None:
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            f.seek(max(0, size - 65536))
            tail = f.read()
    except FileNotFoundError:
        return f"{path}: missing"
    if declared and "bytes" in declared and size != declared["bytes"]:
        return f"{path}: {size} bytes, result.json records {declared['bytes']} (truncated or overwritten)"
    if size == 0:
        return f"{path}: empty"
    if _ZIP_END not in tail:
        return f"{path}: truncated (no end of archive)"
    return None


def load_history(path: Path, declared: dict[str, Any] | None) -> History:
    """Load a history after checking it against ``declared`` (``result.json``'s ``history`` entry, or None
    for results older than checksums); :class:`CorruptRunError` naming the file otherwise."""
    reason = _quick_history(path, declared)
    if reason is None and declared and "sha256" in declared and file_digest(path) != declared["sha256"]:
        reason = f"{path}: checksum mismatch (contents changed since the run finished)"
    if reason is not None:
        raise CorruptRunError(reason)
    try:
        history = History.load(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise CorruptRunError(f"{path}: unreadable arrays ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    rows, classes = len(history.step), history.num_classes
    shapes = {"exact": (rows,), "loss": (rows,), "objective": (rows,), "class_loss": (rows, classes), "class_accuracy": (rows, classes)}
    if history.class_groups is not None:
        shapes["class_groups"] = (classes,)
    for name, shape in shapes.items():
        if getattr(history, name).shape != shape:
            raise CorruptRunError(f"{path}: array {name} has shape {getattr(history, name).shape}, expected {shape}")
    if declared and (declared.get("rows", rows), declared.get("classes", classes)) != (rows, classes):
        raise CorruptRunError(
            f"{path}: {rows} rows x {classes} classes, result.json records {declared.get('rows')} x {declared.get('classes')}"
        )
    return history


def quick_damage(run_dir: Path) -> str | None:
    """Cheap checks (JSON parses, history size and trailer): the reason naming the file, or None."""
    present = {name for name in DATA_FILES if (run_dir / name).exists()}
    if not present:
        return None
    if SPEC not in present:
        return f"{run_dir / SPEC}: missing (the run's other files remain)"
    _, reason = _check_json(run_dir / SPEC)
    if reason is not None or RESULT not in present:
        return reason  # no result: an unfinished run, not a damaged one
    result, reason = _check_json(run_dir / RESULT)
    if reason is not None:
        return reason
    if not isinstance(result.get("status"), str):
        return f"{run_dir / RESULT}: no status"
    if HISTORY in present or result.get("history"):
        return _quick_history(run_dir / HISTORY, result.get("history"))
    return None


def deep_damage(run_dir: Path) -> str | None:
    """:func:`quick_damage` plus the history's checksum and array shapes."""
    reason = quick_damage(run_dir)
    if reason is not None or not (run_dir / RESULT).exists() or not (run_dir / HISTORY).exists():
        return reason
    result, _ = read_json(run_dir / RESULT)
    try:
        load_history(run_dir / HISTORY, result.get("history"))
    except CorruptRunError as exc:
        return str(exc)
    return None


def temporary_files(run_dir: Path) -> list[Path]:
    """Temporary files of atomic writes (``.NAME.HOST.PID.tmp``) anywhere under a run directory."""
    return sorted(p for p in run_dir.rglob(".*.tmp") if p.is_file())


def is_stray(tmp: Path) -> bool:
    """Whether a temporary file's writer is gone: a dead pid on this host, or an old file from another host."""
    stem = tmp.name[: -len(".tmp")]
    rest, _, pid = stem.rpartition(".")
    host = socket.gethostname()
    if pid.isdigit() and rest.endswith(f".{host}"):
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    try:
        return time.time() - tmp.stat().st_mtime > STRAY_AGE_SECONDS
    except FileNotFoundError:
        return False
