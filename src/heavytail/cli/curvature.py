"""``heavytail curvature RUN_ID --steps 0,10,100``: per-class gradient norms and Hessian block traces at a run's snapshots."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from heavytail.cli.common import add_store_options, emit, step_list


def add_parsers(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = sub.add_parser("curvature", help="per-class gradient norms and Hessian block traces at a linear run's snapshots")
    p.add_argument("run_id", metavar="RUN_ID", help="a run kept with --snapshots (unique prefixes work)")
    p.add_argument("--steps", type=step_list, metavar="STEPS", help="snapshot steps, e.g. 0,10,100 (default: every kept snapshot)")
    p.add_argument("--trace", choices=["correct", "paper-code"], default="correct", help="block trace: correct Σ p(1-p)||x||², or the authors' script's Σ p(1-p)·Σx (D3; for pixel-matching only)")
    p.add_argument("--flip", action="store_true", help="evaluate at the negated parameters -W, -b (the paper's path-specificity check)")
    add_store_options(p)
    return {"curvature": cmd_curvature}


def cmd_curvature(args: argparse.Namespace) -> int:
    from heavytail.curvature.snapshots import curvature_report
    from heavytail.store import Store

    record = Store(args.results).load(args.run_id)
    steps = args.steps if args.steps is not None else record.snapshot_steps
    report = curvature_report(record, steps, trace=args.trace, flip=args.flip)
    where = " at -W, -b" if args.flip else ""
    lines = [f"run {record.run_id} ({record.spec.label()}){where}: Spearman rank correlations across classes"]
    lines.append("  step  spearman grad~trace  grad~count  trace~count  grad norm (max/min)   trace (max/min)")
    for step, entry in report["steps"].items():
        r, g, h = entry["spearman"], entry["grad_norm"], entry["hessian_trace"]
        lines.append(
            f"  {step:>4}  {r['grad_trace']:>19.3f}  {r['grad_count']:>10.3f}  {r['trace_count']:>11.3f}"
            f"  {max(g):9.3g}/{min(g):<9.3g}  {max(h):9.3g}/{min(h):<9.3g}"
        )
    emit(args, report, "\n".join(lines))
    return 0
