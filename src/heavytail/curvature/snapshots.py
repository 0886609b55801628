"""Per-class gradient norms and Hessian block traces at the snapshots a stored run kept.

The run's data are rebuilt from its spec (deterministic given the seed), so only the parameters
at the chosen steps are stored (``heavytail run ... --snapshots 0,10,100``).
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

from heavytail.curvature.softmax_blocks import (
    BlockStats,
    TraceVariant,
    correlations,
    flipped,
    linear_parameters,
    softmax_blocks,
)
from heavytail.options import ConfigError
from heavytail.problems.base import Problem
from heavytail.store import RunRecord


def check_snapshots(record: RunRecord, steps: Iterable[int]) -> list[int]:
    """``steps`` in order, after checking that the run kept each of them (one-line error otherwise)."""
    steps = list(steps)
    missing = [s for s in steps if s not in record.snapshot_steps]
    if missing:
        kept = ", ".join(map(str, record.snapshot_steps)) or "none"
        raise ConfigError(
            f"run {record.run_id} kept no snapshot at step {missing[0]} (kept: {kept}); "
            f"rerun it with `heavytail run ... --snapshots` including {','.join(map(str, missing))}"
        )
    return steps


def blocks_at(problem: Problem, state: dict[str, torch.Tensor], *, trace: TraceVariant = "correct", flip: bool = False) -> BlockStats:
    """Closed-form block statistics of ``problem``'s data at a linear model's ``state`` (negated if ``flip``)."""
    if problem.y.dim() != 1:
        raise ConfigError("closed-form blocks need one target per sample (a classification problem such as linear)")
    state = flipped(state) if flip else state
    weight, bias = linear_parameters(state)
    device = problem.x.device
    return softmax_blocks(problem.x, problem.y, weight.to(device), None if bias is None else bias.to(device), trace=trace)


def curvature_report(
    record: RunRecord,
    steps: Iterable[int],
    *,
    trace: TraceVariant = "correct",
    flip: bool = False,
    problem: Problem | None = None,
) -> dict[str, Any]:
    """``{"steps": {"t": {"grad_norm", "hessian_trace", "class_counts", "spearman"}}}``, classes in index order."""
    steps = check_snapshots(record, steps)
    problem = problem or record.spec.build_problem()
    counts = problem.class_counts().tolist()
    report: dict[str, Any] = {}
    for step in steps:
        stats = blocks_at(problem, record.snapshot(step), trace=trace, flip=flip)
        report[str(step)] = {
            "grad_norm": stats.grad_norm.tolist(),
            "hessian_trace": stats.hessian_trace.tolist(),
            "class_counts": counts,
            "spearman": correlations(stats, counts),
        }
    return {"steps": report}
