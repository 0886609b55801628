"""The training loop: one forward and one backward per step, per-class statistics from that same pass.

Full batch: the gradient of the mean loss over all samples, accumulated over chunks when the batch
does not fit in memory (each chunk's summed loss divided by the full normaliser, so the accumulated
gradient is the unchunked one). The row logged at step t comes from the forward pass that computed
the step-t gradient; only the final iterate needs one extra forward pass.

Mini-batch: each step one batch of whole blocks of rows (a block is one sample, or one window of a
text problem's B streams), in a fresh random order every epoch or, for the paper's text windows, the
same order every epoch; each batch is accumulated over chunks (micro-batches); a row per epoch (or
every ``log_every`` steps) accumulates the statistics of its batches, plus exact passes over all
samples at the first and the final iterate. Targets equal to the problem's ``ignore_index`` (padding)
are neither trained on nor counted.

The same loop runs under ``torchrun``: with a ``torch.distributed`` process group of several
processes, each takes its contiguous share of every batch (and of a full pass), the model is wrapped
in DistributedDataParallel, and the per-class sums are all-reduced before each row. On CUDA the
forward runs under bf16 autocast with TF32 matmuls unless ``precision="fp32"``. Nothing inside the
accumulation loop waits for the device; one scalar per step is read back to detect divergence.

Models with dropout (decisions D12): with ``problem.log_mode == "eval"`` every exact row (each
full-batch row; the first and final rows of mini-batch training) comes from a separate no-grad pass
in eval mode (dropout off; one more forward per full-batch step), with ``"train"`` from the training
pass (dropout on, as the paper's code logged them). Mini-batch rows between them accumulate the
training passes either way. The eval pass draws no dropout masks, and an exact pass with dropout on
draws its masks off the training stream, so both modes take the same steps.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterator, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer
from tqdm.auto import tqdm

from heavytail.options import ConfigError
from heavytail.problems.base import Problem
from heavytail.seeding import derive_seed
from heavytail.train.checkpoint import FORMAT, restore_rng, restore_rows, rng_state, rows_state
from heavytail.train.history import History, HistoryRecorder
from heavytail.train.metrics import ClassStats

LOGIT_MEMORY_BUDGET = 1 << 29  # bytes of logits (and their gradient) one chunk may hold by default
CPU_CHUNK_BUDGET = 1 << 25  # on the CPU: small enough that a chunk's tensors are reused from malloc's heap
# instead of mapped afresh (page-faulted) every step, which cost ~40 % of the CPU time of a CNN or
# last-layer step with one big chunk; the smaller GEMMs cost nothing measurable (bench/README.md)
Precision = Literal["auto", "fp32"]
PRECISIONS = ("auto", "fp32")


def check_precision(precision: str) -> None:
    """A one-line error for a precision that is not one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ConfigError(f"bad precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")


@dataclass
class TrainResult:
    """What :func:`train` returns: the history, whether the loss became NaN/inf, and the time taken.

    ``validation`` holds the rows of the problem's validation samples, if it has them; ``resumed_from``
    is the step a resumed run started at (None when it started from scratch).
    """

    history: History
    diverged: bool
    steps_done: int
    wall_time: float
    validation: History | None = None
    resumed_from: int | None = None


