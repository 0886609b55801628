"""PTB with the paper's two-layer transformer, trained on mini-batches of text windows (v1 Figs 7 and 9).

The training split's token stream is cut into ``streams`` parallel streams (the paper's ``batchify``,
B = 512) and non-overlapping windows of ``seq_len`` = 35 tokens; one window of the B streams is one
mini-batch (512 × 35 = 17,920 targets at the paper's size), visited in the same order every epoch
(decisions D13) unless ``shuffle``. The last window is shorter (19 positions at the paper's size,
as in the paper's loop); its missing positions are padding, neither trained on nor counted.

The paper trains on PTB train (``source=train``, the file must be in the data directory). The small
presets train on PTB valid (``source=valid``, the TinyPTB training set; the local data hold only
valid and test), optionally on its first ``tokens`` tokens. Vocabulary (``vocab``): ``train`` is the
paper's (PTB train, 9,920 words), ``valid+test`` the local fallback (7,534 words), ``used`` only the
word types of the tokens trained on, re-indexed by decreasing count (every class has samples).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

from heavytail.models.transformer import EncoderLM
from heavytail.options import ConfigError, check_choice, check_range
from heavytail.problems.base import LogMode, LossWeights, Problem
from heavytail.problems.ptb_words import SPLIT_TOKENS, VOCAB_SIZES, Vocab, reindex_by_use, used_types_estimate
from heavytail.seeding import derive_seed

if TYPE_CHECKING:
    from heavytail.data.text import NextTokenWindows

Source = Literal["train", "valid"]
CORPUS = {"train": "ptb", "valid": "tinyptb"}  # data/text.py's corpora whose training split is that PTB split
PAD = -100  # target of a padding position (F.cross_entropy's default ignore_index)


def window_rows(windows: NextTokenWindows) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of every window stacked window after window: (windows·B, L) each, so rows
    [i·B, (i+1)·B) are window i's B streams; a shorter last window is padded (input 0, target :data:`PAD`)."""
    streams, length = windows.streams.shape[0], windows.seq_len
    x = torch.zeros(len(windows), streams, length, dtype=torch.long)
    y = torch.full((len(windows), streams, length), PAD, dtype=torch.long)
    for i in range(len(windows)):
        inputs, targets = windows[i]
        x[i, :, : inputs.shape[1]] = inputs
        y[i, :, : targets.shape[1]] = targets
    return x.reshape(-1, length), y.reshape(-1, length)


def _check(key: str, value: int | float, lo: float, hi: float) -> None:
    check_range("ptb-two-layer problem option", key, value, lo, hi)


