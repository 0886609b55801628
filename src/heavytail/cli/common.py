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
