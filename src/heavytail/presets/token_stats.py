"""v1 Fig 8 (NeurIPS appendix): token counts against rank for PTB and WikiText-2 x word, BPE 4k, Unigram 4k.

    heavytail reproduce token-stats --data-dir ../shared/data     # small: the local valid + test files, ~1 min
    heavytail reproduce token-stats --scale paper                 # the train splits, as the paper

The paper counts the tokens of each corpus's **train** split with torchtext's basic_english words and
with SentencePiece BPE and Unigram models of 4 000 pieces trained on that split. The small scale uses
the validation and test files together instead (the train splits are not shipped with the tests),
with the subword models trained on those same files; the paper scale reads the train splits from the
data directory. Each panel reports the maximum-likelihood power-law exponent (see ``heavytail.stats``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from heavytail.presets.base import Study

CORPORA = {"ptb": "PTB", "wikitext-2": "WikiText-2"}
TOKENIZERS = {"word": "word", "bpe": "BPE 4k", "unigram": "Unigram 4k"}


def compute(params: dict[str, Any], *, store: Any, out: Path, device: str, progress: bool) -> dict[str, Any]:
    """Count, fit and draw the 2 x 3 grid; the summary holds each panel's statistics."""
    from heavytail.plots import figure_rank_frequency, save_figure
    from heavytail.stats import class_stats, corpus_files, token_counts

    panels, results, text = [], {}, []
    for corpus, corpus_label in CORPORA.items():
        files = corpus_files(corpus, params["splits"], None)
        for tokenizer, tokenizer_label in TOKENIZERS.items():
            counts, info = token_counts(files, tokenizer, vocab_size=params["vocab_size"])
            stats = class_stats(counts, source=f"{corpus} ({'+'.join(params['splits'])})")
            fit = stats.fit
            panels.append((f"{corpus_label}, {tokenizer_label}", stats.sorted_counts, (fit.exponent, fit.lo, fit.hi) if fit else None))
            keep = ("classes", "samples", "exponent", "exponent_stderr", "fit_ranks", "rare", "groups")
            results[f"{corpus}/{tokenizer}"] = {k: stats.summary[k] for k in keep} | {k: info[k] for k in ("files", "tokens_per_second")}
            text.append(
                f"  {corpus:<11} {tokenizer:<8} {stats.summary['classes']:>6,} classes {stats.summary['samples']:>9,} tokens  "
                f"exponent {fit.exponent:.3f} (ranks {fit.lo}-{fit.hi})" if fit else f"  {corpus} {tokenizer}: not fitted"
            )
    title = f"Token counts by rank ({'+'.join(params['splits'])} splits; v1 Fig 8)"
    fig = figure_rank_frequency(panels, ncols=3, row_labels=list(CORPORA.values()), title=title)
    figures = [str(p) for p in save_figure(fig, out / "figure")]
    header = f"splits counted: {', '.join(params['splits'])}; BPE/Unigram models ({params['vocab_size']} pieces) trained on those files"
    return {"splits": params["splits"], "vocab_size": params["vocab_size"], "panels": results, "figures": figures, "text": [header, *text]}


PRESET = Study(
    name="token-stats",
    title="Token frequencies of PTB and WikiText-2 under word, BPE and Unigram tokenizers",
    v1_figure="Fig 8",
    neurips_figure="appendix (number unverified)",
    scales={"small": {"splits": ["valid", "test"], "vocab_size": 4000}, "paper": {"splits": ["train"], "vocab_size": 4000}},
    compute=compute,
    minutes={"small": (1.0, 1.0), "paper": (5.0, 5.0)},
    aliases=("v1-fig8",),
    notes=__doc__ or "",
)
