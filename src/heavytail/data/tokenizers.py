"""Tokenizers of the paper: torchtext's ``basic_english`` words, and SentencePiece BPE / Unigram.

``basic_english`` (torchtext, now retired) lower-cases a line and applies, in this order:
``'`` -> `` '  ``; ``"`` deleted; ``.`` -> `` . ``; ``<br />`` -> space; ``,`` ``(`` ``)`` ``!`` ``?``
padded with spaces; ``;`` and ``:`` -> space; whitespace runs -> one space; then splits on whitespace.
:func:`basic_english_reference` is that rule list written out; :func:`basic_english` and
:func:`count_basic_english` are fast equivalents (a few C-level passes over large chunks of text),
tested against the reference. BPE and Unigram models are trained locally with SentencePiece (what the
paper used), deterministically, and cached under the data directory keyed by corpus md5 and settings.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from heavytail.options import ConfigError

TOKENIZERS = ("word", "bpe", "unigram")

# torchtext's rules, in its order: (pattern, replacement).
BASIC_ENGLISH_RULES: tuple[tuple[str, str], ...] = (
    (r"\'", " '  "),
    (r"\"", ""),
    (r"\.", " . "),
    (r"<br \/>", " "),
    (r",", " , "),
    (r"\(", " ( "),
    (r"\)", " ) "),
    (r"\!", " ! "),
    (r"\?", " ? "),
    (r"\;", " "),
    (r"\:", " "),
    (r"\s+", " "),
)
_COMPILED_RULES = tuple((re.compile(p), r) for p, r in BASIC_ENGLISH_RULES)


def basic_english_reference(line: str) -> list[str]:
    """torchtext's ``basic_english`` tokenizer, rule by rule (slow; the definition the fast paths are tested against)."""
    line = line.lower()
    for pattern, replacement in _COMPILED_RULES:
        line = pattern.sub(replacement, line)
    return line.split()


# Characters that become their own token (padded with spaces) and characters that become a space.
_PADDED = "'.,()!?"
_SPACED = ";:"


def basic_english(text: str) -> list[str]:
    """The tokens of ``text`` (any number of lines) by the ``basic_english`` rules, in order.

    Equal to concatenating :func:`basic_english_reference` over the lines: no rule matches across a
    line break, and the only interaction between rules is that deleting ``"`` can form ``<br />``,
    so quotes are deleted before ``<br />`` is replaced, as in the reference order.
    """
    text = text.lower().replace('"', "")
    if "<br />" in text:
        text = text.replace("<br />", " ")
    for ch in _PADDED:
        if ch in text:
            text = text.replace(ch, f" {ch} ")
    return text.translate(_SPACE_TABLE).split()


_SPACE_TABLE = str.maketrans({ch: " " for ch in _SPACED})

# Byte-level counting: punctuation tokens are counted from a byte histogram and turned into spaces, so the
# dictionary counts only words. bytes.split() splits on ASCII whitespace only: the table turns the
# other ASCII characters str.split() splits on (\x1c-\x1f) into spaces, and finish_counts splits the
# few non-ASCII tokens that hold Unicode whitespace (a no-break space, ...).
_LOWER_TABLE = bytes.maketrans(bytes(range(65, 91)), bytes(range(97, 123)))
_BYTE_TABLE = bytes.maketrans(
    (_PADDED + _SPACED).encode() + bytes(range(0x1C, 0x20)), b" " * (len(_PADDED) + len(_SPACED) + 4)
)


def count_basic_english_bytes(chunk: bytes, counts: Counter[bytes], punctuation: Counter[str]) -> int:
    """Add the ``basic_english`` token counts of a UTF-8 ``chunk`` (whole lines) to ``counts`` and ``punctuation``.

    Returns the number of tokens found (before :func:`finish_counts` splits tokens at Unicode whitespace).

    Word tokens are counted as (ASCII-lower-cased) bytes; :func:`finish_counts` decodes them and
    lower-cases the non-ASCII ones, which gives the same tokens because lower-casing maps no
    character to whitespace, punctuation, ``<``, ``b``, ``r``, ``/`` or ``>``.
    """
    data = chunk.translate(_LOWER_TABLE, b'"')  # ASCII lower-case and " deleted in one pass
    if b"<br />" in data:  # before ; : and \x1c-\x1f become spaces, which must not form a <br />
        data = data.replace(b"<br />", b" ")
    byte_counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)  # one pass for all 7 characters
    found = 0
    for ch in _PADDED:
        n = int(byte_counts[ord(ch)])
        if n:
            punctuation[ch] += n
            found += n
    words = data.translate(_BYTE_TABLE).split()
    counts.update(words)
    return found + len(words)


def finish_counts(counts: Counter[bytes], punctuation: Counter[str]) -> Counter[str]:
    """Decode byte-token counts (lower-casing non-ASCII tokens, merging those that coincide) and add punctuation."""
    out: Counter[str] = Counter()
    for token, n in counts.items():
        try:
            word = token.decode()
        except UnicodeDecodeError:
            raise ConfigError(f"not UTF-8 text: token {token[:40]!r} cannot be decoded") from None
        if token.isascii():
            out[word] += n
        else:  # may hold whitespace that bytes.split() does not split on (e.g. a no-break space)
            for piece in word.lower().split():
                out[piece] += n
    for ch, n in punctuation.items():
        out[ch] += n
    return out


