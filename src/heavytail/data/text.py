"""Text corpora as next-token classification: token streams, the paper's ``batchify`` and windows.

Corpora (paper section 2.5-2.7): ``ptb`` (train/valid), ``tinyptb`` (PTB valid as training set, test
as validation), ``wikitext-2`` and ``wikitext-103`` (train/valid), ``tinywikitext-2`` (WikiText-2 valid
as training set, test as validation: the files a machine without the train split has). A corpus is read from the data
directory, tokenized (``word`` = basic_english, or a SentencePiece ``bpe``/``unigram`` model trained on
the vocabulary files), and encoded with a vocabulary built as torchtext did: ``<unk>`` first, then
tokens by decreasing count, ties in lexicographic order. The vocabulary (and the tokenizer) come
from the training split; when that file is absent, from the splits present, and the corpus says so.
Encoded corpora are cached next to the trained tokenizers (``DATA_DIR/tokenizers/corpora/``), keyed by
the tokenizer and the md5s of the files, so WikiText-103 is tokenized once.

:class:`NextTokenWindows` cuts one token stream into ``B`` parallel streams and non-overlapping
windows of ``L`` tokens whose targets are the next tokens; windows are views, never copies.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor

from heavytail.data.datadir import DataError, dataset_file, get_dataset, md5sum, resolve_data_dir
from heavytail.data.tokenizers import (
    TOKENIZERS,
    PieceSettings,
    PieceTokenizer,
    basic_english,
    count_basic_english_bytes,
    finish_counts,
    read_chunks,
    tokenizer_cache_dir,
    train_sentencepiece,
)
from heavytail.options import ConfigError
from heavytail.store import write_json

UNK = "<unk>"


@dataclass(frozen=True)
class CorpusLayout:
    """Which dataset and which of its splits serve as training and validation data."""

    dataset: str
    train: str
    valid: str
    vocab_fallback: tuple[str, ...]  # splits the vocabulary comes from when the training file is absent


CORPORA: dict[str, CorpusLayout] = {
    "ptb": CorpusLayout("ptb", "train", "valid", ()),
    "tinyptb": CorpusLayout("ptb", "valid", "test", ("valid", "test")),  # paper: vocabulary of PTB train
    "tinywikitext-2": CorpusLayout("wikitext-2", "valid", "test", ("valid", "test")),  # the local files, as tinyptb
    "wikitext-2": CorpusLayout("wikitext-2", "train", "valid", ()),
    "wikitext-103": CorpusLayout("wikitext-103", "train", "valid", ()),
}


class Tokenizer(Protocol):
    name: str

    def count_file(self, path: Path, counts: Counter[str]) -> int:
        """Add the token counts of a file to ``counts`` (streaming); return the number of tokens."""

    def token_chunks(self, path: Path) -> Iterator[list[str]]:
        """The file's tokens in order, a chunk at a time."""


class WordTokenizer:
    """torchtext's ``basic_english`` over whole files, streamed in chunks of lines."""

    name = "word"

    def count_file(self, path: Path, counts: Counter[str]) -> int:
        words: Counter[bytes] = Counter()
        punctuation: Counter[str] = Counter()
        for chunk in read_chunks(path):
            count_basic_english_bytes(chunk, words, punctuation)
        found = finish_counts(words, punctuation)
        counts.update(found)
        return sum(found.values())

    def token_chunks(self, path: Path) -> Iterator[list[str]]:
        for chunk in read_chunks(path):
            yield basic_english(_decode(chunk, path))


class SentencePieceFiles:
    """A SentencePiece model applied line by line to files (the paper counted pieces per line)."""

    def __init__(self, model: PieceTokenizer, name: str) -> None:
        self.model = model
        self.name = name

    def count_file(self, path: Path, counts: Counter[str]) -> int:
        return sum(self.model.count(_decode(chunk, path).splitlines(), counts) for chunk in read_chunks(path))

    def token_chunks(self, path: Path) -> Iterator[list[str]]:
        for chunk in read_chunks(path):
            yield self.model(_decode(chunk, path))


