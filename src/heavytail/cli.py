"""The ``heavytail`` command: a thin layer over the Python API (run, list, plot, demo, optimizers, problems)."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import signal
import sys
from typing import Any, Sequence

from heavytail.options import ConfigError, parse_assignments
from heavytail.store import RunLocked, Store


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", metavar="DIR", help="results directory (default: $HEAVYTAIL_RESULTS or ./heavytail-results)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from heavytail import __version__

    parser = argparse.ArgumentParser(
        prog="heavytail",
        description="How optimizers fit rare and frequent classes under heavy-tailed class imbalance.",
    )
    parser.add_argument("--version", action="version", version=f"heavytail {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="train one run (or reuse its stored result) and summarise it")
    p.add_argument("problem", metavar="PROBLEM", help="problem name, e.g. linear (see `heavytail problems`)")
    p.add_argument("--optimizer", required=True, metavar="NAME", help="registered name (see `heavytail optimizers`) or package.module:Class")
    p.add_argument("--lr", required=True, type=float, help="step size")
    p.add_argument("--steps", type=int, default=100, help="optimizer steps (default: 100)")
    p.add_argument("--seed", type=int, default=0, help="seed for data and initialisation (default: 0)")
    p.add_argument("-p", dest="problem_options", action="append", metavar="KEY=VALUE", help="problem option, repeatable (e.g. -p m=9)")
    p.add_argument("-o", dest="optimizer_options", action="append", metavar="KEY=VALUE", help="optimizer option, repeatable (e.g. -o momentum=0.5)")
    p.add_argument("--batch-size", type=_positive_int, help="mini-batch size (default: full batch)")
    p.add_argument("--chunk-size", type=_positive_int, help="samples per forward/backward chunk (default: automatic, by memory)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--groups", type=_positive_int, default=10, help="frequency groups in the summary (default: 10)")
    p.add_argument("--force", action="store_true", help="recompute even if a finished result is stored")
    _add_store_options(p)

    p = sub.add_parser("list", help="show stored runs")
    _add_store_options(p)

    p = sub.add_parser("plot", help="draw the paper-style per-group figure (PNG and PDF)")
    p.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="runs to plot (unique prefixes work); default: the runs sharing the newest run's problem")
    p.add_argument("--out", metavar="PATH", help="output path without suffix (default: RESULTS/figures/...)")
    p.add_argument("--groups", type=_positive_int, default=10, help="frequency groups (default: 10)")
    p.add_argument("--title", help="figure title")
    _add_store_options(p)

    p = sub.add_parser("demo", help="the linear-model figure at laptop scale (v1 Fig 3 / NeurIPS Fig 4), a few minutes on a CPU")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--out", metavar="PATH", help="figure path without suffix (default: RESULTS/figures/demo)")
    _add_store_options(p)

    sub.add_parser("optimizers", help="list registered optimizers")
    sub.add_parser("problems", help="list problems and their -p options")
    return parser


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=1) if args.json else text)


def _format_groups(summary: dict[str, Any]) -> str:
    if summary["group_loss_initial"] is None:
        return ""
    lines = ["  group  classes  share   loss at start  loss at end"]
    for row, start, end in zip(summary["groups"], summary["group_loss_initial"], summary["group_loss_final"]):
        lines.append(f"  {row['group']:>5}  {row['num_classes']:>7}  {row['mass']:5.3f}  {start:13.4f}  {end:11.4f}")
    return "\n".join(lines)


def _format_run(summary: dict[str, Any]) -> str:
    def number(value: Any) -> str:
        return "nan" if value is None else f"{value:.4f}"

    reused = " (stored result reused)" if summary["skipped"] else ""
    return "\n".join(
        [
            f"run {summary['run_id']}: {summary['status']}{reused}",
            f"  {summary['problem']} n={summary['n']} d={summary['d']} c={summary['c']}; "
            f"{summary['optimizer']} lr={summary['lr']:.4g}; {summary['steps_done']}/{summary['steps']} steps"
            + (f" in {summary['wall_time']:.1f} s" if summary.get("wall_time") else ""),
            f"  loss: initial {number(summary['initial_loss'])}, final {number(summary['final_loss'])}, "
            f"max {number(summary['max_loss'])}",
            _format_groups(summary),
            f"  stored in {summary['path']}",
        ]
    )


def cmd_run(args: argparse.Namespace) -> int:
    from heavytail.runner import run, summarize
    from heavytail.spec import RunSpec

    spec = RunSpec(
        problem=args.problem,
        problem_options=parse_assignments(args.problem_options, f"{args.problem} problem"),
        optimizer=args.optimizer,
        optimizer_options=parse_assignments(args.optimizer_options, "optimizer"),
        lr=args.lr,
        steps=args.steps,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    record = run(
        spec,
        Store(args.results),
        device=args.device,
        force=args.force,
        progress=not args.json and sys.stderr.isatty(),
        chunk_size=args.chunk_size,
    )
    summary = summarize(record, args.groups)
    _emit(args, summary, _format_run(summary))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    records = list(Store(args.results).records())
    rows = []
    for record in records:
        result = record.result or {}
        rows.append(
            {
                "run_id": record.run_id,
                "status": record.status,
                "spec": record.spec.to_dict(),
                "label": record.spec.label(),
                "final_loss": result.get("final_loss"),
                "wall_time": result.get("wall_time"),
                "finished": result.get("finished"),
            }
        )
    lines = [f"{len(rows)} runs in {Store(args.results).root}"]
    for row in rows:
        loss = "" if row["final_loss"] is None else f"final loss {row['final_loss']:.4f}"
        lines.append(f"{row['run_id']}  {row['status']:<8}  {row['label']}  {loss}")
    _emit(args, rows, "\n".join(lines))
    return 0


def _default_plot_records(store: Store) -> list[Any]:
    """Finished runs that share the newest finished run's problem, steps, seed and batch size."""
    finished = [r for r in store.records() if r.status in ("complete", "diverged") and r.has_history]
    if not finished:
        raise ConfigError(f"no finished runs to plot in {store.root}")
    newest = max(finished, key=lambda r: r.result.get("finished", ""))

    def key(r: Any) -> tuple[Any, ...]:
        spec = r.spec.to_dict()
        return tuple(json.dumps(spec.get(k), sort_keys=True) for k in ("problem", "problem_options", "steps", "seed", "batch_size"))

    return sorted((r for r in finished if key(r) == key(newest)), key=lambda r: (r.spec.optimizer, r.spec.lr))


