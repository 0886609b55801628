"""``heavytail data verify|download NAME...``: the data directory's files, checked or fetched; ``data show``: examples."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from heavytail.cli.common import add_data_dir_option, emit
from heavytail.options import ConfigError, parse_assignments

SHOWABLE = ("mnist", "barcoded-mnist")


def add_parsers(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = sub.add_parser("data", help="check or download datasets in the data directory")
    actions = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    for action, text in (("verify", "which files are present, their sizes and checksums"), ("download", "fetch missing or damaged files (networked machine)")):
        q = actions.add_parser(action, help=text)
        q.add_argument("datasets", nargs="+", metavar="NAME", help="dataset names (see `heavytail data verify --help`)")
        add_data_dir_option(q)
        q.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    q = actions.add_parser("show", help="a grid of example images with their classes")
    q.add_argument("datasets", nargs=1, metavar="NAME", help=f"one of: {', '.join(SHOWABLE)}")
    q.add_argument("--out", metavar="PATH", default="examples.png", help="image file to write (default: examples.png)")
    q.add_argument("--count", type=int, default=32, help="number of examples (default: 32)")
    q.add_argument("--seed", type=int, default=0, help="which examples (default: 0)")
    q.add_argument("-p", dest="options", action="append", metavar="KEY=VALUE", help="source=test|train, bits=B, zero_code=false")
    add_data_dir_option(q)
    return {"data": cmd_data}


def cmd_show(args: argparse.Namespace) -> int:
    """Draw ``--count`` examples of MNIST or Barcoded MNIST with their class, digit and code."""
    import numpy as np

    from heavytail.data.barcode import barcoded_samples
    from heavytail.data.mnist import load_mnist
    from heavytail.options import build_options
    from heavytail.plots import figure_examples, save_figure
    from heavytail.problems.mnist import BarcodedOnlyProblem

    name = args.datasets[0]
    if name not in SHOWABLE:
        raise ConfigError(f"cannot show {name!r}; choose one of: {', '.join(SHOWABLE)}")
    if not 1 <= args.count <= 400:
        raise ConfigError(f"bad --count {args.count}; expected 1 <= count <= 400")
    options = build_options(BarcodedOnlyProblem, {"source": "test", **parse_assignments(args.options, "show")}, "show")
    images, digits = load_mnist(options.source, args.data_dir)
    generator = np.random.default_rng(args.seed)
    if name == "mnist":
        pick = generator.choice(len(digits), args.count, replace=False)
        shown, titles = images[pick], [f"digit {int(d)}" for d in digits[pick]]
    else:
        stamped, labels = barcoded_samples(images, digits, options.bits, 1, options.zero_code, generator)
        pick = np.sort(generator.choice(len(labels), min(args.count, len(labels)), replace=False))
        shown = stamped[pick]
        titles = [f"class {int(k)}\ncode {int(k) // 10}, digit {int(k) % 10}" for k in labels[pick]]
    out = save_figure(figure_examples(shown, titles, f"{name} ({options.source} split)"), args.out, formats=("png",))
    print(out[0])
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_command == "show":
        return cmd_show(args)
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
