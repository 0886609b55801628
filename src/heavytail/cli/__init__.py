"""The ``heavytail`` command: a thin layer over the Python API (run, list, plot, reproduce, optimizers, problems).

Each further command group lives in a module of this package exposing ``add_parsers(sub)``, which adds
its sub-parsers and returns ``{command: handler}``; :data:`COMMAND_GROUPS` lists those modules.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
import math
import os
import sys
import typing
from pathlib import Path
from typing import Any, Sequence

from heavytail.allocator import reuse_freed_memory
from heavytail.data.datadir import DATA_ENV
from heavytail.options import ConfigError, literal, option_fields, parse_assignments
from heavytail.cli.common import add_data_dir_option, add_execution_options, add_store_options, emit, execution_settings, step_list
from heavytail.spec import RunSpec, TrackedSpec
from heavytail.integrity import CorruptRunError
from heavytail.store import RunLocked, Store
from heavytail.sweep.protocol import SelectionError, lr_of, parse_exponent
from heavytail.sweep.executors import exit_cleanly_on_sigterm
from heavytail.sweep.reproduce import SweepError
from heavytail.train.loop import world


def _int_at_least(low: int, high: int = 2**63 - 1) -> Any:
    """An argparse type: an integer in [low, high], refused in one line naming the value as typed."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            bound = f">= {low}" if high == 2**63 - 1 else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"got {text!r}; expected an integer {bound}")
        return value

    return parse


_positive_int = _int_at_least(1)
_count = _int_at_least(0)


def _step_size(text: str) -> float:
    """A step size as a number (``0.01``, ``1e-3``) or a power of ten in the paper's notation (``10^-2.5``)."""
    expected = "expected a finite positive number (0.01, 1e-3) or 10^E (10^-2.5)"
    try:
        value = lr_of(parse_exponent(text)) if text.startswith(("10^", "10**")) else float(text)
    except (ConfigError, ValueError, OverflowError):
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"bad step size {text!r}; {expected}")
    return value


