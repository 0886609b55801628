"""Run a spec end to end: build the problem, train, and save the result with its provenance.

A finished run (complete or diverged) is loaded instead of recomputed unless ``force=True``; a run
that fails or is interrupted keeps the rows it logged, saved with status ``failed``.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from datetime import datetime, timezone
from typing import Any, Iterable

import numpy as np
import torch

from heavytail.optim.registry import make_optimizer
from heavytail.options import ConfigError
from heavytail.problems import Problem
from heavytail.spec import RunSpec
from heavytail.store import FINISHED, RunRecord, Store
from heavytail.train.checkpoint import check_checkpoint
from heavytail.train.history import History, HistoryRecorder
from heavytail.train.loop import Precision, auto_chunk_size, check_precision, steps_per_epoch, train, world


def resolve_device(device: str | torch.device) -> torch.device:
    """Parse ``cpu``, ``cuda`` or ``cuda:N``; a one-line error if that device is not available here."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"bad device {device!r}; choose one of: cpu, cuda, cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available here; choose one of: cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"bad device {device!r}; choose one of: cpu, cuda, cuda:N")
    if dev.type == "cuda" and dev.index is None and "LOCAL_RANK" in os.environ:  # under torchrun: this process's GPU
        dev = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return dev


def environment(device: torch.device) -> dict[str, Any]:
    """Library versions and hardware that a stored result was computed with."""
    from heavytail import __version__

    env = {
        "heavytail": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


def check_batch_size(batch_size: int, problem: Problem) -> None:
    """A one-line error for a batch size the problem cannot be cut into (too large, or not whole windows)."""
    block, n = problem.batch_block, problem.num_samples
    if batch_size > n:
        raise ConfigError(f"bad batch size {batch_size}; this problem has {n} samples")
    if batch_size % block:
        raise ConfigError(
            f"bad batch size {batch_size}; this problem's mini-batches are whole windows of {block} streams: "
            f"choose a multiple of {block} (the paper's batch: {block}, one window), or change -p streams"
        )


def epoch_steps(spec: RunSpec, epochs: int) -> int:
    """Optimizer steps of ``epochs`` passes over ``spec``'s data at its batch size (one per epoch in full batch).

    Builds the problem to count its mini-batches, so ``--epochs E`` names the same run as ``--steps`` of that count.
    """
    if spec.batch_size is None:
        return epochs
    problem = spec.build_problem()
    check_batch_size(spec.batch_size, problem)
    return epochs * steps_per_epoch(problem, spec.batch_size)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _reused(store: Store, run_id: str) -> RunRecord | None:
    """The stored run marked as reused if it is finished and verifies, else None."""
    record = store.finished(run_id)
    if record is not None:
        record.skipped = True
    return record


def _snapshot_steps(spec: RunSpec, snapshots: Iterable[int]) -> list[int]:
    """The requested snapshot steps, sorted; a one-line error for a step outside 0..steps."""
    steps = sorted({int(s) for s in snapshots})
    bad = [s for s in steps if not 0 <= s <= spec.steps]
    if bad:
        raise ConfigError(f"bad snapshot step {bad[0]}; choose steps between 0 and {spec.steps} (the run's --steps)")
    return steps


def _lacks_snapshots(store: Store, run_id: str, wanted: list[int]) -> bool:
    """Whether a finished run misses snapshots it could have taken (steps it reached)."""
    if not wanted:
        return False
    record = store.load(run_id)
    reached = (record.result or {}).get("steps_done", 0)
    return any(s <= reached and s not in record.snapshot_steps for s in wanted)


def _on_rank0(compute: Any) -> Any:
    """``compute()`` on rank 0 of a ``torch.distributed`` group, its result (or its error) handed to every rank."""
    rank, size = world()
    if size == 1:
        return compute()
    import torch.distributed as dist

    box: list[Any] = [None]
    if rank == 0:
        try:
            box[0] = ("ok", compute())
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank
            box[0] = ("error", exc)
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def run(
    spec: RunSpec,
    store: Store | str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    force: bool = False,
    progress: bool = False,
    chunk_size: int | None = None,
    snapshots: Iterable[int] = (),
    claim_attempts: int = 25,
    checkpoint_every: int | None = None,
    precision: Precision = "auto",
    compile: bool = False,
) -> RunRecord:
    """Compute ``spec`` (or reuse its stored result) and return the stored record.

    ``snapshots`` lists steps whose model parameters are kept (``record.snapshot(t)``); they are not
    part of the run id, and a stored run that lacks some of them is recomputed, keeping the old ones too.
    ``checkpoint_every`` keeps a resumable state every that many steps (``checkpoint.pt`` in the run
    directory, not part of the run id); an unfinished run that has one resumes from it
    (``result["resumed_from"]``), unless ``force``. ``precision`` and ``compile`` only change how fast
    it runs (:func:`heavytail.train.train`). Under ``torchrun`` every process trains its share and
    rank 0 alone writes the store. :class:`RunLocked` if another process holds the run after
    ``claim_attempts`` tries 20 ms apart.
    """
    store = store if isinstance(store, Store) else Store(store)
    spec = spec.normalized()
    dev = resolve_device(device)
    check_precision(precision)  # before anything is stored
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ConfigError(f"bad checkpoint interval {checkpoint_every!r}; expected an integer >= 1 (steps)")
    run_id = spec.run_id
    wanted = _snapshot_steps(spec, snapshots)
    rank, _ = world()

    def reusable() -> RunRecord | None:
        record = _reused(store, run_id)  # finished, and every file verifies
        return None if record is None or _lacks_snapshots(store, run_id, wanted) else record

    def claim() -> tuple[bool, list[int], int | None]:
        """Rank 0: (reuse the finished run, snapshots wanted, step of the checkpoint to resume from)."""
        if not force and reusable() is not None:
            return True, wanted, None
        store.claim(spec, attempts=claim_attempts)  # quarantines the run first if its files are damaged
        if not force and store.status(run_id) in FINISHED and not _lacks_snapshots(store, run_id, wanted):  # finished meanwhile
            store.release(run_id)
            return True, wanted, None
        snaps = wanted
        if store.status(run_id) in FINISHED:  # recomputed for its snapshots: keep the ones it had
            snaps = sorted(set(wanted) | set(store.load(run_id).snapshot_steps))
        checkpoint = None
        try:
            if force:
                store.remove_checkpoint(run_id)
            else:
                checkpoint = store.load_checkpoint(run_id)
                if checkpoint is not None:
                    check_checkpoint(checkpoint, run_id, spec.to_dict(), str(store.run_dir(run_id) / "checkpoint.pt"))
            store.discard(run_id, keep_snapshots=checkpoint["snapshots"] if checkpoint is not None else ())  # start clean
        except BaseException:
            store.release(run_id)
            raise
        return False, snaps, None if checkpoint is None else checkpoint["step"]

    reuse, wanted, resume_step = _on_rank0(claim)
    if reuse:
        _on_rank0(lambda: None)  # every rank past rank 0's decision before any reads
        record = store.load(run_id)
        record.skipped = True
        return record
    resume = store.load_checkpoint(run_id) if resume_step is not None else None  # every rank reads the same file
    started, recorder, problem = _now(), None, None
    kept: list[int] = list(resume["snapshots"]) if resume is not None else []
    try:
        problem = spec.build_problem().to(dev)
        problem.info.update(num_parameters=problem.num_parameters, num_trainable_parameters=problem.num_trainable_parameters)
        if problem.group_names is not None:
            problem.info["group_names"] = list(problem.group_names)
        if spec.batch_size is not None:
            check_batch_size(spec.batch_size, problem)
        optimizer = make_optimizer(spec.optimizer, problem.trainable_parameters(), spec.lr, spec.optimizer_options)
        recorder = HistoryRecorder(problem.class_counts(), problem.class_weights, problem.class_groups)
        chunk = chunk_size or auto_chunk_size(problem)

        def keep_snapshot(step: int) -> None:
            if rank == 0:
                store.save_snapshot(run_id, step, problem.model.state_dict())
            kept.append(step)

        def keep_checkpoint(state: dict[str, Any]) -> None:
            store.save_checkpoint(run_id, {**state, "run_id": run_id, "spec": spec.to_dict(), "snapshots": list(kept)})

        outcome = train(
            problem,
            optimizer,
            spec.steps,
            batch_size=spec.batch_size,
            chunk_size=chunk,
            seed=spec.seed,
            recorder=recorder,
            progress=progress and rank == 0,
            snapshot_steps=wanted,
            on_snapshot=keep_snapshot,
            precision=precision,
            compile=compile,
            checkpoint_every=checkpoint_every,
            on_checkpoint=keep_checkpoint,
            resume=resume,
        )
        history = outcome.history
        result = {
            "status": "diverged" if outcome.diverged else "complete",
            "steps_done": outcome.steps_done,
            "wall_time": outcome.wall_time,
            "snapshots": kept,
            "resumed_from": outcome.resumed_from,
        }
        if outcome.validation is not None:
            result["validation"] = validation_summary(outcome.validation)
    except ConfigError:
        if rank == 0 and (recorder is None or not recorder.rows):  # bad input caught during set-up: nothing to keep
            store.release(run_id)
            store.forget_if_empty(run_id)
        raise
    except BaseException as exc:  # keep what was computed, also on Ctrl-C / SIGTERM
        if rank == 0:
            history = recorder.history() if recorder is not None and recorder.rows else None
            result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "snapshots": kept}
            _finish(store, run_id, spec, history, result, dev, started, chunk_size, problem and problem.info)
        raise
    if rank == 0:
        _finish(store, run_id, spec, history, result, dev, started, chunk, problem.info)
        store.remove_checkpoint(run_id)  # the finished history supersedes it
    _on_rank0(lambda: None)  # the others wait for rank 0's files
    return store.load(run_id)


