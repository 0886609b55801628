"""``heavytail data verify|download NAME...``: the data directory's files, checked or fetched."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from heavytail.cli.common import add_data_dir_option, emit


def add_parsers(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = sub.add_parser("data", help="check or download datasets in the data directory")
    actions = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    for action, text in (("verify", "which files are present, their sizes and checksums"), ("download", "fetch missing or damaged files (networked machine)")):
        q = actions.add_parser(action, help=text)
        q.add_argument("datasets", nargs="+", metavar="NAME", help="dataset names (see `heavytail data verify --help`)")
        add_data_dir_option(q)
        q.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    return {"data": cmd_data}


def cmd_data(args: argparse.Namespace) -> int:
    from heavytail.data.datadir import download, get_dataset, resolve_data_dir, verify

    datasets = [get_dataset(name) for name in args.datasets]  # all names checked before any work
    root = resolve_data_dir(args.data_dir)
    report: dict[str, Any] = {"data_dir": str(root), "datasets": {}}
    lines = [f"data directory: {root}"]
    for ds in datasets:
        statuses = download(ds, root) if args.data_command == "download" else verify(ds, root)
        report["datasets"][ds.name] = [s.to_dict() for s in statuses]
        lines.append(f"{ds.name}: {ds.description}")
        for s in statuses:
            state = "ok" if s.ok else s.problem
            size = f"{s.size:,} B" if s.size is not None else "-"
            lines.append(f"  {'✓' if s.ok else '✗'} {s.name:<28} {size:>14}  {state}  ({s.path})")
    emit(args, report, "\n".join(lines))
    bad = [s for ds in report["datasets"].values() for s in ds if not s["ok"]]
    return 1 if bad else 0