def safe_cut(buffer: bytes) -> int:
    """Where to cut a buffer so that no token (nor a ``<br />``) spans the cut: after its last line break.

    Without a line break, after the last ASCII whitespace that cannot be inside a ``<br />``; 0 if none.
    """
    cut = buffer.rfind(b"\n") + 1
    if cut:
        return cut
    for match in reversed(list(re.finditer(rb"[\t\x0b\x0c\r ]", buffer[-65536:]))):
        at = len(buffer) - len(buffer[-65536:]) + match.start()
        if not buffer[:at].replace(b'"', b"").endswith(b"<br"):
            return at + 1
    return 0


def read_chunks(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """The file's bytes in chunks of about ``chunk_bytes``, each ending at a safe cut (see :func:`safe_cut`)."""
    rest = b""
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            buffer = rest + block
            cut = safe_cut(buffer)
            rest = buffer[cut:]
            if cut:
                yield buffer[:cut]
    if rest:
        yield rest


# ----------------------------------------------------------------------------------------- SentencePiece


@dataclass(frozen=True)
class PieceSettings:
    """Settings of a SentencePiece model: the paper's (torchtext ``generate_sp_model``) with SentencePiece defaults."""

    model_type: str  # "bpe" or "unigram"
    vocab_size: int = 4000
    character_coverage: float = 0.9995  # SentencePiece's default
    max_sentence_length: int = 4192  # bytes; SentencePiece's default (longer lines are skipped in training)

    def key(self) -> str:
        return f"{self.model_type}-{self.vocab_size}-cc{self.character_coverage}-msl{self.max_sentence_length}"


def tokenizer_cache_dir(data_dir: Path) -> Path:
    """``DATA_DIR/tokenizers`` if the data directory is writable, else the default data directory's.

    A data directory without write permission bits (e.g. a read-only shared copy) is never written
    to, even by a user (root) whom the permissions would not stop.
    """
    from heavytail.data.datadir import default_data_dir

    for root in (data_dir, default_data_dir()):
        if _writable(root):
            folder = root / "tokenizers"
            folder.mkdir(parents=True, exist_ok=True)
            return folder
    raise ConfigError(f"no writable directory for trained tokenizers under {data_dir} or {default_data_dir()}")


def _writable(path: Path) -> bool:
    """Whether ``path`` (or, if absent, its nearest existing parent) can be written and has a write bit set."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK) and bool(path.stat().st_mode & 0o222)


def corpus_key(md5s: Sequence[str]) -> str:
    """A short key for a training corpus: the md5s of its files, in order."""
    return hashlib.sha256(",".join(md5s).encode()).hexdigest()[:16]


def train_sentencepiece(files: Sequence[Path], settings: PieceSettings, cache: Path, md5s: Sequence[str]) -> Path:
    """Train (or reuse) a SentencePiece model on ``files``; returns the ``.model`` path in ``cache``.

    One training thread and no input sampling make training deterministic; the model is written
    under a temporary name and renamed into place, so concurrent or interrupted runs never leave a
    partial model.
    """
    import sentencepiece as spm

    if settings.model_type not in ("bpe", "unigram"):
        raise ConfigError(f"unknown SentencePiece model type {settings.model_type!r}; choose one of: bpe, unigram")
    target = cache / f"{settings.key()}-{corpus_key(md5s)}.model"
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory(dir=cache, prefix=".train-") as tmp:
        prefix = Path(tmp) / "model"
        try:
            spm.SentencePieceTrainer.train(
                input=",".join(str(f) for f in files),
                model_prefix=str(prefix),
                model_type=settings.model_type,
                vocab_size=settings.vocab_size,
                character_coverage=settings.character_coverage,
                max_sentence_length=settings.max_sentence_length,
                num_threads=1,
                input_sentence_size=0,
                shuffle_input_sentence=False,
                minloglevel=2,
            )
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"SentencePiece {settings.model_type} training on {', '.join(map(str, files))} failed: {first}") from None
        os.replace(prefix.with_suffix(".model"), target)
    return target


class PieceTokenizer:
    """A trained SentencePiece model: text lines -> pieces (strings), as the paper counted them."""

    def __init__(self, model_path: Path) -> None:
        import sentencepiece as spm

        self.model_path = Path(model_path)
        self.processor = spm.SentencePieceProcessor(model_file=str(model_path))

    def __call__(self, text: str) -> list[str]:
        """Pieces of every line of ``text``, in order."""
        return [p for pieces in self.processor.encode(text.splitlines(), out_type=str) for p in pieces]

    def count(self, lines: Iterable[str], counts: Counter[str]) -> int:
        """Add the piece counts of ``lines`` to ``counts``; return the number of pieces."""
        total = 0
        for pieces in self.processor.encode(list(lines), out_type=str):
            counts.update(pieces)
            total += len(pieces)
        return total
