"""The training loop: one forward and one backward per step, per-class statistics from that same pass.

Full batch: the gradient of the mean loss over all samples, accumulated over chunks when the batch
does not fit in memory (each chunk's summed loss divided by the full normaliser, so the accumulated
gradient is the unchunked one). The row logged at step t comes from the forward pass that computed
the step-t gradient; only the final iterate needs one extra forward pass.

Mini-batch: shuffled batches each epoch; a row per epoch accumulates the statistics of its batches,
plus exact passes over all samples at the first and the final iterate.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Collection

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.optim import Optimizer
from tqdm.auto import tqdm

from heavytail.problems.base import Problem
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


class _Pass:
    """Forward (and backward) of one chunk of samples; updates the per-class statistics."""

    def __init__(self, problem: Problem, stats: ClassStats) -> None:
        self.model, self.num_classes, self.stats = problem.model, problem.num_classes, stats
        self.weights = problem.class_weights

    def __call__(self, x: Tensor, y: Tensor, normaliser: Tensor | float | None) -> Tensor:
        """Return the summed (weighted) loss of the chunk; backpropagate it / normaliser unless None."""
        logits = self.model(x).reshape(-1, self.num_classes)
        targets = y.reshape(-1)
        losses = F.cross_entropy(logits, targets, reduction="none")
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
    start = time.perf_counter()
    bar = tqdm(total=steps, disable=not progress, unit="step", leave=False, dynamic_ncols=True)

    full_normaliser = _loss_normaliser(problem, problem.y)  # the same every full-batch step: computed once
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
    return TrainResult(recorder.history(), diverged, done, time.perf_counter() - start)
