"""``heavytail stats SOURCE``: is a corpus's token distribution, or any labels file, heavy-tailed?"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from heavytail.cli.common import add_data_dir_option, emit


def add_parsers(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = sub.add_parser("stats", help="class-frequency statistics of a corpus (tokens) or a labels file")
    p.add_argument("source", metavar="SOURCE", help="a dataset (ptb, wikitext-2, wikitext-103) or a file: text corpus (with --tokenizer), or labels .txt/.csv/.npy/.parquet")
    p.add_argument("--split", default="train", help="dataset split(s), comma-separated, e.g. valid or valid,test (default: train)")
    p.add_argument("--tokenizer", choices=["word", "bpe", "unigram"], help="tokenize a text corpus (default for datasets: word); without it a .txt file is one label a line")
    p.add_argument("--vocab-size", type=int, default=4000, help="vocabulary of a bpe/unigram model trained on the corpus (default: 4000, the paper's)")
    p.add_argument("--column", help="column holding the labels (.csv, .parquet)")
    p.add_argument("--groups", type=int, default=10, help="equal-mass frequency groups (default: 10)")
    p.add_argument("--fit-ranks", type=int, nargs=2, metavar=("LO", "HI"), help="ranks of the power-law fit (default: 1 to the last rank seen >= 10 times)")
    p.add_argument("--out", metavar="PATH", help="rank-frequency plot, PNG and PDF (default: none)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    add_data_dir_option(p)
    return {"stats": cmd_stats}


def cmd_stats(args: argparse.Namespace) -> int:
    from heavytail.data.datadir import dataset_names
    from heavytail.data.labels import read_label_counts
    from heavytail.options import ConfigError
    from heavytail.stats import class_stats, corpus_files, token_counts

    if args.groups < 1:
        raise ConfigError(f"--groups must be >= 1, got {args.groups}")
    is_dataset = args.source in dataset_names() and not Path(args.source).exists()
    info: dict[str, Any] = {}
    if is_dataset or args.tokenizer:
        files = corpus_files(args.source, [s for s in args.split.split(",") if s], args.data_dir)
        counts, info = token_counts(files, args.tokenizer or "word", vocab_size=args.vocab_size, data_dir=args.data_dir)
        source = f"{args.source} ({args.split})" if is_dataset else args.source
    else:
        counts, source = read_label_counts(args.source, args.column), args.source
    stats = class_stats(counts, num_groups=args.groups, fit_ranks=args.fit_ranks, source=source)
    summary = {**stats.summary, **info}
    if args.out:
        from heavytail.plots import figure_rank_frequency, save_figure

        fit = (stats.fit.exponent, stats.fit.lo, stats.fit.hi) if stats.fit else None
        fig = figure_rank_frequency([(source, stats.sorted_counts, fit)], ncols=1, num_groups=args.groups)
        summary["figures"] = [str(p) for p in save_figure(fig, args.out)]
    emit(args, summary, _format(summary))
    return 0


def _format(s: dict[str, Any]) -> str:
    exponent = "not fitted (fewer than 3 ranks)" if s["exponent"] is None else (
        f"{s['exponent']:.3f} ± {s['exponent_stderr']:.3f} (ranks {s['fit_ranks'][0]}-{s['fit_ranks'][1]}, {s['fit_estimator']})"
    )
    lines = [f"{s['source']}: {s['classes']:,} classes, {s['samples']:,} samples"]
    if "tokens_per_second" in s:
        lines.append(f"  tokenizer {s['tokenizer']}: {s['tokens']:,} tokens at {s['tokens_per_second']:,.0f} tokens/s")
    lines.append(f"  power-law exponent (n_r ~ r^-alpha): {exponent}")
    lines.append("  counts at rank " + ", ".join(f"{r}: {n:,}" for r, n in s["count_at_rank"].items()))
    lines.append("  most frequent: " + ", ".join(f"{label!r} {n:,}" for label, n in s["top"][:5]))
    for row in s["rare"]:
        lines.append(
            f"  classes seen < {row['below_count']} times: {row['classes']:,} ({row['class_share']:.1%} of classes, {row['sample_share']:.1%} of samples)"
        )
    lines.append("  group  classes      ranks          counts   share")
    for g, row in enumerate(s["groups"]):
        ranks = f"{row['ranks'][0]}-{row['ranks'][1]}" if row["num_classes"] else "-"
        lines.append(f"  {g:>5}  {row['num_classes']:>7,}  {ranks:>13}  {row['min_count']:>7,}-{row['max_count']:<7,}  {row['mass']:.3f}")
    lines += [f"  figure: {p}" for p in s.get("figures", [])]
    return "\n".join(lines)