def _decode(chunk: bytes, path: Path) -> str:
    try:
        return chunk.decode()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start} of a chunk: {chunk[exc.start:exc.start + 4]!r})") from None


def make_tokenizer(kind: str, train_files: Sequence[Path], *, vocab_size: int = 4000, data_dir: str | Path | None = None) -> Tokenizer:
    """The ``word`` tokenizer, or a ``bpe``/``unigram`` SentencePiece model trained on ``train_files`` (cached)."""
    if kind == "word":
        return WordTokenizer()
    if kind not in TOKENIZERS:
        raise ConfigError(f"unknown tokenizer {kind!r}; choose one of: {', '.join(TOKENIZERS)}")
    if vocab_size < 2:
        raise ConfigError(f"vocabulary size must be at least 2, got {vocab_size}")
    cache = tokenizer_cache_dir(resolve_data_dir(data_dir))
    md5s = [md5sum(Path(f)) for f in train_files]
    model = train_sentencepiece([Path(f) for f in train_files], PieceSettings(kind, vocab_size), cache, md5s)
    return SentencePieceFiles(PieceTokenizer(model), f"{kind}-{vocab_size}")


@dataclass(frozen=True)
class Vocabulary:
    """Token <-> index, torchtext-style: specials first, then by decreasing count, ties lexicographic."""

    tokens: tuple[str, ...]
    index: dict[str, int] = field(repr=False, compare=False)

    @classmethod
    def from_counts(cls, counts: Counter[str], specials: Sequence[str] = (UNK,)) -> Vocabulary:
        ordered = sorted((t for t in counts if t not in specials), key=lambda t: (-counts[t], t))
        tokens = (*specials, *ordered)
        return cls(tokens, {t: i for i, t in enumerate(tokens)})

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Indices of ``tokens``; unknown tokens map to ``<unk>``."""
        unk = self.index[UNK]
        get = self.index.get
        return np.fromiter((get(t, unk) for t in tokens), dtype=np.int64, count=len(tokens))


@dataclass(frozen=True)
class TextCorpus:
    """A tokenized corpus: training and validation token streams (1-D int64), vocabulary, provenance."""

    name: str
    tokenizer: str
    train: Tensor
    valid: Tensor
    vocab: Vocabulary
    vocab_files: tuple[str, ...]  # the files the vocabulary (and a subword model) were built from
    note: str  # how the vocabulary differs from the paper's, if it does


def _encode_file(tokenizer: Tokenizer, path: Path, vocab: Vocabulary) -> Tensor:
    parts = [vocab.encode(tokens) for tokens in tokenizer.token_chunks(path)]
    return torch.from_numpy(np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))


def load_text_corpus(
    name: str,
    tokenizer: str = "word",
    *,
    vocab_size: int = 4000,
    data_dir: str | Path | None = None,
    vocab_splits: Sequence[str] | None = None,
) -> TextCorpus:
    """Read, tokenize and encode corpus ``name`` (see :data:`CORPORA`) from the data directory.

    ``vocab_splits`` names the splits the vocabulary comes from (e.g. ``("train",)``, a one-line
    :class:`DataError` when one is absent); None: the train split, else the corpus's fallback splits.
    """
    try:
        layout = CORPORA[name]
    except KeyError:
        raise ConfigError(f"unknown corpus {name!r}; choose one of: {', '.join(CORPORA)}") from None
    dataset = get_dataset(layout.dataset)
    train_path = dataset_file(dataset, layout.train, data_dir)
    valid_path = dataset_file(dataset, layout.valid, data_dir)
    note = ""
    if vocab_splits is not None:
        vocab_paths = [dataset_file(dataset, split, data_dir) for split in vocab_splits]
        if tuple(vocab_splits) != ("train",):
            note = f"vocabulary built from the {' + '.join(vocab_splits)} splits of {dataset.name} (the paper uses train)"
    else:
        try:
            vocab_paths = [dataset_file(dataset, "train", data_dir)]
        except DataError:
            if not layout.vocab_fallback:
                raise
            vocab_paths = [dataset_file(dataset, split, data_dir) for split in layout.vocab_fallback]
            note = f"{dataset.name} train split absent: vocabulary built from the {' + '.join(layout.vocab_fallback)} splits (the paper uses train)"
    tok = make_tokenizer(tokenizer, vocab_paths, vocab_size=vocab_size, data_dir=data_dir)
    md5s = {str(p): md5sum(p) for p in {train_path, valid_path, *vocab_paths}}
    key = hashlib.sha256(json.dumps([tok.name, sorted(md5s.items()), [str(p) for p in vocab_paths], str(train_path), str(valid_path)]).encode()).hexdigest()[:16]
    cached = tokenizer_cache_dir(resolve_data_dir(data_dir)) / "corpora" / f"{name}-{tok.name}-{key}"
    if cached.with_suffix(".json").is_file():  # written last: its presence means the arrays are complete
        meta = json.loads(cached.with_suffix(".json").read_text())
        arrays = np.load(cached.with_suffix(".npz"))
        vocab = Vocabulary(tuple(meta["vocab"]), {t: i for i, t in enumerate(meta["vocab"])})
        train, valid = (torch.from_numpy(arrays[split].astype(np.int64)) for split in ("train", "valid"))
    else:
        counts: Counter[str] = Counter()
        for path in vocab_paths:
            tok.count_file(path, counts)
        vocab = Vocabulary.from_counts(counts)
        train, valid = _encode_file(tok, train_path, vocab), _encode_file(tok, valid_path, vocab)
        _save_encoded(cached, train, valid, vocab)
    return TextCorpus(
        name=name,
        tokenizer=tok.name,
        train=train,
        valid=valid,
        vocab=vocab,
        vocab_files=tuple(str(p) for p in vocab_paths),
        note=note,
    )


def _save_encoded(stem: Path, train: Tensor, valid: Tensor, vocab: Vocabulary) -> None:
    """Cache an encoded corpus (int32 arrays, then the vocabulary as JSON), each file renamed into place."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    dtype = np.int32 if len(vocab) < 2**31 else np.int64
    tmp = stem.with_name(f".{stem.name}.{os.getpid()}.npz")
    try:
        np.savez(tmp, train=train.numpy().astype(dtype), valid=valid.numpy().astype(dtype))
        os.replace(tmp, stem.with_suffix(".npz"))
    finally:
        tmp.unlink(missing_ok=True)
    write_json(stem.with_suffix(".json"), {"vocab": list(vocab.tokens)})