@dataclass(frozen=True)
class PtbTwoLayer(LossWeights):
    """The paper's two-layer post-LN transformer encoder on PTB, mini-batches of B streams × 35-token windows."""

    source: Source = "train"  # the PTB split trained on: train (paper) or valid (TinyPTB's training set)
    tokens: int | None = None  # train on the split's first tokens only (None: all of it)
    vocab: Vocab = "train"
    streams: int = 512  # B: parallel streams; a mini-batch is one window of all of them
    seq_len: int = 35
    shuffle: bool = False  # a fresh window order every epoch (the paper keeps one order, D13)
    width: int = 1000
    heads: int = 4
    ff_width: int = 1000
    layers: int = 2
    dropout: float = 0.2
    log_mode: LogMode = "eval"  # eval: the exact rows with dropout off (D12); train: on, as the paper's code

    name: typing.ClassVar[str] = "ptb-two-layer"

    def __post_init__(self) -> None:
        for key, value, choices in (("source", self.source, Source), ("vocab", self.vocab, Vocab), ("log_mode", self.log_mode, LogMode)):
            check_choice("ptb-two-layer problem option", key, value, choices)
        if self.tokens is not None:
            _check("tokens", self.tokens, 2, 1 << 40)
        for key in ("streams", "seq_len", "width", "heads", "ff_width", "layers"):
            _check(key, getattr(self, key), 1, 1 << 20)
        _check("dropout", self.dropout, 0.0, 0.99)
        if self.width % self.heads:
            raise ConfigError(f"bad ptb-two-layer problem option heads={self.heads}; width={self.width} must be a multiple of it")

    def _sizes(self) -> tuple[int, int]:
        """(targets, classes), estimated without reading the data (Heaps' law, fitted on PTB valid, for ``vocab=used``)."""
        tokens = min(self.tokens or SPLIT_TOKENS[self.source], SPLIT_TOKENS[self.source])
        if self.vocab == "used":
            return tokens, min(VOCAB_SIZES["train"], used_types_estimate(tokens))
        return tokens, VOCAB_SIZES[self.vocab]

    def flops_per_step(self) -> float:
        """One pass over the data (a full-batch step, or an epoch of mini-batches): 3× the forward, which costs
        2·(layers·(4·w² + 2·w·ff + 2·L·w) + w·c) per target (projections, MLP, attention, head)."""
        n, c = self._sizes()
        w = self.width
        return 3.0 * 2.0 * n * (self.layers * (4.0 * w * w + 2.0 * w * self.ff_width + 2.0 * self.seq_len * w) + w * c)

    @property
    def cpu_gflops(self) -> float:
        """Rate of a step on 2 CPU cores: GEMM-bound at the paper's width; at small widths the softmax over the
        vocabulary, dropout masks and small matrices dominate (measured: ~30 GFLOP/s at width 32)."""
        return 125.0 if self.width >= 256 else 30.0

    def _tokens(self) -> tuple[torch.Tensor, int, str]:
        """The training token stream, the number of classes, and how the vocabulary differs from the paper's."""
        from heavytail.data.text import load_text_corpus  # imports the store: not at import time (cycle)

        base = {"train": ("train",), "valid+test": ("valid", "test"), "used": ("train",) if self.source == "train" else ("valid", "test")}
        corpus = load_text_corpus(CORPUS[self.source], "word", vocab_splits=base[self.vocab])
        tokens = corpus.train[: self.tokens]
        if self.vocab != "used":
            return tokens, len(corpus.vocab), corpus.note
        tokens, used = reindex_by_use(tokens, len(corpus.vocab))
        return tokens, used, f"vocabulary = the {used} word types of the {len(tokens)} tokens trained on (the paper uses PTB train's)"

    def build(self, seed: int) -> Problem:
        """Read and cut the token stream, and initialise the model from ``seed`` (on the CPU)."""
        from heavytail.data.text import NextTokenWindows

        tokens, num_classes, note = self._tokens()
        if len(tokens) // self.streams < 2:
            raise ConfigError(f"bad ptb-two-layer problem option streams={self.streams}; {len(tokens)} tokens leave fewer than 2 per stream")
        windows = NextTokenWindows(tokens, self.seq_len, self.streams)
        x, y = window_rows(windows)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "model"))
            model = EncoderLM(num_classes, self.width, heads=self.heads, ff_width=self.ff_width, layers=self.layers,
                              dropout=self.dropout, max_len=self.seq_len)  # fmt: skip
        info = {"n": windows.num_targets, "c": num_classes, "streams": self.streams, "seq_len": self.seq_len,
                "windows": len(windows), "tokens": len(tokens), "width": self.width}  # fmt: skip
        if note:
            info["note"] = note
        problem = Problem(
            model=model,
            x=x,
            y=y,
            num_classes=num_classes,
            ignore_index=PAD,
            batch_block=self.streams,
            shuffle_batches=self.shuffle,
            log_mode=self.log_mode,
            activation_bytes_per_sample=4 * self.seq_len * self.layers * (6 * self.width + 2 * self.ff_width + 2 * self.heads * self.seq_len),
            info=info,
        )
        return self.weighted(problem)