def _group_count(asked: int | None, num_classes: int, natural: bool = False) -> int | None:
    """``--groups`` clamped to the number of classes, since more would only add empty groups (a note on
    stderr when a number the user gave is clamped); not given: None for a problem's natural groups, else 10."""
    if asked is None and natural:
        return None
    if asked is None or asked <= num_classes:
        return min(asked or 10, num_classes)
    print(f"heavytail: note: --groups {asked} is more than the problem's {num_classes} classes; showing {num_classes} groups", file=sys.stderr)
    return num_classes


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the usage is one ``--help`` away)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"heavytail: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from heavytail import __version__

    parser = _Parser(
        prog="heavytail",
        description="How optimizers fit rare and frequent classes under heavy-tailed class imbalance.",
    )
    parser.add_argument("--version", action="version", version=f"heavytail {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="train one run (or reuse its stored result) and summarise it")
    p.add_argument("problem", metavar="PROBLEM", help="problem name, e.g. linear (see `heavytail problems`)")
    p.add_argument("--optimizer", required=True, metavar="NAME", help="registered name (see `heavytail optimizers`) or package.module:Class")
    p.add_argument("--lr", required=True, type=_step_size, help="step size: a number or 10^E (e.g. 10^-2.5, as the presets use)")
    horizon = p.add_mutually_exclusive_group()
    horizon.add_argument("--steps", type=_count, default=100, help="optimizer steps (default: 100)")
    horizon.add_argument("--epochs", type=_count, help="passes over the data instead of --steps (one step each in full batch)")
    p.add_argument("--seed", type=_count, default=0, help="seed for data and initialisation, >= 0 (default: 0)")
    p.add_argument("-p", dest="problem_options", action="append", metavar="KEY=VALUE", help="problem option, repeatable (e.g. -p m=9)")
    p.add_argument("-o", dest="optimizer_options", action="append", metavar="KEY=VALUE", help="optimizer option, repeatable (e.g. -o momentum=0.5)")
    p.add_argument("--batch-size", type=_positive_int, help="mini-batch size (default: full batch)")
    p.add_argument("--chunk-size", type=_positive_int, help="samples per forward/backward chunk (default: automatic, by memory)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--groups", type=_positive_int, help="equal-mass frequency groups in the summary (default: the problem's natural groups, else 10; at most one per class)")
    p.add_argument("--force", action="store_true", help="recompute even if a finished result is stored")
    p.add_argument("--snapshots", type=step_list, default=[], metavar="STEPS", help="keep the model's parameters after these steps, e.g. 0,10,100 (for `heavytail curvature`)")
    add_execution_options(p)
    add_data_dir_option(p)
    add_store_options(p)

    p = sub.add_parser("list", help="show stored runs")
    add_store_options(p)

    p = sub.add_parser("plot", help="draw the paper-style per-group figure (PNG and PDF)")
    p.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="runs to plot (unique prefixes work; a tracked run's name plots every run of that name); default: each optimizer's newest run on the newest run's problem")
    p.add_argument("--out", metavar="PATH", help="output path without suffix (default: RESULTS/figures/...)")
    p.add_argument("--groups", type=_positive_int, help="equal-mass frequency groups (default: the problem's natural groups, else 10; at most one per class)")
    p.add_argument("--title", help="figure title")
    add_store_options(p)

    p = sub.add_parser("reproduce", help="a paper figure: grid search, step-size selection, figure and summary.json")
    p.add_argument("preset", nargs="?", metavar="PRESET", help="preset name or alias, e.g. linear or v1-fig3")
    p.add_argument("--list", action="store_true", help="list presets with their figure numbers and cost")
    p.add_argument("--scale", default="small", help="small (laptop CPU) or paper (default: small)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--executor", default="local", choices=["local", "slurm"], help="local processes or SLURM jobs via submitit (default: local)")
    p.add_argument("--workers", type=_positive_int, help="local worker processes (default: one per core; one with --device cuda)")
    p.add_argument("--cluster", choices=["slurm", "local", "debug"], help="submitit cluster for --executor slurm (default: detected)")
    p.add_argument("-s", dest="slurm_options", action="append", metavar="KEY=VALUE", help="submitit parameter, repeatable (e.g. -s slurm_partition=gpu -s timeout_min=600)")
    p.add_argument("--out", metavar="DIR", help="where figure and summary.json go (default: RESULTS/reproduce/PRESET-SCALE)")
    p.add_argument("-p", dest="problem_options", action="append", metavar="KEY=VALUE",
                   help="override a problem option of the preset, repeatable (e.g. -p log_mode=train)")  # fmt: skip
    add_execution_options(p, preset_default=True)
    add_data_dir_option(p)
    add_store_options(p)

    sub.add_parser("optimizers", help="list registered optimizers")
    sub.add_parser("problems", help="list problems and their -p options")
    for module in COMMAND_GROUPS:
        COMMANDS.update(importlib.import_module(f"heavytail.cli.{module}").add_parsers(sub))
    return parser


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
    from heavytail.runner import epoch_steps, run, summarize
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
    if args.epochs is not None:  # the same run as --steps of that many steps
        spec = dataclasses.replace(spec.normalized(), steps=epoch_steps(spec.normalized(), args.epochs))
    Store(args.results).require_root(must_exist=False)
    record = run(
        spec,
        Store(args.results),
        device=args.device,
        force=args.force,
        progress=not args.json and sys.stderr.isatty(),
        chunk_size=args.chunk_size,
        snapshots=args.snapshots,
        **execution_settings(args),
    )
    history = record.history if record.has_history else None
    natural = history is not None and history.class_groups is not None
    summary = summarize(record, _group_count(args.groups, history.num_classes if history else 10, natural))
    emit(args, summary, _format_run(summary))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = Store(args.results)
    store.require_root()
    rows = []
    for record in store.records():
        result = record.result or {}
        rows.append(
            {
                "run_id": record.run_id,
                "status": record.status,
                "spec": record.spec.to_dict() if record.spec is not None else None,
                "label": record.spec.label() if record.spec is not None else "",
                "final_loss": result.get("final_loss") if record.damage is None else None,
                "wall_time": result.get("wall_time"),
                "finished": result.get("finished"),
                "damage": record.damage,
            }
        )
    lines = [f"{len(rows)} runs in {store.root}"]
    for row in rows:
        loss = "" if row["final_loss"] is None else f"final loss {row['final_loss']:.4f}"
        detail = row["damage"] or f"{row['label']}  {loss}"
        lines.append(f"{row['run_id']}  {row['status']:<8}  {detail}".rstrip())
    emit(args, rows, "\n".join(lines))
    return 0


def _default_plot_records(store: Store) -> list[Any]:
    """For each optimizer, its newest finished run on the newest finished run's problem (same steps and seed)."""
    finished = [r for r in map(store.finished, store.run_ids()) if r is not None and r.has_history and isinstance(r.spec, RunSpec)]  # damaged runs left out
    if not finished:
        raise ConfigError(f"no finished runs to plot in {store.root}")
    finished.sort(key=lambda r: r.result.get("finished", ""))

    def setting(r: Any) -> str:
        spec = r.spec.to_dict()
        return json.dumps([spec.get(k) for k in ("problem", "problem_options", "steps", "seed", "batch_size")], sort_keys=True)

    newest: dict[str, Any] = {}
    for record in finished:
        if setting(record) == setting(finished[-1]):
            newest[json.dumps([record.spec.optimizer, record.spec.optimizer_options], sort_keys=True)] = record
    return sorted(newest.values(), key=lambda r: r.spec.optimizer)


