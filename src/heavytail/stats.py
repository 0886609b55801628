"""Is a dataset's class distribution heavy-tailed? Counts, a fitted power law, rare-class shares, frequency groups.

The exponent alpha of ``n_r ~ r^-alpha`` (r = rank by decreasing count) is fitted by maximum
likelihood: each sample's rank is treated as a draw from the truncated discrete power law
``P(r) = r^-alpha / Z`` over the fitted ranks ``[lo, hi]``. Unlike least squares on the log-log
plot, which weights every rank equally (so the thousands of noisy tail ranks dominate) and is
biased, the likelihood weights ranks by their samples and is the estimator recommended for power
laws (Clauset, Shalizi and Newman, 2009). By default ``lo = 1`` and ``hi`` is the last rank seen at
least 10 times: below that, ranks are decided by ties and sampling noise (the "extreme tail").
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from heavytail.options import ConfigError
from heavytail.train.metrics import FrequencyGroups

RARE_THRESHOLDS = (10, 100)


@dataclass(frozen=True)
class PowerLawFit:
    exponent: float
    stderr: float  # from the Fisher information, 1 / sqrt(N Var(log r))
    lo: int  # fitted ranks, 1-based, inclusive
    hi: int


def fit_power_law(sorted_counts: np.ndarray, lo: int = 1, hi: int | None = None, min_count: int = 10) -> PowerLawFit | None:
    """Maximum-likelihood exponent of ``n_r ~ r^-alpha`` over ranks ``[lo, hi]`` of counts sorted in decreasing order.

    ``hi`` defaults to the last rank with at least ``min_count`` samples. None when fewer than 3 ranks remain.
    """
    counts = np.asarray(sorted_counts, dtype=np.float64)
    if hi is None:
        hi = int(np.count_nonzero(counts >= min_count))
    hi = min(hi, len(counts))
    if lo < 1 or hi - lo + 1 < 3:
        return None
    n = counts[lo - 1 : hi]
    log_rank = np.log(np.arange(lo, hi + 1, dtype=np.float64))
    total = n.sum()
    target = float(n @ log_rank) / total  # the mean log-rank of the samples; the MLE matches it
    low, high = -20.0, 20.0  # E_alpha[log r] decreases in alpha: bisection
    for _ in range(100):
        alpha = (low + high) / 2
        weights = -alpha * log_rank
        weights = np.exp(weights - weights.max())
        weights /= weights.sum()
        mean = float(weights @ log_rank)
        low, high = (alpha, high) if mean > target else (low, alpha)
    variance = float(weights @ log_rank**2) - mean**2
    return PowerLawFit(alpha, 1 / math.sqrt(total * variance) if variance > 0 else float("inf"), lo, hi)


@dataclass(frozen=True)
class ClassStats:
    """Statistics of one class distribution: the JSON-ready ``summary`` and the counts by rank (for plots)."""

    summary: dict[str, Any]
    sorted_counts: np.ndarray  # decreasing
    fit: PowerLawFit | None


def class_stats(
    counts: Mapping[Any, int],
    *,
    num_groups: int = 10,
    fit_ranks: Sequence[int] | None = None,
    fit_min_count: int = 10,
    source: str = "",
) -> ClassStats:
    """Classes, samples, fitted exponent, rare-class shares and ``num_groups`` equal-mass groups of ``counts``."""
    kept = {label: int(n) for label, n in counts.items() if n > 0}
    if not kept:
        raise ConfigError(f"{source or 'input'}: no samples to count (empty input)")
    if len(kept) == 1:
        raise ConfigError(f"{source or 'input'}: only one class ({next(iter(kept))!r}); a class distribution needs at least two")
    labels = sorted(kept, key=lambda label: (-kept[label], str(label)))
    sorted_counts = np.array([kept[label] for label in labels], dtype=np.int64)
    samples = int(sorted_counts.sum())
    lo, hi = (fit_ranks if fit_ranks is not None else (1, None))
    fit = fit_power_law(sorted_counts, lo, hi, fit_min_count)
    groups = FrequencyGroups.from_counts(sorted_counts, num_groups)  # classes already in rank order
    group_rows = [
        {key: row[key] for key in ("num_classes", "min_count", "max_count", "mass")} | {"ranks": [row["first_rank"] + 1, row["last_rank"] + 1]}
        for row in groups.describe()
    ]
    rare = []
    for threshold in RARE_THRESHOLDS:
        below = sorted_counts < threshold
        rare.append(
            {
                "below_count": threshold,
                "classes": int(below.sum()),
                "class_share": float(below.mean()),
                "sample_share": float(sorted_counts[below].sum() / samples),
            }
        )
    rank_marks = [r for r in (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000) if r <= len(sorted_counts)]
    summary = {
        "source": source,
        "classes": len(sorted_counts),
        "samples": samples,
        "exponent": fit.exponent if fit else None,
        "exponent_stderr": fit.stderr if fit else None,
        "fit_ranks": [fit.lo, fit.hi] if fit else None,
        "fit_estimator": "maximum likelihood, truncated discrete power law over ranks",
        "count_at_rank": {str(r): int(sorted_counts[r - 1]) for r in rank_marks},
        "top": [[_json_label(label), kept[label]] for label in labels[:10]],
        "rare": rare,
        "groups": group_rows,
    }
    if all(isinstance(label, (int, np.integer)) and not isinstance(label, bool) and label >= 0 for label in kept):
        by_index = np.zeros(max(kept) + 1, dtype=np.int64)  # integer labels are class indices: GroupTracker.from_stats reads this
        by_index[list(kept)] = list(kept.values())
        summary["class_counts"] = by_index.tolist()
    return ClassStats(summary, sorted_counts, fit)


def _json_label(label: Any) -> Any:
    return label if isinstance(label, (str, int, float, bool)) else str(label)


def corpus_files(source: str, splits: Sequence[str], data_dir: str | Path | None) -> list[Path]:
    """The files of a named corpus's ``splits`` (a registered dataset), or ``[source]`` for a file path."""
    from heavytail.data.datadir import dataset_file, dataset_names

    if Path(source).is_file():
        return [Path(source)]
    if source in dataset_names():
        return [dataset_file(source, split, data_dir) for split in splits]
    raise ConfigError(f"{source!r} is neither a file nor a dataset; choose a path or one of: {', '.join(dataset_names())}")


def token_counts(files: Sequence[Path], tokenizer: str, *, vocab_size: int = 4000, data_dir: str | Path | None = None) -> tuple[Counter[str], dict[str, Any]]:
    """Token counts of ``files`` with ``tokenizer`` (a subword model is trained on those files), and timing info."""
    from heavytail.data.labels import check_text_file
    from heavytail.data.text import make_tokenizer

    for path in files:
        check_text_file(path)
    start = time.perf_counter()
    tok = make_tokenizer(tokenizer, files, vocab_size=vocab_size, data_dir=data_dir)
    trained = time.perf_counter()
    counts: Counter[str] = Counter()
    tokens = sum(tok.count_file(path, counts) for path in files)
    seconds = time.perf_counter() - trained
    info = {
        "tokenizer": tok.name,
        "files": [str(p) for p in files],
        "tokens": tokens,
        "tokenize_seconds": seconds,
        "tokens_per_second": tokens / seconds if seconds > 0 else None,
        "tokenizer_training_seconds": trained - start,
    }
    return counts, info
