"""Class counts of any labels file, streamed: ``.txt`` (one label a line), ``.csv`` (a column), ``.npy``, ``.parquet``.

Each reader returns a ``Counter`` label -> count and never holds more than one chunk of the file.
``.parquet`` needs pyarrow (``pip install 'heavytail[parquet]'``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from heavytail.options import ConfigError

LABEL_SUFFIXES = (".txt", ".csv", ".npy", ".parquet")
CHUNK_ROWS = 1 << 20


def check_text_file(path: Path) -> None:
    """One-line errors for a missing, empty or binary (NUL bytes in its first 64 KiB) file."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if not head:
        raise ConfigError(f"{path} is empty: no samples to count")
    if b"\x00" in head:
        raise ConfigError(f"{path} looks like a binary file (NUL bytes); expected text, or a .npy/.parquet labels file")


def read_label_counts(path: str | Path, column: str | None = None) -> Counter[Any]:
    """Counts of each label in ``path``, by its suffix (see :data:`LABEL_SUFFIXES`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in LABEL_SUFFIXES:
        raise ConfigError(f"unknown labels file type {suffix or path.name!r}; choose one of: {', '.join(LABEL_SUFFIXES)} (or give --tokenizer for a text corpus)")
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    reader = {".txt": _text_counts, ".csv": _csv_counts, ".npy": _npy_counts, ".parquet": _parquet_counts}[suffix]
    return reader(path, column)


def _text_counts(path: Path, column: str | None) -> Counter[Any]:
    check_text_file(path)
    counts: Counter[str] = Counter()
    try:
        with open(path, encoding="utf-8") as f:
            while lines := f.readlines(CHUNK_ROWS):
                counts.update(line.strip() for line in lines)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start} of a chunk)") from None
    counts.pop("", None)  # blank lines are not labels
    return counts


def _pick_column(path: Path, columns: list[str], column: str | None) -> str:
    if column is None:
        if len(columns) == 1:
            return columns[0]
        raise ConfigError(f"{path} has {len(columns)} columns; choose one with --column: {', '.join(map(str, columns))}")
    if column not in columns:
        raise ConfigError(f"{path} has no column {column!r}; choose one of: {', '.join(map(str, columns))}")
    return column


def _csv_counts(path: Path, column: str | None) -> Counter[Any]:
    import pandas as pd

    check_text_file(path)
    try:
        header = list(pd.read_csv(path, nrows=0).columns)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ConfigError(f"{path} is not a readable CSV file: {str(exc).strip().splitlines()[0]}") from None
    name = _pick_column(path, header, column)
    counts: Counter[Any] = Counter()
    for chunk in pd.read_csv(path, usecols=[name], chunksize=CHUNK_ROWS, dtype=str, keep_default_na=False):
        counts.update(chunk[name].value_counts().to_dict())
    counts.pop("", None)  # missing values are not labels
    return counts


def _npy_counts(path: Path, column: str | None) -> Counter[Any]:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise ConfigError(f"{path} is not a readable .npy array of labels: {exc}") from None
    flat = array.reshape(-1)
    counts: Counter[Any] = Counter()
    for start in range(0, len(flat), CHUNK_ROWS):
        values, n = np.unique(np.asarray(flat[start : start + CHUNK_ROWS]), return_counts=True)
        counts.update(dict(zip(values.tolist(), n.tolist())))
    return counts


def _parquet_counts(path: Path, column: str | None) -> Counter[Any]:
    try:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("reading .parquet needs pyarrow: pip install 'heavytail[parquet]'") from None
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises its own error types for a file that is not Parquet
        raise ConfigError(f"{path} is not a readable Parquet file: {str(exc).strip().splitlines()[0]}") from None
    name = _pick_column(path, parquet.schema_arrow.names, column)
    counts: Counter[Any] = Counter()
    for batch in parquet.iter_batches(columns=[name], batch_size=CHUNK_ROWS):
        for row in pc.value_counts(batch.column(0)).to_pylist():
            if row["values"] is not None:
                counts[row["values"]] += row["counts"]
    return counts