def cmd_plot(args: argparse.Namespace) -> int:
    from heavytail.plots import figure_per_group, save_figure

    store = Store(args.results)
    store.require_root()
    ids = [run_id for arg in args.run_ids for run_id in store.resolve_all(arg)]
    records = [store.load(run_id) for run_id in ids] if args.run_ids else _default_plot_records(store)
    for record in records:
        if record.damage is not None:
            raise CorruptRunError(f"run {record.run_id} is damaged, not plotted: {record.damage} (`heavytail store check --repair` sets it aside)")
    missing = [r.run_id for r in records if not r.has_history]
    if missing:
        raise ConfigError(f"runs without a stored history cannot be plotted: {', '.join(missing)}")
    try:
        classes = min(r.history.num_classes for r in records)
    except CorruptRunError as exc:
        raise CorruptRunError(f"damaged run, not plotted: {exc} (`heavytail store check --repair` sets it aside)") from None
    ids = ",".join(sorted(r.run_id for r in records))
    stem = records[0].spec.name if isinstance(records[0].spec, TrackedSpec) else records[0].spec.problem
    out = args.out or store.root / "figures" / f"{stem}-{hashlib.sha256(ids.encode()).hexdigest()[:8]}"
    paths = save_figure(figure_per_group(records, _group_count(args.groups, classes, records[0].history.class_groups is not None), title=args.title), out)
    emit(args, {"runs": [r.run_id for r in records], "files": [str(p) for p in paths]}, "\n".join(map(str, paths)))
    return 0


def _format_reproduce(summary: dict[str, Any]) -> str:
    sections = summary.get("problems") or {summary["preset"]: summary}
    lines = [f"{summary['preset']} ({summary['scale']} scale): {summary['runs']['total']} runs, "
             f"{summary['runs']['computed']} computed now, {summary['wall_time']:.0f} s"]
    for label, section in sections.items():
        if "problems" in summary:
            lines.append(f"{label}:")
        for name, entry in section["optimizers"].items():
            first, last = entry["group_loss_final"][0], entry["group_loss_final"][-1]
            lines.append(f"  {name:<12} lr={entry['lr']:<9.3g} final loss: most frequent group {first:.3f}, least frequent {last:.3f}")
            lines.append(f"  {'':<12} {entry['reason']}")
            grid = ", ".join(
                f"{row['lr']:.3g}:" + ("diverged" if row["diverged"] else f"{row['final_loss']:.3g}" + ("" if row["stable"] else "(unstable)"))
                for row in entry["grid"]
            )
            lines.append(f"  {'':<12} grid (lr: final loss, max over seeds): {grid}")
    lines.append("figure: " + ", ".join(summary["figures"]))
    lines.append("summary: " + summary["summary"])
    return "\n".join(lines)


def _format_study(summary: dict[str, Any]) -> str:
    """A computed figure's summary as text: its own ``text`` lines if it has them, then figures and summary file."""
    lines = [f"{summary['preset']} ({summary['scale']} scale): {summary['wall_time']:.0f} s"]
    lines += summary.get("text", [])
    lines.append("figure: " + ", ".join(summary.get("figures", [])))
    lines.append("summary: " + summary["summary"])
    return "\n".join(lines)


def _duration(minutes: float) -> str:
    if minutes != minutes:  # not estimated
        return "?"
    if minutes < 1:
        return "< 1 min"
    return f"~{minutes:.0f} min" if minutes < 120 else f"~{minutes / 60:.0f} h"


def _preset_table() -> list[dict[str, Any]]:
    from heavytail.presets import PRESETS

    rows = []
    for preset in PRESETS.values():
        rows.append(
            {
                "preset": preset.name,
                "aliases": list(preset.aliases),
                "v1_figure": preset.v1_figure,
                "neurips_figure": preset.neurips_figure,
                "title": preset.title,
                "scales": {name: preset.cost(name) for name in preset.scales},
            }
        )
    return rows


