"""GPT-2 on WikiText (v1 Fig 1, NeurIPS Fig 1; validation: the NeurIPS appendix, E24).

Next-token prediction over non-overlapping windows of ``seq_len`` tokens of the training split
(paper section 2.7: WikiText-103, SentencePiece BPE, 1,024-token windows, 107,262 of them), read
batch by batch from one token stream on the device (:class:`heavytail.data.text.TokenWindows`).
The spec's ``batch_size`` counts windows (the paper: 512 a step, by gradient accumulation over
micro-batches of ``--chunk-size`` windows). The validation split's windows are evaluated in eval
mode every ``log_every`` steps, with frequency groups from the validation counts.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

import torch

from heavytail.models.gpt2 import GPT2Config, gpt2
from heavytail.options import ConfigError, check_choice
from heavytail.problems.base import LossWeights, Problem
from heavytail.seeding import derive_seed

Corpus = Literal["wikitext-103", "wikitext-2", "tinywikitext-2"]
Tokenizer = Literal["bpe", "unigram", "word"]
TRAIN_TOKENS = {"wikitext-103": 109_836_288, "wikitext-2": 2_088_628, "tinywikitext-2": 217_646}  # for cost estimates only


@dataclass(frozen=True)
class GPT2WikiTextProblem(LossWeights):
    """GPT-2 small (or a smaller decoder) on WikiText windows; per-group training and validation loss."""

    corpus: Corpus = "wikitext-103"
    tokenizer: Tokenizer = "bpe"
    vocab_size: int = 50_000  # SentencePiece's; the paper reports 50,608 tokens after torchtext's vocabulary (its setting is not public)
    seq_len: int = 1024
    layers: int = 12
    width: int = 768
    heads: int = 12
    dropout: float = 0.1
    train_tokens: int | None = None  # keep the first N training tokens (None: all)
    valid_tokens: int | None = None  # evaluate the first N validation tokens (None: all; 0: no validation)
    log_every: int = 100  # steps between rows (training and validation), the paper's evaluation interval

    cpu_gflops: typing.ClassVar[float] = 80.0  # small decoders on 2 cores, evaluation passes included (measured: ~48 per core)

    def __post_init__(self) -> None:
        for key, choices in (("corpus", Corpus), ("tokenizer", Tokenizer)):
            check_choice("gpt2-wikitext problem option", key, getattr(self, key), choices)
        for key in ("vocab_size", "seq_len", "layers", "width", "heads", "log_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"bad gpt2-wikitext problem option {key}={getattr(self, key)}; expected an integer >= 1")
        if self.width % self.heads:
            raise ConfigError(f"bad gpt2-wikitext problem option width={self.width}; expected a multiple of heads={self.heads}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"bad gpt2-wikitext problem option dropout={self.dropout}; expected 0 <= dropout < 1")
        for key in ("train_tokens", "valid_tokens"):
            value = getattr(self, key)
            if value is not None and value < 0:
                raise ConfigError(f"bad gpt2-wikitext problem option {key}={value}; expected an integer >= 0 or none (all)")

    def config(self, vocab_size: int | None = None) -> GPT2Config:
        """The decoder's sizes; ``vocab_size`` defaults to the SentencePiece setting (the built vocabulary differs slightly)."""
        return GPT2Config(vocab_size or self.vocab_size, self.seq_len, self.layers, self.width, self.heads, self.dropout)

    def flops_per_sample(self) -> float:
        """Training FLOPs of one window (6·N·tokens plus attention), for cost estimates."""
        return self.seq_len * self.config().train_flops_per_token()

    def flops_per_step(self) -> float:
        """A pass over every training window (what one full-batch step would cost)."""
        tokens = self.train_tokens or TRAIN_TOKENS[self.corpus]
        return tokens / self.seq_len * self.flops_per_sample()

    def build(self, seed: int) -> Problem:
        """Tokenize the corpus (cached), cut the windows and build the decoder from ``seed``'s model stream."""
        from heavytail.data.text import TokenWindows, load_text_corpus  # imports the store: not at import time (cycle)

        corpus = load_text_corpus(self.corpus, self.tokenizer, vocab_size=self.vocab_size)
        train = corpus.train[: self.train_tokens] if self.train_tokens is not None else corpus.train
        valid = corpus.valid[: self.valid_tokens] if self.valid_tokens is not None else corpus.valid
        num_classes = len(corpus.vocab)
        config = self.config(num_classes)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "model"))
            model = gpt2(config)
        samples = TokenWindows(train, self.seq_len)
        validation = TokenWindows(valid, min(self.seq_len, len(valid) - 1)) if len(valid) > 1 and self.valid_tokens != 0 else None
        activations = 4 * self.seq_len * self.width * (16 * self.layers + 2)  # float32 bytes a window keeps for backward, roughly
        problem = Problem(
            model=model,
            x=None,
            y=None,
            samples=samples,
            validation=validation,
            num_classes=num_classes,
            log_every=self.log_every,
            activation_bytes_per_sample=activations,
            info={
                "n": len(samples),
                "c": num_classes,
                "tokens": len(samples) * self.seq_len,
                "valid_tokens": len(validation) * validation.seq_len if validation is not None else 0,
                "corpus": corpus.name,
                "tokenizer": corpus.tokenizer,
                "train_flops_per_token": config.train_flops_per_token(),
                **({"note": corpus.note} if corpus.note else {}),
            },
        )
        return self.weighted(problem)