def cmd_plot(args: argparse.Namespace) -> int:
    from heavytail.plots import figure_per_group, save_figure

    store = Store(args.results)
    records = [store.load(run_id) for run_id in args.run_ids] if args.run_ids else _default_plot_records(store)
    missing = [r.run_id for r in records if not r.has_history]
    if missing:
        raise ConfigError(f"runs without a stored history cannot be plotted: {', '.join(missing)}")
    ids = ",".join(sorted(r.run_id for r in records))
    out = args.out or store.root / "figures" / f"{records[0].spec.problem}-{hashlib.sha256(ids.encode()).hexdigest()[:8]}"
    paths = save_figure(figure_per_group(records, args.groups, title=args.title), out)
    _emit(args, {"runs": [r.run_id for r in records], "files": [str(p) for p in paths]}, "\n".join(map(str, paths)))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from heavytail.demo import DEMO_TITLE, demo_specs
    from heavytail.plots import figure_per_group, save_figure
    from heavytail.runner import run, summarize

    store = Store(args.results)
    specs = demo_specs()
    records, summaries = [], []
    for i, spec in enumerate(specs, 1):
        if not args.json:
            print(f"[{i}/{len(specs)}] {spec.label()}", file=sys.stderr, flush=True)
        record = run(spec, store, device=args.device, progress=not args.json and sys.stderr.isatty())
        records.append(record)
        summaries.append(summarize(record))
    paths = save_figure(figure_per_group(records, title=DEMO_TITLE), args.out or store.root / "figures" / "demo")
    lines = [DEMO_TITLE, "least-frequent group's loss (start -> end) vs most-frequent group's:"]
    for s in summaries:
        lines.append(
            f"  {s['optimizer']:<7} lr={s['lr']:<8.3g} overall {s['initial_loss']:.2f} -> {s['final_loss']:.2f}   "
            f"most frequent {s['group_loss_initial'][0]:.2f} -> {s['group_loss_final'][0]:.2f}   "
            f"least frequent {s['group_loss_initial'][-1]:.2f} -> {s['group_loss_final'][-1]:.2f}"
        )
    lines += ["figure: " + ", ".join(map(str, paths))]
    _emit(args, {"runs": summaries, "files": [str(p) for p in paths]}, "\n".join(lines))
    return 0


def cmd_optimizers(args: argparse.Namespace) -> int:
    from heavytail.optim import optimizer_entries

    for entry in optimizer_entries():
        defaults = ", ".join(f"{k}={v}" for k, v in entry.defaults.items())
        print(f"{entry.name:<10} {entry.cls.__module__}.{entry.cls.__name__}({defaults})  {entry.description}")
    return 0


def cmd_problems(args: argparse.Namespace) -> int:
    from heavytail.problems import problem_names
    from heavytail.problems.registry import problem_class

    for name in problem_names():
        cls = problem_class(name)
        print(f"{name}: {(cls.__doc__ or '').strip().splitlines()[0]}")
        for f in dataclasses.fields(cls):
            print(f"  -p {f.name}=  (default: {f.default})")
    return 0


COMMANDS = {
    "run": cmd_run,
    "list": cmd_list,
    "plot": cmd_plot,
    "demo": cmd_demo,
    "optimizers": cmd_optimizers,
    "problems": cmd_problems,
}


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C, so partial results are saved


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, RunLocked) as exc:
        print(f"heavytail: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("heavytail: interrupted; finished runs are kept in the store", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