def batchify(tokens: Tensor, num_streams: int) -> Tensor:
    """The paper's ``batchify``: drop the remainder and cut the stream into ``num_streams`` contiguous streams.

    Returns a (num_streams, rows) view of ``tokens`` (the paper's (rows, num_streams) transposed, so
    each stream is contiguous and no copy is made).
    """
    if tokens.dim() != 1:
        raise ValueError(f"expected a 1-D token stream, got shape {tuple(tokens.shape)}")
    if num_streams < 1:
        raise ConfigError(f"number of streams must be >= 1, got {num_streams}")
    rows = len(tokens) // num_streams
    if rows < 2:
        raise ConfigError(f"{len(tokens)} tokens cannot fill {num_streams} streams of at least 2 tokens")
    return tokens[: rows * num_streams].view(num_streams, rows)


class NextTokenWindows:
    """Non-overlapping windows of ``seq_len`` positions over ``num_streams`` parallel streams; targets = next token.

    Window ``i`` holds positions ``[i L, i L + l)`` of every stream (``l = L`` except a shorter last
    window, as in the paper's loop); item ``i`` is ``(inputs, targets)``, two (B, l) views with
    ``targets[:, j] = inputs[:, j + 1]`` inside the window. PTB uses B = 512, L = 35; TinyPTB B = 1024,
    L = 35; WikiText-103 B = 1, L = 1024 with ``drop_last=True`` (whole windows only). :meth:`order`
    gives an epoch's window order: sequential by default (the paper never shuffles, D13).
    """

    def __init__(self, tokens: Tensor, seq_len: int, num_streams: int = 1, *, drop_last: bool = False, shuffle: bool = False, seed: int = 0) -> None:
        if seq_len < 1:
            raise ConfigError(f"window length must be >= 1, got {seq_len}")
        self.streams = batchify(tokens, num_streams)
        self.seq_len = seq_len
        rows = self.streams.shape[1]
        starts = list(range(0, rows - 1, seq_len))
        if drop_last and starts and rows - 1 - starts[-1] < seq_len:
            starts.pop()
        self.starts = starts
        self.shuffle = shuffle
        self.seed = seed

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        start = self.starts[i]
        length = min(self.seq_len, self.streams.shape[1] - 1 - start)
        return self.streams[:, start : start + length], self.streams[:, start + 1 : start + 1 + length]

    def order(self, epoch: int = 0) -> list[int]:
        """Window indices for one epoch: ``0..n-1``, or a permutation seeded by (seed, epoch) when shuffling."""
        if not self.shuffle:
            return list(range(len(self)))
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self), generator=generator).tolist()

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return (self[i] for i in self.order())

    def _target_end(self) -> int:
        """One past the last stream position that is a target in some window."""
        if not self.starts:
            return 1
        return min(self.starts[-1] + self.seq_len, self.streams.shape[1] - 1) + 1

    @property
    def num_targets(self) -> int:
        """Targets in one epoch: streams x target positions."""
        return self.streams.shape[0] * (self._target_end() - 1)

    def class_counts(self, num_classes: int) -> Tensor:
        """Samples per class = how often each token is a target in one epoch (int64, length ``num_classes``)."""
        end = self._target_end()
        counts = torch.zeros(num_classes, dtype=torch.int64)
        for stream in self.streams:  # each row is contiguous: no copy
            counts += torch.bincount(stream[1:end], minlength=num_classes)
        return counts


