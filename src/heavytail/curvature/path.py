"""Curvature along an optimizer's path on the linear problem (v1 Figs 5, 6; NeurIPS gradient/Hessian figures).

The path is one stored run kept with snapshots; at each checkpoint every class's gradient norm and
Hessian block trace (closed form), the same at the negated parameters (E10), the magnitude of
same-class vs cross-class Hessian blocks on a sample of classes (E11) and the probability of the
correct class per natural group (E12).

Step size: at ``lr="protocol"`` the path's step size is the one the `linear` preset's protocol selects
for that optimizer at the same scale (its sweep is run, or reused from the store, for that optimizer
only), and the path is that very run, recomputed once to keep snapshots. A number instead fixes the
step size (the paper scale uses the step sizes the paper plotted, which its own protocol chose at m = 11).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from heavytail.curvature.snapshots import blocks_at
from heavytail.curvature.softmax_blocks import (
    block_dominance,
    class_groups,
    correct_class_probability,
    correlations,
    hessian_entries,
    linear_parameters,
    probabilities,
)
from heavytail.problems.base import Problem
from heavytail.runner import run
from heavytail.spec import RunSpec
from heavytail.store import RunRecord, Store

STRUCTURE_CLASSES = 10  # E11: classes sampled log-uniformly over the class index
STRUCTURE_COORDS = 11  # and input coordinates linearly spaced, as in the authors' subset_hessian.py


def protocol_step_size(optimizer: str, scale: str, *, store: Store, progress: bool) -> tuple[float, str, int]:
    """(lr, reason, steps) that the `linear` preset's protocol selects for ``optimizer`` at ``scale``."""
    from heavytail.presets import linear
    from heavytail.sweep.executors import LocalExecutor
    from heavytail.sweep.reproduce import reproduce

    base = linear.PRESET.scale(scale)
    only = dataclasses.replace(base, curves={optimizer: base.curves[optimizer]})
    preset = dataclasses.replace(linear.PRESET, name=f"linear-{optimizer}", scales={scale: only})
    summary = reproduce(preset, scale, store=store, executor=LocalExecutor(), out=store.root / "reproduce" / f"linear-{optimizer}-{scale}", progress=progress)
    entry = summary["optimizers"][optimizer]
    return entry["lr"], f"selected by the `linear` preset's protocol ({scale} scale): {entry['reason']}", base.steps


def structure_sample(num_classes: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Classes log-spaced over the index (frequent to rare) and coordinates linearly spaced (E11)."""
    classes = np.unique(np.geomspace(1, num_classes, STRUCTURE_CLASSES).round().astype(int) - 1)
    coords = np.linspace(0, dim - 1, STRUCTURE_COORDS).round().astype(int)
    return classes, coords


def analyse_path(
    record: RunRecord, problem: Problem, checkpoints: Sequence[int], structure_at: Sequence[int]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Per checkpoint: the closed-form blocks, their rank correlations at W and at −W, E11 block magnitudes,
    E12 probabilities; and the E11 Hessian sub-matrices (step -> matrix) for the figure."""
    counts = problem.class_counts().numpy()
    natural = class_groups(counts, "natural")
    classes, coords = structure_sample(problem.num_classes, problem.x.shape[1])
    steps: dict[str, Any] = {}
    matrices: dict[str, np.ndarray] = {}
    for t in checkpoints:
        state = record.snapshot(t)
        stats, at_minus = blocks_at(problem, state), blocks_at(problem, state, flip=True)
        weight, bias = linear_parameters(state)
        probs = probabilities(problem.x, weight, bias)
        entry: dict[str, Any] = {
            "grad_norm": stats.grad_norm.tolist(),
            "hessian_trace": stats.hessian_trace.tolist(),
            "class_counts": counts.tolist(),
            "spearman": correlations(stats, counts),
            "flipped": {
                "grad_norm": at_minus.grad_norm.tolist(),
                "hessian_trace": at_minus.hessian_trace.tolist(),
                "spearman": correlations(at_minus, counts),
            },
            "loss": stats.loss,
            "correct_class_probability": correct_class_probability(probs, problem.y, natural),
        }
        if t in structure_at:
            entries = hessian_entries(problem.x, probs, classes, coords)
            entry["hessian_structure"] = {"classes": classes.tolist(), "coords": coords.tolist(), **block_dominance(entries, len(classes))}
            matrices[str(t)] = entries
        steps[str(t)] = entry
    return steps, matrices


def grad_hessian_study(params: dict[str, Any], *, store: Store, out: Path, device: str, progress: bool) -> dict[str, Any]:
    """Train (or reuse) the path with snapshots, analyse every checkpoint, draw the figures."""
    from heavytail.curvature.figures import draw_path_figures

    optimizer, checkpoints = params["optimizer"], list(params["checkpoints"])
    if params["lr"] == "protocol":
        lr, reason, steps = protocol_step_size(optimizer, params["scale"], store=store, progress=progress)
    else:
        lr, reason, steps = float(params["lr"]), params["lr_reason"], int(params["steps"])
    spec = RunSpec(problem="linear", problem_options=params["problem_options"], optimizer=optimizer, lr=lr, steps=steps)
    record = run(spec, store, device=device, snapshots=checkpoints, progress=progress)
    problem = spec.build_problem().to(device)
    kept = [t for t in checkpoints if t in record.snapshot_steps]  # a diverged path keeps fewer
    steps_report, matrices = analyse_path(record, problem, kept, params["structure_at"])
    summary: dict[str, Any] = {
        "optimizer": optimizer,
        "lr": lr,
        "lr_reason": reason,
        "run_id": record.run_id,
        "problem_options": dict(params["problem_options"]),
        "sizes": (record.result or {}).get("problem_info", {}),
        "steps": steps_report,
    }
    title = f"{params['title']} — {spec.label()}"
    summary["figures"] = [str(p) for p in draw_path_figures(steps_report, matrices, out, title=title, correlation_steps=params["correlation_steps"])]
    summary["text"] = [f"path: {spec.label()} (run {record.run_id}); step size {reason}"] + [
        f"  t={t:>4}: spearman grad~trace {e['spearman']['grad_trace']:+.3f}, trace~count {e['spearman']['trace_count']:+.3f}, "
        f"grad~count {e['spearman']['grad_count']:+.3f}; at -W: grad~trace {e['flipped']['spearman']['grad_trace']:+.3f}, "
        f"trace~count {e['flipped']['spearman']['trace_count']:+.3f}"
        + (f"; same-class/cross-class |H| {e['hessian_structure']['ratio']:.1f}x" if "hessian_structure" in e else "")
        for t, e in steps_report.items()
    ]
    return summary
