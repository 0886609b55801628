"""Pieces every command group shares: store and data-directory options, JSON-or-text output."""

from __future__ import annotations

import argparse
import json
from typing import Any

from heavytail.store import json_safe


def add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", metavar="DIR", help="results directory (default: $HEAVYTAIL_RESULTS or ./heavytail-results)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")


def add_data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="DIR", help="data directory (default: $HEAVYTAIL_DATA, else ~/.cache/heavytail)")


def add_execution_options(parser: argparse.ArgumentParser, preset_default: bool = False) -> None:
    """How runs execute, never part of a run id: checkpoints, precision, torch.compile."""
    default = " (default: the preset's, for long presets; else none)" if preset_default else " (default: none)"
    parser.add_argument("--checkpoint-every", type=_positive_steps, metavar="N", help="keep a resumable checkpoint every N steps; the same command resumes a killed run from it" + default)
    parser.add_argument("--precision", choices=["auto", "fp32"], default="auto", help="auto: bf16 autocast and TF32 on CUDA, float32 elsewhere; fp32: float32 everywhere (default: auto)")
    parser.add_argument("--compile", action="store_true", help="run the model through torch.compile")


def execution_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`heavytail.run` that :func:`add_execution_options` parsed."""
    return {"checkpoint_every": args.checkpoint_every, "precision": args.precision, "compile": args.compile}


def _positive_steps(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {text!r}; expected an integer >= 1 (steps)")
    return value


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print ``data`` as one JSON document with ``--json``, else ``text``."""
    print(json.dumps(json_safe(data), indent=1, allow_nan=False) if args.json else text)


def step_list(text: str) -> list[int]:
    """Comma-separated optimizer steps, e.g. ``0,1,2,5,10``."""
    try:
        steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad step list {text!r}; expected integers separated by commas, e.g. 0,10,100") from None
    if not steps or min(steps) < 0:
        raise argparse.ArgumentTypeError(f"bad step list {text!r}; expected integers >= 0 separated by commas, e.g. 0,10,100")
    return steps