class TokenWindows:
    """The windows of ``NextTokenWindows(tokens, seq_len, 1, drop_last=True)`` read by index: for training
    sets too big to hold as a tensor of windows (WikiText-103's 107,262 windows of 1,024 tokens).

    Window ``i`` has inputs ``tokens[i L : i L + L]`` and targets ``tokens[i L + 1 : i L + L + 1]``;
    :meth:`fetch` gathers a batch of windows from the one token stream on the device (int32 there,
    int64 batches out), so nothing waits for the host and no window is stored twice.
    """

    def __init__(self, tokens: Tensor, seq_len: int) -> None:
        if seq_len < 1:
            raise ConfigError(f"window length must be >= 1, got {seq_len}")
        if len(tokens) < seq_len + 1:
            raise ConfigError(f"{len(tokens)} tokens cannot fill one window of {seq_len} inputs and their targets")
        self.tokens = tokens.to(torch.int32)  # vocabularies are far below 2^31 tokens
        self.seq_len = self.targets_per_sample = seq_len
        self.offsets = torch.arange(seq_len + 1, device=tokens.device)

    def __len__(self) -> int:
        return (len(self.tokens) - 1) // self.seq_len

    def fetch(self, index: Tensor | slice) -> tuple[Tensor, Tensor]:
        """(inputs, targets), two (b, seq_len) int64 tensors, of the windows ``index`` (indices or a slice) selects."""
        if isinstance(index, slice):
            index = torch.arange(*index.indices(len(self)), device=self.tokens.device)
        windows = self.tokens[index[:, None] * self.seq_len + self.offsets].long()
        return windows[:, :-1], windows[:, 1:]

    def class_counts(self, num_classes: int) -> Tensor:
        """How often each token is a target in one pass over the windows (CPU, int64)."""
        targets = self.tokens[1 : len(self) * self.seq_len + 1].cpu().long()
        return torch.bincount(targets, minlength=num_classes)

    def to(self, device: torch.device | str) -> TokenWindows:
        return TokenWindows(self.tokens.to(device), self.seq_len)
