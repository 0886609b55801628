"""Transformers on TinyPTB with full-batch training (v1 Figs 4, 10, 13; NeurIPS Fig 5).

TinyPTB (paper section 2.5): the PTB valid split as training data, cut into ``streams`` parallel
streams (the paper's ``batchify``, B = 1,024) and non-overlapping windows of ``seq_len`` = 35 tokens;
every window of every stream is one sample, a full-batch step sums over all of them (71,680 targets
at the paper's size). ``windows`` = W keeps the first B·(35·W + 1) tokens, so each stream holds W
whole windows; None keeps every whole window of the split (2 with the paper's B).

Two models, both called "simplified transformer" in the v1 text (decisions D5), named apart here:

- ``tinyptb-last-layer`` (v1 Fig 4, NeurIPS Fig 5): the attention-only model (no LayerNorm, MLP or
  dropout) with everything but the head frozen. ``features=cached`` computes the frozen part's
  output once per run, so a step costs one linear layer; ``features=recompute`` runs the whole
  forward every step (same losses, the naive route).
- ``tinyptb-one-layer`` (v1 Figs 10, 13): one post-LN encoder block (ReLU MLP, dropout 0.2, causal
  mask), every parameter trained. Its logged losses come from an evaluation pass with dropout off
  (``log_mode=eval``, decisions D12) or, as the paper's code logged them, with dropout on
  (``log_mode=train``).

Vocabulary (``vocab``): ``train`` is the paper's (PTB train split, 9,920 words; the file must be in
the data directory), ``valid+test`` the local fallback (7,534 words), ``used`` only the word types
in the tokens trained on, re-indexed by decreasing count (the small presets' choice: the head has a
row per class that occurs).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

import torch

from heavytail.data.text import NextTokenWindows, load_text_corpus
from heavytail.models.transformer import AttentionOnlyLM, EncoderLM, HeadOnFeatures, freeze_all_but_head
from heavytail.options import ConfigError, check_choice, check_range
from heavytail.problems.base import LogMode, LossWeights, Problem
from heavytail.problems.ptb_words import SPLIT_TOKENS, VOCAB_SIZES, Vocab, reindex_by_use, used_types_estimate
from heavytail.seeding import derive_seed

Features = Literal["cached", "recompute"]
VOCAB_SPLITS = {"train": ("train",), "valid+test": ("valid", "test"), "used": ("valid", "test")}


def _check(name: str, key: str, value: int | float, lo: float, hi: float) -> None:
    check_range(f"{name} problem option", key, value, lo, hi)


def _check_choice(name: str, key: str, value: str, choices: typing.Any) -> None:
    check_choice(f"{name} problem option", key, value, choices)


@dataclass(frozen=True)
class TinyPtbData:
    """The training windows and their vocabulary."""

    inputs: torch.Tensor  # (streams·windows, seq_len) token ids
    targets: torch.Tensor  # (streams·windows, seq_len) next-token ids
    vocab_size: int
    note: str


def tinyptb_windows(streams: int, windows: int | None, seq_len: int, vocab: Vocab, name: str = "tinyptb") -> TinyPtbData:
    """TinyPTB's full batch: every whole window of the first ``streams``·(``seq_len``·W + 1) tokens of PTB valid."""
    corpus = load_text_corpus("tinyptb", "word", vocab_splits=VOCAB_SPLITS[vocab])
    tokens = corpus.train
    most = (len(tokens) // streams - 1) // seq_len
    if most < 1:
        raise ConfigError(f"bad {name} problem option streams={streams}; {len(tokens)} training tokens leave no window of {seq_len} per stream")
    if windows is not None and windows > most:
        raise ConfigError(
            f"bad {name} problem option windows={windows}; {len(tokens)} training tokens hold at most {most} windows of {seq_len} in {streams} streams"
        )
    w = windows or most
    tokens = tokens[: streams * (seq_len * w + 1)]
    vocab_size, note = len(corpus.vocab), corpus.note
    if vocab == "used":
        tokens, vocab_size = reindex_by_use(tokens, len(corpus.vocab))
        note = f"vocabulary = the {vocab_size} word types of the {len(tokens)} tokens used (the paper uses PTB train's)"
    cut = NextTokenWindows(tokens, seq_len, streams)
    inputs = torch.cat([cut[i][0] for i in range(len(cut))])
    targets = torch.cat([cut[i][1] for i in range(len(cut))])
    return TinyPtbData(inputs, targets, vocab_size, note)


@dataclass(frozen=True)
class _TinyPtbOptions(LossWeights):
    """Options both TinyPTB problems have: the data's size and vocabulary, the model's width, the loss weights."""

    streams: int = 1024  # B: parallel streams (the paper's batchify)
    windows: int | None = None  # W: windows of seq_len per stream (None: every whole window, 2 at B = 1,024)
    seq_len: int = 35
    width: int = 1200
    vocab: Vocab = "train"

    name: typing.ClassVar[str]

    def __post_init__(self) -> None:
        _check(self.name, "streams", self.streams, 1, 1 << 20)
        if self.windows is not None:
            _check(self.name, "windows", self.windows, 1, 1 << 20)
        _check(self.name, "seq_len", self.seq_len, 1, 5000)
        _check(self.name, "width", self.width, 1, 1 << 16)
        _check_choice(self.name, "vocab", self.vocab, Vocab)

    def _sizes(self) -> tuple[int, int]:
        """(targets, classes), estimated without reading the data (Heaps' law for ``vocab=used``)."""
        w = self.windows or max(1, (SPLIT_TOKENS["valid"] // self.streams - 1) // self.seq_len)
        targets = self.streams * w * self.seq_len
        if self.vocab == "used":
            return targets, min(VOCAB_SIZES["valid+test"], used_types_estimate(targets + self.streams))
        return targets, VOCAB_SIZES[self.vocab]

    def _data(self) -> TinyPtbData:
        return tinyptb_windows(self.streams, self.windows, self.seq_len, self.vocab, self.name)

    def _info(self, data: TinyPtbData, model: torch.nn.Module) -> dict[str, typing.Any]:
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        info = {"n": data.targets.numel(), "c": data.vocab_size, "sequences": len(data.targets), "seq_len": self.seq_len,
                "streams": self.streams, "windows": len(data.targets) // self.streams, "width": self.width,
                "frozen_parameters": frozen}  # fmt: skip
        if data.note:
            info["note"] = data.note
        return info


@dataclass(frozen=True)
class TinyPtbLastLayer(_TinyPtbOptions):
    """The attention-only transformer on TinyPTB with only its head trained (v1 Fig 4, NeurIPS Fig 5)."""

    features: Features = "cached"  # cached: the frozen part's output computed once; recompute: every step

    name: typing.ClassVar[str] = "tinyptb-last-layer"
    cpu_gflops: typing.ClassVar[float] = 85.0  # measured: ptb-last-layer small, 98 runs, 43 TFLOP in 998 CPU-seconds

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_choice(self.name, "features", self.features, Features)

    def flops_per_step(self) -> float:
        """Head forward + weight gradient, 2·n·width·c each (the frozen forward adds ~12·n·width² when recomputed)."""
        n, c = self._sizes()
        frozen = 0.0 if self.features == "cached" else n * (8.0 * self.width**2 + 4.0 * self.seq_len * self.width)
        return 4.0 * n * self.width * c + frozen

    def build(self, seed: int) -> Problem:
        """Read the windows, initialise the model from ``seed``, freeze all but the head, cache the features."""
        data = self._data()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "model"))
            lm = AttentionOnlyLM(data.vocab_size, self.width, max_len=max(self.seq_len, 5000))
        freeze_all_but_head(lm)
        if self.features == "cached":
            model: torch.nn.Module = HeadOnFeatures(lm)
            x = model.features(data.inputs)  # type: ignore[operator]
            activations = 4 * self.seq_len * self.width
        else:
            model, x = lm, data.inputs
            activations = 4 * self.seq_len * (8 * self.width + self.seq_len)
        problem = Problem(
            model=model,
            x=x,
            y=data.targets,
            num_classes=data.vocab_size,
            activation_bytes_per_sample=activations,
            info={**self._info(data, model), "features": self.features},
        )
        return self.weighted(problem)


@dataclass(frozen=True)
class TinyPtbOneLayer(_TinyPtbOptions):
    """One post-LN transformer encoder block on TinyPTB, every parameter trained (v1 Figs 10, 13)."""

    heads: int = 1
    ff_width: int | None = None  # None: = width (the paper's 1,200)
    dropout: float = 0.2
    log_mode: LogMode = "eval"  # eval: logged losses with dropout off (D12); train: on, as the paper's code

    name: typing.ClassVar[str] = "tinyptb-one-layer"
    cpu_gflops: typing.ClassVar[float] = 55.0  # measured: ptb-one-layer small, 1,200 steps, 6.8 TFLOP in 237 CPU-seconds

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.name, "heads", self.heads, 1, self.width)
        if self.width % self.heads:
            raise ConfigError(f"bad {self.name} problem option heads={self.heads}; width={self.width} must be a multiple of it")
        if self.ff_width is not None:
            _check(self.name, "ff_width", self.ff_width, 1, 1 << 16)
        _check(self.name, "dropout", self.dropout, 0.0, 0.99)
        _check_choice(self.name, "log_mode", self.log_mode, LogMode)

    def flops_per_step(self) -> float:
        """3× the forward (projections 8·w², MLP 4·w·ff, attention 4·L·w, head 2·w·c per target), plus an eval forward with dropout."""
        n, c = self._sizes()
        w, ff = self.width, self.ff_width or self.width
        forward = n * (8.0 * w * w + 4.0 * w * ff + 4.0 * self.seq_len * w + 2.0 * w * c)
        evaluation = forward if self.dropout > 0 and self.log_mode == "eval" else 0.0
        return 3.0 * forward + evaluation

    def build(self, seed: int) -> Problem:
        """Read the windows and initialise the encoder from ``seed`` with the authors' default initialiser."""
        data = self._data()
        ff = self.ff_width or self.width
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "model"))
            model = EncoderLM(data.vocab_size, self.width, heads=self.heads, ff_width=ff, layers=1,
                              dropout=self.dropout, max_len=max(self.seq_len, 5000))  # fmt: skip
        activations = 4 * self.seq_len * (14 * self.width + 3 * ff + 3 * self.heads * self.seq_len)
        problem = Problem(
            model=model,
            x=data.inputs,
            y=data.targets,
            num_classes=data.vocab_size,
            activation_bytes_per_sample=activations,
            log_mode=self.log_mode,
            info={**self._info(data, model), "dropout": self.dropout, "log_mode": self.log_mode},
        )
        return self.weighted(problem)


__all__ = ["TinyPtbLastLayer", "TinyPtbOneLayer", "tinyptb_windows"]