def auto_chunk_size(problem: Problem) -> int:
    """Samples per chunk so that logits, probabilities, their gradient and the model's activations fit in the
    memory budget (a smaller one on the CPU, where big buffers allocated every step are page-faulted every step)."""
    bytes_per_sample = 3 * 4 * problem.num_classes * problem.targets_per_sample + problem.activation_bytes_per_sample
    budget = CPU_CHUNK_BUDGET if problem.device.type == "cpu" else LOGIT_MEMORY_BUDGET
    return max(1, budget // bytes_per_sample)


def has_dropout(model: nn.Module) -> bool:
    """Whether ``model`` drops activations in training mode, so its losses differ between train and eval mode."""
    return any(
        (isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0) or (isinstance(m, nn.MultiheadAttention) and m.dropout > 0)
        for m in model.modules()
    )


@contextlib.contextmanager
def _eval_mode(model: nn.Module, on: bool) -> Iterator[None]:
    """Put ``model`` in eval mode inside the block when ``on``, back in training mode after it."""
    if on:
        model.eval()
    try:
        yield
    finally:
        if on:
            model.train()


def _own_masks(device: torch.device, on: bool) -> Any:
    """When ``on``, dropout masks drawn inside the block leave the training stream as it was, so an exact pass
    with dropout on (``log_mode="train"``) changes no later step."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else []) if on else contextlib.nullcontext()


def world() -> tuple[int, int]:
    """(rank, number of processes) of the ``torch.distributed`` group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _share(lo: int, hi: int, rank: int, size: int) -> tuple[int, int]:
    """This process's contiguous share of positions [lo, hi)."""
    n = hi - lo
    return lo + n * rank // size, lo + n * (rank + 1) // size


def _target_weights(weights: Tensor, targets: Tensor, ignore_index: int | None) -> Tensor:
    """The class weight of each target (1-D), 0 for padding."""
    if ignore_index is None:
        return weights[targets]
    padding = targets == ignore_index
    return torch.where(padding, 0.0, weights[targets.masked_fill(padding, 0)])


class _Pass:
    """Forward (and backward) of one chunk of samples; updates the per-class statistics (unless ``stats`` is None)."""

    def __init__(self, problem: Problem, stats: ClassStats | None, model: nn.Module, autocast: Any, loss_scale: float) -> None:
        self.model, self.num_classes, self.stats = model, problem.num_classes, stats
        self.weights, self.ignore = problem.class_weights, problem.ignore_index
        self.autocast, self.loss_scale = autocast, loss_scale

    def __call__(self, x: Tensor, y: Tensor, normaliser: Tensor | float | None) -> Tensor:
        """Return the summed (weighted) loss of the chunk; backpropagate it / normaliser unless None."""
        with self.autocast():
            logits = self.model(x).reshape(-1, self.num_classes)
        targets = y.reshape(-1)
        losses = F.cross_entropy(logits.float(), targets, reduction="none", ignore_index=-100 if self.ignore is None else self.ignore)
        if self.stats is not None:
            self.stats.add(losses, targets, logits)
        total = losses.sum() if self.weights is None else (losses * _target_weights(self.weights, targets, self.ignore)).sum()
        if normaliser is not None:
            (total * (self.loss_scale / normaliser)).backward()
        return total.detach()


def _normaliser(problem: Problem, targets: Tensor) -> Tensor:
    """Denominator of the mean loss over ``targets``: the sum of their class weights, or their number (padding left out)."""
    targets = targets.reshape(-1)
    if problem.class_weights is not None:
        return _target_weights(problem.class_weights, targets, problem.ignore_index).sum()
    return (targets != problem.ignore_index).sum()


def _loss_normaliser(problem: Problem, index: Tensor) -> Tensor | float:
    """Denominator of the mean loss over the samples ``index``: their number of targets, or the sum of their class weights."""
    if problem.class_weights is None and problem.ignore_index is None:
        return float(len(index) * problem.targets_per_sample)
    return _normaliser(problem, problem.targets(index))


def _epoch_order(problem: Problem, generator: torch.Generator, device: torch.device) -> Tensor:
    """The rows of one epoch in the order its batches take them: whole blocks of ``batch_block`` rows, permuted by
    one ``randperm`` of the blocks, or in order every epoch when the problem does not shuffle (text windows, D13)."""
    block = problem.batch_block
    if not problem.shuffle_batches:
        return torch.arange(problem.num_samples, device=device)
    order = torch.randperm(problem.num_samples // block, generator=generator).to(device)
    return order if block == 1 else (order[:, None] * block + torch.arange(block, device=device)).reshape(-1)


def steps_per_epoch(problem: Problem, batch_size: int | None) -> int:
    """Optimizer steps in one pass over the data: 1 in full batch, else the number of mini-batches."""
    return 1 if batch_size is None else math.ceil(problem.num_samples / batch_size)


def _autocast(device: torch.device, precision: Precision) -> Callable[[], Any]:
    """bf16 autocast on CUDA unless ``precision="fp32"``; nothing elsewhere (TF32 set as a side effect on CUDA)."""
    check_precision(precision)
    if device.type != "cuda":
        return contextlib.nullcontext
    fast = precision == "auto"
    torch.backends.cuda.matmul.allow_tf32 = fast
    torch.backends.cudnn.allow_tf32 = fast
    if not fast:
        return contextlib.nullcontext
    return lambda: torch.autocast("cuda", dtype=torch.bfloat16)


def train(
    problem: Problem,
    optimizer: Optimizer,
    steps: int,
    *,
    batch_size: int | None = None,
    chunk_size: int | None = None,
    seed: int = 0,
    recorder: HistoryRecorder | None = None,
    progress: bool = False,
    snapshot_steps: Collection[int] = (),
    on_snapshot: Callable[[int], None] | None = None,
    log_every: int | None = None,
    precision: Precision = "auto",
    compile: bool = False,
    checkpoint_every: int | None = None,
    on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
    resume: dict[str, Any] | None = None,
) -> TrainResult:
    """Run ``steps`` optimizer steps (full batch when ``batch_size`` is None) and log per-class losses.

    Pass a ``recorder`` to keep the rows logged so far if training is interrupted. Training stops at
    the first NaN/inf loss and returns with ``diverged=True``. ``on_snapshot(t)`` is called when the
    model holds the iterate after t steps, for each t in ``snapshot_steps`` (before step t+1's update).
    ``log_every`` (mini-batch; default: the problem's, else one row per epoch) logs a row every that
    many steps, and the problem's validation samples are evaluated at the same steps.
    Every ``checkpoint_every`` steps ``on_checkpoint(state)`` gets the resumable state (see
    :mod:`heavytail.train.checkpoint`); ``resume=state`` continues from one, with the same result
    as an uninterrupted run (bit-identical on the CPU).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    n = problem.num_samples
    rank, size = world()
    if batch_size is not None and not max(1, size) <= batch_size <= n:
        raise ValueError(f"batch size must be in [{size}, {n}], got {batch_size}")
    if batch_size is not None and batch_size % problem.batch_block:
        raise ValueError(f"batch size must be a multiple of the problem's {problem.batch_block}-row blocks, got {batch_size}")
    chunk = chunk_size or auto_chunk_size(problem)
    if chunk < 1:
        raise ValueError(f"chunk size must be >= 1, got {chunk}")
    log_every = log_every or problem.log_every
    recorder = recorder or HistoryRecorder(problem.class_counts(), problem.class_weights, problem.class_groups)
    device = problem.device
    stats = ClassStats(problem.num_classes, device, ignore_index=problem.ignore_index)
    model = problem.model
    forward_model: nn.Module = model
    if size > 1:
        forward_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if compile:
        forward_model = torch.compile(forward_model)
    autocast = _autocast(device, precision)
    forward = _Pass(problem, stats, forward_model, autocast, float(size))  # DDP averages gradients: scale sums by the world size
    evaluate = _Pass(problem, stats, model, autocast, 1.0)
    eval_rows = problem.log_mode == "eval" and has_dropout(model)  # exact rows from an eval-mode pass (D12)
    train_forward = _Pass(problem, None, forward_model, autocast, float(size)) if eval_rows else forward  # records rows unless eval_rows
    validator = _Validator(problem, autocast) if problem.validation is not None else None
    model.train()
    bar = tqdm(total=steps, disable=not progress, unit="step", leave=False, dynamic_ncols=True)

    if problem.class_weights is None and problem.ignore_index is None:  # the same every full-batch step: computed once
        full_normaliser: Tensor | float = float(n * problem.targets_per_sample)
    elif problem.y is not None:
        full_normaliser = _normaliser(problem, problem.y)
    else:
        counts = problem.class_counts().to(device)
        full_normaliser = counts.sum() if problem.class_weights is None else (counts * problem.class_weights).sum()
    snapshot_at = frozenset(snapshot_steps) if on_snapshot is not None else frozenset()
    generator = torch.Generator().manual_seed(seed)
    done, epoch, offset, elapsed = 0, 0, 0, 0.0
    rng = torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])
    rng.__enter__()
    torch.manual_seed(derive_seed(seed, f"training rank {rank}"))  # dropout's stream: fixed by the seed, one per rank
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        if rank < len(resume["rng"]):  # a different number of processes: the extra ranks keep their fresh streams
            restore_rng(resume["rng"][rank])
        done, epoch, offset, elapsed = resume["step"], resume["data"]["epoch"], resume["data"]["offset"], resume["elapsed"]
        generator.set_state(resume["data"]["generator"])
        stats.sums.copy_(resume["stats"]["sums"] if rank == 0 else torch.zeros_like(stats.sums))  # rank 0 saved the reduced sums
        stats.with_accuracy = resume["stats"]["with_accuracy"]
        restore_rows(recorder, resume["rows"])
        if validator is not None:
            restore_rows(validator.recorder, resume["validation_rows"])
        bar.update(done)
    start = time.perf_counter() - elapsed

    def record(step: int, exact: bool) -> float:
        if size > 1:
            stats.all_reduce()
        return recorder.record(step, exact, stats)

    def full_pass(step: int, backward: bool) -> float:
        stats.reset()
        lo, hi = _share(0, n, rank, size)
        starts = range(lo, hi, chunk)
        if backward:
            with torch.enable_grad():
                for i, first in enumerate(starts):
                    with _no_sync(forward_model, i < len(starts) - 1):
                        x, y = problem.fetch(slice(first, min(first + chunk, hi)))
                        train_forward(x, y, full_normaliser)
        if not backward or eval_rows:
            with torch.no_grad(), _eval_mode(model, eval_rows), _own_masks(device, not backward and not eval_rows):
                for first in starts:
                    evaluate(*problem.fetch(slice(first, min(first + chunk, hi))), None)
        return record(step, True)

    def checkpoint(step: int, order_state: torch.Tensor | None) -> None:
        """Hand the resumable state after ``step`` steps to ``on_checkpoint`` when one is due (rank 0 only)."""
        if not (checkpoint_every and on_checkpoint is not None and step % checkpoint_every == 0 and step < steps):
            return
        if size > 1:
            stats.all_reduce()  # rank 0 keeps the reduced partial sums, the other ranks restart theirs at zero
            if rank != 0:
                stats.sums.zero_()
        state = {
            "format": FORMAT,
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": _gathered(rng_state(device), size),
            "data": {"epoch": epoch, "offset": offset, "generator": order_state if order_state is not None else generator.get_state()},
            "stats": {"sums": stats.sums.clone(), "with_accuracy": stats.with_accuracy},
            "rows": rows_state(recorder),
            "validation_rows": rows_state(validator.recorder) if validator is not None else None,
            "elapsed": time.perf_counter() - start,
        }
        if rank == 0:
            on_checkpoint(state)

    diverged = False
    resumed_from = done if resume is not None else None
    try:
        if batch_size is None:
            for done in range(done, steps + 1):
                if done in snapshot_at:
                    on_snapshot(done)
                if validator is not None and log_every and (done % log_every == 0 or done == steps):
                    validator(done, chunk)
                optimizer.zero_grad(set_to_none=True)
                loss = full_pass(done, backward=done < steps)
                if not math.isfinite(loss):
                    diverged = True
                    break
                if done < steps:
                    optimizer.step()
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                    checkpoint(done + 1, None)  # resumes at the top of the next iteration
        else:
            if resume is None:
                diverged = not math.isfinite(full_pass(0, backward=False))
                if 0 in snapshot_at:
                    on_snapshot(0)
                if validator is not None:
                    validator(0, chunk)
                stats.reset()
            while done < steps and not diverged:
                epoch_state = generator.get_state()
                order = _epoch_order(problem, generator, device)
                for lo in range(offset, n, batch_size):
                    if done == steps:
                        break
                    index = order[lo : lo + batch_size]
                    mine = index[slice(*_share(0, len(index), rank, size))]
                    normaliser = _loss_normaliser(problem, index)
                    optimizer.zero_grad(set_to_none=True)
                    batch_loss = torch.zeros((), device=device)
                    starts = range(0, len(mine), chunk)
                    for i, first in enumerate(starts):
                        with _no_sync(forward_model, i < len(starts) - 1):
                            x, y = problem.fetch(mine[first : first + chunk])
                            batch_loss += forward(x, y, normaliser)
                    if size > 1:
                        dist.all_reduce(batch_loss)
                    if not math.isfinite(float(batch_loss)):
                        diverged = True
                        break
                    optimizer.step()
                    done += 1
                    offset = lo + batch_size
                    bar.update(1)
                    if log_every and done % log_every == 0:
                        loss = record(done, False)
                        stats.reset()
                        bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                    if done in snapshot_at:
                        on_snapshot(done)
                    if validator is not None and log_every and done % log_every == 0 and done < steps:
                        validator(done, chunk)
                    checkpoint(done, epoch_state)
                if not log_every or (diverged or done == steps) and stats.seen.sum() > 0:
                    loss = record(done, False)
                    stats.reset()
                    bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                epoch, offset = epoch + 1, 0
            if not diverged and done > 0:
                diverged = not math.isfinite(full_pass(done, backward=False))
                if validator is not None:
                    validator(done, chunk)
    finally:
        bar.close()
        rng.__exit__(None, None, None)
    validation = validator.recorder.history() if validator is not None else None
    return TrainResult(recorder.history(), diverged, done, time.perf_counter() - start, validation, resumed_from)


def _gathered(value: Any, size: int) -> list[Any]:
    """``value`` of every rank, in rank order (``[value]`` in a single process)."""
    if size == 1:
        return [value]
    values: list[Any] = [None] * size
    dist.all_gather_object(values, value)
    return values


def _no_sync(model: nn.Module, skip: bool) -> Any:
    """DDP's ``no_sync`` for all micro-batches but the last of a step (their gradients are reduced once)."""
    inner = getattr(model, "_orig_mod", model)
    if skip and isinstance(inner, nn.parallel.DistributedDataParallel):
        return inner.no_sync()
    return contextlib.nullcontext()


class _Validator:
    """Per-class loss on the problem's validation samples, in eval mode and without gradients; groups from their counts."""

    def __init__(self, problem: Problem, autocast: Any) -> None:
        self.problem, self.samples = problem, problem.validation
        counts = self.samples.class_counts(problem.num_classes)
        self.recorder = HistoryRecorder(counts, None, None)
        self.stats = ClassStats(problem.num_classes, problem.device)
        self.forward = _Pass(problem, self.stats, problem.model, autocast, 1.0)
        self.forward.weights = None  # validation reports the plain cross-entropy

    def __call__(self, step: int, chunk: int) -> None:
        if self.recorder.rows and self.recorder.rows[-1][0] == step:
            return
        rank, size = world()
        self.stats.reset()
        lo, hi = _share(0, len(self.samples), rank, size)
        with torch.no_grad(), _eval_mode(self.problem.model, True):
            for first in range(lo, hi, chunk):
                x, y = self.samples.fetch(slice(first, min(first + chunk, hi)))
                self.forward(x, y, None)
        if size > 1:
            self.stats.all_reduce()
        self.recorder.record(step, True, self.stats)
