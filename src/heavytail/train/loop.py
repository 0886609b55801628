"""The training loop: one forward and one backward per step, per-class statistics from that same pass.

Full batch: the gradient of the mean loss over all samples, accumulated over chunks when the batch
does not fit in memory (each chunk's summed loss divided by the full normaliser, so the accumulated
gradient is the unchunked one). The row logged at step t comes from the forward pass that computed
the step-t gradient; only the final iterate needs one extra forward pass.

Mini-batch: each step one batch of whole blocks of rows (a block is one sample, or one window of a
text problem's B streams), in a fresh random order every epoch or, for the paper's text windows, the
same order every epoch; a row per epoch accumulates the statistics of its batches, plus exact passes
over all samples at the first and the final iterate. Dropout and other randomness in the model draw
from a generator seeded by the run's seed.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Collection, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.optim import Optimizer
from tqdm.auto import tqdm

from heavytail.problems.base import Problem
from heavytail.seeding import derive_seed
from heavytail.train.history import History, HistoryRecorder
from heavytail.train.metrics import ClassStats

LOGIT_MEMORY_BUDGET = 1 << 29  # bytes of logits (and their gradient) one chunk may hold by default


@dataclass
class TrainResult:
    """What :func:`train` returns: the history, whether the loss became NaN/inf, and the time taken."""

    history: History
    diverged: bool
    steps_done: int
    wall_time: float


def auto_chunk_size(problem: Problem) -> int:
    """Samples per chunk so that logits, probabilities, their gradient and the model's activations fit in the memory budget."""
    targets_per_sample = problem.y[0].numel() if problem.y.dim() > 1 else 1
    bytes_per_sample = 3 * 4 * problem.num_classes * targets_per_sample + problem.activation_bytes_per_sample
    return max(1, LOGIT_MEMORY_BUDGET // bytes_per_sample)


def _seeded_dropout(seed: int, device: torch.device) -> contextlib.ExitStack:
    """A context in which torch's global generators (the dropout masks') are seeded from ``seed``, restored after."""
    stack = contextlib.ExitStack()
    cuda = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
    stack.enter_context(torch.random.fork_rng(devices=cuda))
    torch.manual_seed(derive_seed(seed, "dropout"))
    return stack


class _Pass:
    """Forward (and backward) of one chunk of samples; updates the per-class statistics."""

    def __init__(self, problem: Problem, stats: ClassStats) -> None:
        self.model, self.num_classes, self.stats = problem.model, problem.num_classes, stats
        self.ignore = problem.ignore_index
        self.weights = problem.class_weights
        if self.weights is not None and self.ignore is not None:
            self.weights = torch.cat([self.weights, self.weights.new_zeros(1)])  # slot c: padding weighs 0

    def _target_weights(self, targets: Tensor) -> Tensor:
        if self.ignore is not None:
            targets = targets.masked_fill(targets == self.ignore, self.num_classes)
        return self.weights[targets]

    def normaliser(self, y: Tensor) -> Tensor | float:
        """Denominator of the mean loss over targets ``y``: their count, or the sum of their class weights (padding left out)."""
        y = y.reshape(-1)
        if self.weights is not None:
            return self._target_weights(y).sum()
        return float(y.numel()) if self.ignore is None else (y != self.ignore).sum()

    def __call__(self, x: Tensor, y: Tensor, normaliser: Tensor | float | None) -> Tensor:
        """Return the summed (weighted) loss of the chunk; backpropagate it / normaliser unless None."""
        logits = self.model(x).reshape(-1, self.num_classes)
        targets = y.reshape(-1)
        losses = F.cross_entropy(logits, targets, reduction="none", ignore_index=-100 if self.ignore is None else self.ignore)
        self.stats.add(losses, targets, logits)
        total = losses.sum() if self.weights is None else (losses * self._target_weights(targets)).sum()
        if normaliser is not None:
            (total / normaliser).backward()
        return total.detach()


Rows = Tensor | slice  # the rows of a mini-batch: gathered indices, or a contiguous range (a view)


def _epoch_batches(problem: Problem, batch_size: int, generator: torch.Generator) -> Iterator[Rows]:
    """The mini-batches of one epoch: ``batch_size // batch_block`` whole blocks each, in a fresh random order
    (one ``randperm`` of the blocks per epoch) or, when the problem does not shuffle, in order."""
    block = problem.batch_block
    blocks, per_batch = problem.num_samples // block, batch_size // block
    if not problem.shuffle_batches:
        for lo in range(0, blocks, per_batch):
            yield slice(lo * block, min(lo + per_batch, blocks) * block)
        return
    order = torch.randperm(blocks, generator=generator).to(problem.y.device)
    offsets = torch.arange(block, device=problem.y.device)
    for lo in range(0, blocks, per_batch):
        chosen = order[lo : lo + per_batch]
        yield chosen if block == 1 else (chosen[:, None] * block + offsets).reshape(-1)


def _chunks(rows: Rows, chunk: int) -> Iterator[Rows]:
    """``rows`` in pieces of at most ``chunk`` rows."""
    if isinstance(rows, slice):
        yield from (slice(lo, min(lo + chunk, rows.stop)) for lo in range(rows.start, rows.stop, chunk))
    else:
        yield from (rows[i : i + chunk] for i in range(0, len(rows), chunk))


def steps_per_epoch(problem: Problem, batch_size: int | None) -> int:
    """Optimizer steps in one pass over the data: 1 in full batch, else the number of mini-batches."""
    if batch_size is None:
        return 1
    blocks = problem.num_samples // problem.batch_block
    return math.ceil(blocks / max(1, batch_size // problem.batch_block))


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
) -> TrainResult:
    """Run ``steps`` optimizer steps (full batch when ``batch_size`` is None) and log per-class losses.

    Pass a ``recorder`` to keep the rows logged so far if training is interrupted. Training stops at
    the first NaN/inf loss and returns with ``diverged=True``. ``on_snapshot(t)`` is called when the
    model holds the iterate after t steps, for each t in ``snapshot_steps`` (before step t+1's update).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    n = problem.num_samples
    if batch_size is not None and not 1 <= batch_size <= n:
        raise ValueError(f"batch size must be in [1, {n}], got {batch_size}")
    if batch_size is not None and batch_size % problem.batch_block:
        raise ValueError(f"batch size must be a multiple of the problem's {problem.batch_block}-row blocks, got {batch_size}")
    chunk = chunk_size or auto_chunk_size(problem)
    if chunk < 1:
        raise ValueError(f"chunk size must be >= 1, got {chunk}")
    recorder = recorder or HistoryRecorder(problem.class_counts(), problem.class_weights, problem.class_groups)
    stats = ClassStats(problem.num_classes, problem.y.device, ignore_index=problem.ignore_index)
    forward = _Pass(problem, stats)
    model = problem.model
    model.train()
    start = time.perf_counter()
    rng = _seeded_dropout(seed, problem.y.device)
    bar = tqdm(total=steps, disable=not progress, unit="step", leave=False, dynamic_ncols=True)

    full_normaliser = forward.normaliser(problem.y)  # the same every full-batch step: computed once
    snapshot_at = frozenset(snapshot_steps) if on_snapshot is not None else frozenset()

    def full_pass(step: int, backward: bool) -> float:
        stats.reset()
        normaliser = full_normaliser if backward else None
        with torch.set_grad_enabled(backward):
            for lo in range(0, n, chunk):
                forward(problem.x[lo : lo + chunk], problem.y[lo : lo + chunk], normaliser)
        return recorder.record(step, True, stats)

    diverged, done = False, 0
    try:
        if batch_size is None:
            for done in range(steps + 1):
                if done in snapshot_at:
                    on_snapshot(done)
                optimizer.zero_grad(set_to_none=True)
                loss = full_pass(done, backward=done < steps)
                if not math.isfinite(loss):
                    diverged = True
                    break
                if done < steps:
                    optimizer.step()
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        else:
            diverged = not math.isfinite(full_pass(0, backward=False))
            if 0 in snapshot_at:
                on_snapshot(0)
            generator = torch.Generator().manual_seed(seed)
            while done < steps and not diverged:
                stats.reset()
                for rows in _epoch_batches(problem, batch_size, generator):
                    if done == steps:
                        break
                    normaliser = forward.normaliser(problem.y[rows])
                    optimizer.zero_grad(set_to_none=True)
                    batch_loss = sum(forward(problem.x[part], problem.y[part], normaliser) for part in _chunks(rows, chunk))
                    if not math.isfinite(float(batch_loss)):
                        diverged = True
                        break
                    optimizer.step()
                    done += 1
                    if done in snapshot_at:
                        on_snapshot(done)
                    bar.update(1)
                loss = recorder.record(done, False, stats)
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            if not diverged and done > 0:
                diverged = not math.isfinite(full_pass(done, backward=False))
    finally:
        bar.close()
        rng.close()
    return TrainResult(recorder.history(), diverged, done, time.perf_counter() - start)
