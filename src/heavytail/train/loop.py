"""The training loop: one forward and one backward per step, per-class statistics from that same pass.

Full batch: the gradient of the mean loss over all samples, accumulated over chunks when the batch
does not fit in memory (each chunk's summed loss divided by the full normaliser, so the accumulated
gradient is the unchunked one). The row logged at step t comes from the forward pass that computed
the step-t gradient; only the final iterate needs one extra forward pass.

Mini-batch: shuffled batches each epoch; a row per epoch accumulates the statistics of its batches,
plus exact passes over all samples at the first and the final iterate.

Models with dropout (decisions D12): with ``problem.log_mode == "eval"`` every exact row comes from a
separate no-grad pass in eval mode (dropout off; one more forward per step), with ``"train"`` from
the training pass (dropout on, as the paper's code logged them). Dropout masks are drawn from a
generator seeded by the run's seed, so a run is reproducible.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Collection

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer
from tqdm.auto import tqdm

from heavytail.problems.base import Problem
from heavytail.seeding import derive_seed
from heavytail.train.history import History, HistoryRecorder
from heavytail.train.metrics import ClassStats

LOGIT_MEMORY_BUDGET = 1 << 29  # bytes of logits (and their gradient) one chunk may hold by default
CPU_CHUNK_BUDGET = 1 << 25  # on the CPU: small enough that a chunk's tensors are reused from malloc's heap
# instead of mapped afresh (page-faulted) every step, which cost ~40 % of the CPU time of a CNN or
# last-layer step with one big chunk; the smaller GEMMs cost nothing measurable (bench/README.md)


@dataclass
class TrainResult:
    """What :func:`train` returns: the history, whether the loss became NaN/inf, and the time taken."""

    history: History
    diverged: bool
    steps_done: int
    wall_time: float


def auto_chunk_size(problem: Problem) -> int:
    """Samples per chunk so that logits, probabilities, their gradient and the model's activations fit in the
    memory budget (a smaller one on the CPU, where big buffers allocated every step are page-faulted every step)."""
    targets_per_sample = problem.y[0].numel() if problem.y.dim() > 1 else 1
    bytes_per_sample = 3 * 4 * problem.num_classes * targets_per_sample + problem.activation_bytes_per_sample
    budget = CPU_CHUNK_BUDGET if problem.y.device.type == "cpu" else LOGIT_MEMORY_BUDGET
    return max(1, budget // bytes_per_sample)


def has_dropout(model: nn.Module) -> bool:
    """Whether ``model`` drops activations in training mode, so its losses differ between train and eval mode."""
    return any(
        (isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0) or (isinstance(m, nn.MultiheadAttention) and m.dropout > 0)
        for m in model.modules()
    )


@contextlib.contextmanager
def _eval_mode(model: nn.Module, on: bool):  # noqa: ANN202 (a context manager)
    """Put ``model`` in eval mode inside the block when ``on``, back in training mode after it."""
    if on:
        model.eval()
    try:
        yield
    finally:
        if on:
            model.train()


def _seeded_dropout(seed: int, device: torch.device) -> contextlib.ExitStack:
    """A context in which torch's global generators (the dropout masks') are seeded from ``seed``, restored after."""
    stack = contextlib.ExitStack()
    cuda = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
    stack.enter_context(torch.random.fork_rng(devices=cuda))
    torch.manual_seed(derive_seed(seed, "dropout"))
    return stack


class _Pass:
    """Forward (and backward) of one chunk of samples; updates the per-class statistics (unless ``stats`` is None)."""

    def __init__(self, problem: Problem, stats: ClassStats | None) -> None:
        self.model, self.num_classes, self.stats = problem.model, problem.num_classes, stats
        self.weights = problem.class_weights

    def __call__(self, x: Tensor, y: Tensor, normaliser: Tensor | float | None) -> Tensor:
        """Return the summed (weighted) loss of the chunk; backpropagate it / normaliser unless None."""
        logits = self.model(x).reshape(-1, self.num_classes)
        targets = y.reshape(-1)
        losses = F.cross_entropy(logits, targets, reduction="none")
        if self.stats is not None:
            self.stats.add(losses, targets, logits)
        total = losses.sum() if self.weights is None else (losses * self.weights[targets]).sum()
        if normaliser is not None:
            (total / normaliser).backward()
        return total.detach()


def _loss_normaliser(problem: Problem, y: Tensor) -> Tensor | float:
    """Denominator of the mean loss over targets ``y``: their count, or the sum of their class weights."""
    return float(y.numel()) if problem.class_weights is None else problem.class_weights[y.reshape(-1)].sum()


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
    chunk = chunk_size or auto_chunk_size(problem)
    if chunk < 1:
        raise ValueError(f"chunk size must be >= 1, got {chunk}")
    recorder = recorder or HistoryRecorder(problem.class_counts(), problem.class_weights, problem.class_groups)
    stats = ClassStats(problem.num_classes, problem.y.device)
    forward = _Pass(problem, stats)
    model = problem.model
    model.train()
    dropout = has_dropout(model)
    eval_rows = dropout and problem.log_mode == "eval"  # rows from an evaluation pass (D12)
    train_forward = _Pass(problem, None) if eval_rows else forward  # the gradient's pass; records the rows otherwise
    rng = _seeded_dropout(seed, problem.y.device) if dropout else contextlib.ExitStack()
    start = time.perf_counter()
    bar = tqdm(total=steps, disable=not progress, unit="step", leave=False, dynamic_ncols=True)

    full_normaliser = _loss_normaliser(problem, problem.y)  # the same every full-batch step: computed once
    snapshot_at = frozenset(snapshot_steps) if on_snapshot is not None else frozenset()

    def full_pass(step: int, backward: bool) -> float:
        stats.reset()
        if backward:
            with torch.enable_grad():
                for lo in range(0, n, chunk):
                    train_forward(problem.x[lo : lo + chunk], problem.y[lo : lo + chunk], full_normaliser)
        if not backward or eval_rows:
            with torch.no_grad(), _eval_mode(model, eval_rows):
                for lo in range(0, n, chunk):
                    forward(problem.x[lo : lo + chunk], problem.y[lo : lo + chunk], None)
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
                order = torch.randperm(n, generator=generator).to(problem.y.device)
                for lo in range(0, n, batch_size):
                    if done == steps:
                        break
                    index = order[lo : lo + batch_size]
                    normaliser = _loss_normaliser(problem, problem.y[index])
                    optimizer.zero_grad(set_to_none=True)
                    batch_loss = sum(
                        forward(problem.x[index[i : i + chunk]], problem.y[index[i : i + chunk]], normaliser)
                        for i in range(0, len(index), chunk)
                    )
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
