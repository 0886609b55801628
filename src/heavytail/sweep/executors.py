"""Where the runs of a sweep execute: in parallel local processes, or as SLURM jobs through submitit.

Every executor writes to the same store through :func:`heavytail.run`, so finished runs are skipped
and a killed sweep loses nothing that already finished. Several sweeps on one store share the work:
a worker that finds a run locked by another process moves on to the next run nobody holds, and
comes back to the locked ones (reusing their results) once nothing else is left to start. Local
sweeps on one host register under ``RESULTS/sweeps/`` so that they split the cores between them.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections import deque
from contextlib import contextmanager, suppress
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

import torch
from tqdm.auto import tqdm

from heavytail.allocator import reuse_freed_memory
from heavytail.optim.registry import OptimizerEntry, register_optimizer, resolve_optimizer
from heavytail.options import ConfigError
from heavytail.problems import register_problem
from heavytail.problems.registry import problem_class
from heavytail.runner import run
from heavytail.spec import RunSpec
from heavytail.store import FINISHED, RunLocked, Store, _is_locked

POLL_SECONDS = 1.0  # how often a sweep with only other processes' runs left checks on them
LOCKED = "locked"  # what run_task reports for a run another process holds


@dataclass
class RunFailure:
    """A run of the sweep that raised; the store keeps it as ``failed`` with its partial history."""

    spec: RunSpec
    error: str


@dataclass(frozen=True)
class Task:
    """One run as sent to a worker process, with the registrations that process may lack."""

    spec: dict[str, Any]
    root: str
    device: str
    threads: int | None = None
    optimizer: OptimizerEntry | None = None  # registered in the parent, maybe not in a fresh worker
    problem: type | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)  # heavytail.run's execution keywords (checkpoint_every, precision, compile)

    @classmethod
    def of(cls, spec: RunSpec, store: Store, device: str, threads: int | None = None, settings: Mapping[str, Any] | None = None) -> Task:
        optimizer = resolve_optimizer(spec.optimizer)
        return cls(spec.to_dict(), str(store.root), device, threads, optimizer, problem_class(spec.problem), dict(settings or {}))


def run_task(task: Task) -> str:
    """Compute one run (or reuse it); :data:`LOCKED` at once if another process holds it.

    Returns the run's final status. Module-level so that process pools and submitit can pickle it.
    """
    reuse_freed_memory()
    if task.threads is not None:
        torch.set_num_threads(task.threads)
    if task.optimizer is not None and ":" not in task.optimizer.name:
        entry = task.optimizer
        register_optimizer(entry.name, entry.cls, entry.description, **entry.defaults)
    if task.problem is not None:
        register_problem(task.spec["problem"], task.problem)
    spec, store, device = RunSpec.from_dict(task.spec), Store(task.root), task.device
    try:
        return run(spec, store, device=device, claim_attempts=2, **task.settings).status
    except RunLocked:
        return LOCKED
    except SystemExit:
        if multiprocessing.parent_process() is not None:  # a pool worker told to stop: run() saved its rows
            os._exit(143)
        raise


def wait_for_others(specs: Sequence[RunSpec], store: Store) -> None:
    """Sleep while every run in ``specs`` is held by another process (returns at once if one is free or finished)."""
    while specs and all(store.status(spec.run_id) == "running" for spec in specs):
        time.sleep(POLL_SECONDS)


@contextmanager
def registered_sweep(store: Store) -> Iterator[None]:
    """Hold a lock file ``RESULTS/sweeps/HOST.PID.lock`` while this process sweeps into ``store``; remove this
    host's registrations that no process holds (sweeps killed before they could remove theirs)."""
    folder = store.root / "sweeps"
    folder.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    path = folder / f"{host}.{os.getpid()}.lock"
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    for other in folder.glob(f"{host}.*.lock"):
        with suppress(FileNotFoundError):  # a registration under 1 s old may not be locked by its owner yet
            if other != path and time.time() - other.stat().st_mtime > 1.0 and not _is_locked(other):
                other.unlink()
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def sweeps_on_this_host(store: Store) -> int:
    """How many processes of this host are sweeping into ``store`` now (at least 1)."""
    files = (store.root / "sweeps").glob(f"{socket.gethostname()}.*.lock")
    return max(1, sum(1 for path in files if _is_locked(path)))


class Executor(Protocol):
    """Runs a batch of specs to completion (results land in the store); returns the runs that raised.

    ``settings`` are :func:`heavytail.run`'s execution keywords (``checkpoint_every``, ``precision``, ``compile``).
    """

    def run(self, specs: Sequence[RunSpec], store: Store, device: str, progress: bool, settings: Mapping[str, Any] | None = None) -> list[RunFailure]: ...

    def close(self, abort: bool = False) -> None: ...


