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