def validation_summary(validation: History) -> dict[str, Any]:
    """The validation rows in ``result.json``: steps, mean loss and the 10 equal-mass groups of the validation counts."""
    return {
        "step": validation.step.tolist(),
        "loss": validation.loss.tolist(),
        "group_loss": validation.group_loss().tolist(),
        "groups": validation.groups().describe(),
    }


def _finish(
    store: Store,
    run_id: str,
    spec: RunSpec,
    history: Any,
    result: dict[str, Any],
    device: torch.device,
    started: str,
    chunk_size: int | None,
    problem_info: dict[str, Any] | None,
) -> None:
    loss = history.loss if history is not None else np.array([])
    result = {
        "run_id": run_id,
        **result,
        "spec": spec.to_dict(),
        "problem_info": problem_info or {},
        "initial_loss": float(loss[0]) if len(loss) else None,
        "final_loss": float(loss[-1]) if len(loss) else None,
        "max_loss": float(np.max(loss)) if len(loss) else None,
        "chunk_size": chunk_size,
        "started": started,
        "finished": _now(),
        "environment": environment(device),
    }
    try:
        store.save(run_id, history, result)
    finally:
        store.release(run_id)


def summarize(record: RunRecord, num_groups: int | None = None) -> dict[str, Any]:
    """The numbers a user checks first: sizes, initial/final/max loss, and group losses (most to least frequent).

    ``num_groups`` equal-mass groups, or with None the problem's natural groups if it has them, else 10.
    """
    result = record.result or {}
    spec = record.spec.to_dict()
    info = result.get("problem_info", {})
    out: dict[str, Any] = {
        "run_id": record.run_id,
        "status": record.status,
        "skipped": record.skipped,
        "diverged": record.status == "diverged",
        **{k: spec[k] for k in ("problem", "optimizer", "lr", "seed")},
        "steps": spec["steps"],
        "steps_done": result.get("steps_done"),
        "problem_options": spec.get("problem_options", {}),
        "optimizer_options": spec.get("optimizer_options", {}),
        "batch_size": spec.get("batch_size"),
        "n": info.get("n"),
        "d": info.get("d"),
        "c": info.get("c"),
        "num_parameters": info.get("num_parameters"),
        "num_trainable_parameters": info.get("num_trainable_parameters"),
        "initial_loss": result.get("initial_loss"),
        "final_loss": result.get("final_loss"),
        "max_loss": result.get("max_loss"),
        "wall_time": result.get("wall_time"),
        "path": str(record.path),
        "snapshots": record.snapshot_steps,
        "resumed_from": result.get("resumed_from"),
    }
    if record.has_history and len(record.history.step):
        history = record.history
        groups = history.group_loss(num_groups)
        out["group_loss_initial"] = groups[0].tolist()
        out["group_loss_final"] = groups[-1].tolist()
        out["groups"] = history.groups(num_groups).describe()
        names = info.get("group_names")
        if num_groups is None and names and history.class_groups is not None:
            for row, name in zip(out["groups"], names):
                row["name"] = name
    else:
        out["group_loss_initial"] = out["group_loss_final"] = None
    validation = result.get("validation")
    if validation and validation.get("group_loss"):
        out["val_group_loss_initial"] = validation["group_loss"][0]
        out["val_group_loss_final"] = validation["group_loss"][-1]
    if "error" in result:
        out["error"] = result["error"]
    return out