def cmd_reproduce(args: argparse.Namespace) -> int:
    from heavytail.presets import Study, get_preset
    from heavytail.runner import resolve_device
    from heavytail.sweep.executors import LocalExecutor, SlurmExecutor
    from heavytail.sweep.reproduce import reproduce, run_study

    if args.list or args.preset is None:
        rows = _preset_table()
        lines = []
        width = max(19, *(len(row["preset"]) for row in rows))
        for row in rows:
            lines.append(f"{row['preset']:<{width}} v1 {row['v1_figure']}, NeurIPS {row['neurips_figure']}; aliases: {', '.join(row['aliases'])}")
            lines.append(f"{'':<{width}} {row['title']}")
            for name, cost in row["scales"].items():
                work = f"~{cost['runs']} runs, {cost['tflop']:.3g} TFLOP" if cost["runs"] else "computed, no step-size grid"
                lines.append(
                    f"{'':<{width}} {name:<6} {work}: "
                    f"{_duration(cost['cpu_minutes'])} on 2 CPU cores, {_duration(cost['gpu_minutes'])} on one GPU"
                )
        emit(args, rows, "\n".join(lines))
        return 0
    preset = get_preset(args.preset)
    cost = preset.cost(args.scale)  # also validates the scale before anything runs
    Store(args.results).require_root(must_exist=False)
    if args.executor == "local":
        resolve_device(args.device)
    if isinstance(preset, Study) and args.problem_options:
        raise ConfigError(f"-p {args.problem_options[0]} needs a step-size sweep preset; {preset.name!r} is a computed figure")
    if isinstance(preset, Study):
        executor: Any = None
    elif args.executor == "slurm":
        executor = SlurmExecutor(cluster=args.cluster, parameters={k: literal(v) for k, v in parse_assignments(args.slurm_options, "slurm").items()})
    else:
        one = args.device.startswith("cuda") or world()[1] > 1  # one GPU, or torchrun's processes: one run at a time
        executor = LocalExecutor(args.workers or (1 if one else None))
    if not args.json:
        work = f"about {cost['runs']} runs" if cost["runs"] else "a computed figure"
        print(
            f"{preset.name} ({args.scale} scale; v1 {preset.v1_figure}, NeurIPS {preset.neurips_figure}): "
            f"{work}, {_duration(cost['cpu_minutes'])} on 2 CPU cores; store: {Store(args.results).root}",
            file=sys.stderr,
            flush=True,
        )
    if isinstance(preset, Study):
        progress = not args.json and sys.stderr.isatty()
        summary = run_study(preset, args.scale, store=Store(args.results), device=args.device, out=args.out, progress=progress)
        emit(args, summary, _format_study(summary))
        return 0
    summary = reproduce(
        preset,
        args.scale,
        store=Store(args.results),
        executor=executor,
        device=args.device,
        out=args.out,
        progress=not args.json and sys.stderr.isatty(),
        problem_options=parse_assignments(args.problem_options, "problem"),
        settings=execution_settings(args),  # checkpoint_every defaults to the scale's
    )
    emit(args, summary, _format_reproduce(summary))
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
        hints = typing.get_type_hints(cls)
        print(f"{name}: {(cls.__doc__ or '').strip().splitlines()[0]}")
        for f in option_fields(cls):
            choices = typing.get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is typing.Literal else ()
            values = f"one of {', '.join(choices)}; " if choices else ""
            print(f"  -p {f.name}=  ({values}default: {f.default})")
    return 0


COMMAND_GROUPS = ("data", "stats", "curvature", "store")  # modules of this package that add command groups

COMMANDS = {
    "run": cmd_run,
    "list": cmd_list,
    "plot": cmd_plot,
    "reproduce": cmd_reproduce,
    "optimizers": cmd_optimizers,
    "problems": cmd_problems,
}


def _join_torchrun() -> None:
    """Join the process group ``torchrun`` describes in the environment (NCCL with GPUs, else gloo); no-op otherwise."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available() and not dist.is_initialized():
        import torch

        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    exit_cleanly_on_sigterm()
    reuse_freed_memory()
    if getattr(args, "data_dir", None):  # through the environment, so worker processes and SLURM jobs see it too
        os.environ[DATA_ENV] = str(Path(args.data_dir).expanduser().resolve())
    _join_torchrun()
    if world()[0] != 0:  # under torchrun only rank 0 prints
        sys.stdout = open(os.devnull, "w")
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, RunLocked, SweepError, SelectionError, CorruptRunError) as exc:
        print(f"heavytail: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stdout = open(os.devnull, "w")
        return 141
    except OSError as exc:  # e.g. --results naming a file, a full disk, a read-only directory
        print(f"heavytail: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("heavytail: interrupted; finished runs are kept in the store", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
