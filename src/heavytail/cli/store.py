"""``heavytail store check [--repair]``: find damaged runs, stale locks and stray files in a store, and set them right."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from heavytail.cli.common import add_store_options, emit


def add_parsers(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = sub.add_parser("store", help="check a results store for damaged runs, stale locks and stray files")
    actions = p.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    q = actions.add_parser("check", help="report every damaged run, stale lock and stray file (exit 1 if any)")
    q.add_argument("--repair", action="store_true", help="quarantine damaged runs (moved under RESULTS/quarantine/), remove stale locks and stray files")
    add_store_options(q)
    return {"store": cmd_store}


def cmd_store(args: argparse.Namespace) -> int:
    """Exit 0 when the store is sound (or everything found was repaired), 1 otherwise."""
    from heavytail.store import Store

    store = Store(args.results)
    store.require_root()
    checked, findings = store.scan(repair=args.repair)
    rows = [{"kind": f.kind, "path": str(f.path), "reason": f.reason, "repaired": f.repaired} for f in findings]
    lines = [f"{checked} runs checked in {store.root}: {len(findings) or 'no'} problem{'s' if len(findings) != 1 else ''}"]
    for f in findings:
        lines.append(f"{f.kind:<11}  {f.path}: {f.reason}" + (f"  [{f.repaired}]" if f.repaired else ""))
    emit(args, {"root": str(store.root), "checked": checked, "problems": rows}, "\n".join(lines))
    return 1 if any(f.repaired is None for f in findings) else 0