@dataclass
class LocalExecutor:
    """``workers`` processes on this machine (default: one per core); the cores are split between the runs
    that execute at once, those of other sweeps into the same store on this host included (a batch
    smaller than the pool gives each run more torch threads)."""

    workers: int | None = None
    _pool: ProcessPoolExecutor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.workers = self.workers or cores
        if self.workers < 1:
            raise ConfigError(f"bad number of workers {self.workers}; expected an integer >= 1")
        self.cores = cores

    def _submit(self) -> Callable[..., Future[str]]:
        if self.workers == 1:  # in this process: no start-up cost, and Ctrl-C stops the run at once
            return _InlineFuture.call
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),  # fork after torch start-up can deadlock
                initializer=exit_cleanly_on_sigterm,
            )
        return self._pool.submit

    def run(self, specs: Sequence[RunSpec], store: Store, device: str, progress: bool, settings: Mapping[str, Any] | None = None) -> list[RunFailure]:
        """Keep ``workers`` runs in flight; a run another process holds is set aside and retried once
        nothing else is left to start, so concurrent sweeps on one store split the work between them."""
        submit = self._submit()
        queue, held_elsewhere = deque(specs), []
        futures: dict[Future[str], RunSpec] = {}
        failures = []
        initial_threads = torch.get_num_threads()
        with registered_sweep(store), tqdm(total=len(specs), disable=not progress, unit="run", leave=False) as bar:
            while queue or futures or held_elsewhere:
                while queue and len(futures) < self.workers:
                    spec = queue.popleft()
                    at_once = min(self.workers, len(specs)) * sweeps_on_this_host(store)  # runs sharing this host's cores
                    threads = max(1, self.cores // at_once)
                    futures[submit(run_task, Task.of(spec, store, device, threads, settings))] = spec
                if not futures:
                    wait_for_others(held_elsewhere, store)
                    queue.extend(held_elsewhere)
                    held_elsewhere.clear()
                    continue
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    spec, exc = futures.pop(future), future.exception()
                    if isinstance(exc, BrokenProcessPool):
                        raise ConfigError(
                            "a worker process died; when calling reproduce() from a script, put the call under "
                            "`if __name__ == '__main__':` (worker processes re-import the script), or use workers=1"
                        ) from exc
                    if exc is None and future.result() == LOCKED:
                        held_elsewhere.append(spec)
                        continue
                    if exc is not None:
                        failures.append(RunFailure(spec, f"{type(exc).__name__}: {exc}"))
                    bar.update(1)
        torch.set_num_threads(initial_threads)  # the inline path set this process's own
        return failures

    def close(self, abort: bool = False) -> None:
        """Shut the pool down; ``abort`` stops runs in progress (they keep their rows, stored as failed)."""
        if self._pool is not None:
            if abort:
                if threading.current_thread() is threading.main_thread():
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # already stopping: let the workers save
                for process in list(self._pool._processes.values()):  # no public API for this
                    process.terminate()
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def exit_cleanly_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so :func:`heavytail.run` stores the rows so far (CLI and workers)."""
    signal.signal(signal.SIGTERM, _terminate)


class RequeueableRun:
    """:func:`run_task` as a submitit checkpointable callable: a preempted or timed-out SLURM job is requeued
    with the same task, and the run resumes from its last checkpoint (``checkpoint_every``)."""

    def __call__(self, task: Task) -> str:
        return run_task(task)

    def checkpoint(self, task: Task) -> Any:
        """What submitit resubmits on preemption: this same task (the run's state is in its checkpoint file)."""
        import submitit

        return submitit.helpers.DelayedSubmission(RequeueableRun(), task)


class _InlineFuture(Future):  # type: ignore[type-arg]
    """A future computed on the spot, so the serial path shares the pool path's bookkeeping."""

    @classmethod
    def call(cls, fn: Callable[..., str], *args: Any) -> Future[str]:
        future = cls()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # noqa: BLE001 - reported as a run failure, like a pool worker's
            future.set_exception(exc)
        return future


@dataclass
class SlurmExecutor:
    """One SLURM job per run (a job array per batch) through submitit; ``cluster="local"`` runs them here.

    ``parameters`` go to ``submitit.AutoExecutor.update_parameters`` (e.g. ``timeout_min=240``,
    ``slurm_partition="gpu"``); a CUDA device asks for one GPU per job unless given otherwise.
    """

    folder: Path | None = None
    cluster: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def run(self, specs: Sequence[RunSpec], store: Store, device: str, progress: bool, settings: Mapping[str, Any] | None = None) -> list[RunFailure]:
        try:
            import submitit
        except ImportError:
            raise ConfigError("the slurm executor needs submitit: pip install 'heavytail[slurm]'") from None
        executor = submitit.AutoExecutor(folder=self.folder or store.root / "slurm", cluster=self.cluster)
        defaults = {"timeout_min": 240, "cpus_per_task": 4, "gpus_per_node": 1 if device.startswith("cuda") else 0}
        executor.update_parameters(**{**defaults, **self.parameters})
        failures, todo = [], list(specs)
        while todo:  # runs held by another sweep's jobs are waited for here, not in a job's allocation
            jobs = executor.map_array(RequeueableRun(), [Task.of(spec, store, device, settings=settings) for spec in todo])
            held_elsewhere = []
            for spec, job in tqdm(list(zip(todo, jobs)), disable=not progress, unit="run", leave=False):
                try:
                    if job.result() == LOCKED:
                        held_elsewhere.append(spec)
                except Exception as exc:  # noqa: BLE001 - a failed job is reported, the sweep keeps the rest
                    failures.append(RunFailure(spec, f"job {job.job_id}: {exc}".splitlines()[0]))
            while held_elsewhere and any(store.status(spec.run_id) == "running" for spec in held_elsewhere):
                time.sleep(POLL_SECONDS)
            todo = [spec for spec in held_elsewhere if store.status(spec.run_id) not in FINISHED]
        return failures

    def close(self, abort: bool = False) -> None:
        """Nothing to release: submitted jobs outlive the sweep, and a resumed sweep reuses what they stored."""
