"""Text: basic_english rule by rule, fast paths vs the reference, SentencePiece determinism, next-token windows."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import pytest
import torch

from heavytail.data.text import NextTokenWindows, Vocabulary, batchify, load_text_corpus, make_tokenizer
from heavytail.data.tokenizers import (
    basic_english,
    basic_english_reference,
    count_basic_english_bytes,
    finish_counts,
    read_chunks,
    safe_cut,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_text = pytest.mark.skipif(not (SHARED / "ptb" / "ptb.valid.txt").is_file(), reason="../shared/data not present")


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    """Tokenizers and encoded corpora of a read-only data directory go to the default cache: keep it in tmp."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def fast_counts(text: str) -> Counter[str]:
    words: Counter[bytes] = Counter()
    punctuation: Counter[str] = Counter()
    count_basic_english_bytes(text.encode(), words, punctuation)
    return finish_counts(words, punctuation)


@pytest.mark.parametrize(
    "line, tokens",
    [
        ("Hello World", ["hello", "world"]),  # lower-case
        ("don't", ["don", "'", "t"]),  # ' is its own token
        ('say "hi" now', ["say", "hi", "now"]),  # " is deleted
        ('a"b', ["ab"]),  # deleted, not replaced by a space
        ("end.Next", ["end", ".", "next"]),  # . padded
        ("a<br />b", ["a", "b"]),  # <br /> -> space
        ('a<br "/>b', ["a", "b"]),  # deleting " first forms a <br />, as in torchtext's order
        ("a;b:c", ["a", "b", "c"]),  # ; and : -> space
        ("x,y(z)w!v?u", ["x", ",", "y", "(", "z", ")", "w", "!", "v", "?", "u"]),  # , ( ) ! ? padded
        ("  tab\tand\u00a0nbsp\u3000ideo  ", ["tab", "and", "nbsp", "ideo"]),  # any whitespace splits
        ("<BR />x", ["x"]),  # lower-cased before <br /> is matched
        ("ÉCOLE \u212a", ["école", "k"]),  # non-ASCII lower-case (Kelvin sign -> k)
        ("a<br\t/>b", ["a<br", "/>b"]),  # only the exact <br /> is replaced
        ("a<br;/>b", ["a<br", "/>b"]),  # ; becomes a space after <br /> is replaced: no <br /> forms
    ],
)
def test_basic_english_rules(line, tokens):
    assert basic_english_reference(line) == tokens
    assert basic_english(line) == tokens
    assert fast_counts(line) == Counter(tokens)


def test_fast_paths_equal_reference_on_random_text():
    rng = random.Random(0)
    alphabet = list("abcAB '\".,()!?;:<>/br \t\n\x1c\u00a0\u2009É\u212a") + ["<br />", "<br ", '"/>', "İ"]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        expected = [t for line in text.split("\n") for t in basic_english_reference(line)]
        assert basic_english(text) == expected, repr(text)
        assert fast_counts(text) == Counter(expected), repr(text)


def test_safe_cut_never_splits_a_token_or_br():
    assert safe_cut(b"ab\ncd") == 3
    assert safe_cut(b"aa bb<br />") == 3  # the space inside <br /> is not a cut
    assert safe_cut(b'x <"br />y') == 2
    assert safe_cut(b"nospace") == 0


@needs_text
@pytest.mark.parametrize("name", ["ptb/ptb.valid.txt", "wikitext-2/valid.txt"])
def test_streamed_counts_equal_reference_on_real_files(name, tmp_path):
    path = SHARED / name
    reference: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            reference += basic_english_reference(line)
    tokens = [t for chunk in read_chunks(path, chunk_bytes=50_000) for t in basic_english(chunk.decode())]
    assert tokens == reference
    counts: Counter[str] = Counter()
    assert make_tokenizer("word", [path]).count_file(path, counts) == len(reference)
    assert counts == Counter(reference)


@needs_text
def test_ptb_valid_size_against_an_independent_tokenizer():
    """Token count and vocabulary of PTB valid by a findall re-implementation of the rules (no shared code)."""
    pattern = re.compile(r"[',.()!?]|[^\s',.()!?;:]+")
    independent: Counter[str] = Counter()
    for line in (SHARED / "ptb" / "ptb.valid.txt").read_text().splitlines():
        independent.update(pattern.findall(line.lower().replace('"', "").replace("<br />", " ")))
    corpus = load_text_corpus("tinyptb", data_dir=SHARED)  # trains on PTB valid
    assert len(corpus.train) == sum(independent.values()) == 73_339
    assert Counter(corpus.vocab.tokens[i] for i in corpus.train.tolist()) == independent
    assert "vocabulary built from the valid + test" in corpus.note  # the train split is not shared


@needs_text
def test_tinyptb_windows_match_the_paper():
    """B = 1024, L = 35: 71 rows, 2 windows, 71 680 training targets (the authors' frequency script)."""
    corpus = load_text_corpus("tinyptb", data_dir=SHARED)
    windows = NextTokenWindows(corpus.train, seq_len=35, num_streams=1024)
    assert windows.streams.shape == (1024, 71) and len(windows) == 2 and windows.num_targets == 71_680
    assert int(windows.class_counts(len(corpus.vocab)).sum()) == 71_680


@needs_text
def test_encoded_corpus_is_cached(tmp_path, monkeypatch):
    first = load_text_corpus("tinyptb", data_dir=SHARED)
    assert list((tmp_path / "cache" / "heavytail" / "tokenizers" / "corpora").glob("tinyptb-word-*.json"))

    def no_encoding(*args, **kwargs):
        raise AssertionError("the cached corpus should have been reused")

    monkeypatch.setattr("heavytail.data.text._encode_file", no_encoding)
    second = load_text_corpus("tinyptb", data_dir=SHARED)
    assert torch.equal(first.train, second.train) and torch.equal(first.valid, second.valid)
    assert second.vocab.tokens == first.vocab.tokens and second.train.dtype == torch.int64


def test_windows_targets_are_next_tokens_and_views():
    tokens = torch.arange(1000) % 37
    windows = NextTokenWindows(tokens, seq_len=7, num_streams=4)
    streams = tokens[:1000].view(4, 250)
    seen = Counter()
    for i in range(len(windows)):
        x, y = windows[i]
        assert x.data_ptr() >= tokens.data_ptr() and x.untyped_storage().data_ptr() == tokens.untyped_storage().data_ptr()
        start = windows.starts[i]
        assert torch.equal(y, streams[:, start + 1 : start + 1 + x.shape[1]])
        assert torch.equal(x[:, 1:], y[:, :-1])
        seen.update(y.reshape(-1).tolist())
    assert [windows[i][0].shape[1] for i in range(len(windows))][-1] == 249 - 35 * 7  # shorter last window
    counts = windows.class_counts(37)
    assert counts.tolist() == [seen[k] for k in range(37)] and windows.num_targets == 4 * 249
    assert windows.order() == list(range(len(windows)))  # no shuffling by default (D13)
    shuffled = NextTokenWindows(tokens, seq_len=7, num_streams=4, shuffle=True, seed=3)
    assert sorted(shuffled.order(0)) == list(range(len(windows))) and shuffled.order(0) != shuffled.order(1)
    assert shuffled.order(1) == NextTokenWindows(tokens, 7, 4, shuffle=True, seed=3).order(1)
    assert len(NextTokenWindows(tokens, 7, 4, drop_last=True)) == len(windows) - 1
    assert batchify(tokens, 3).shape == (3, 333)


def test_vocabulary_order_is_torchtexts():
    vocab = Vocabulary.from_counts(Counter({"b": 2, "a": 2, "c": 5, "<unk>": 1}))
    assert vocab.tokens == ("<unk>", "c", "a", "b")
    assert vocab.encode(["c", "zzz", "b"]).tolist() == [1, 0, 3]


@needs_text
@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_sentencepiece_training_is_deterministic_and_cached(kind, tmp_path):
    path = SHARED / "ptb" / "ptb.valid.txt"
    first = make_tokenizer(kind, [path], vocab_size=1000, data_dir=tmp_path / "a")
    second = make_tokenizer(kind, [path], vocab_size=1000, data_dir=tmp_path / "b")
    assert first.model.model_path.parent == tmp_path / "a" / "tokenizers"  # cached under the data directory
    def pieces(tok):  # the model file also records its temporary training path, so compare its content
        sp = tok.model.processor
        return [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]

    assert pieces(first) == pieces(second)
    text = path.read_text()
    assert first.model(text) == second.model(text)
    again = make_tokenizer(kind, [path], vocab_size=1000, data_dir=tmp_path / "a")
    assert again.model.model_path == first.model.model_path  # reused, not retrained
    counts: Counter[str] = Counter()
    n = first.count_file(path, counts)
    assert n == sum(counts.values()) > 73_339
    sp = first.model.processor  # unknown surface strings (e.g. '<') come back as themselves, like torchtext's
    assert len({p for p in counts if sp.piece_to_id(p) != sp.unk_id()}) <= 1000


def test_read_only_data_directory_is_never_written(tmp_path):
    from heavytail.data.tokenizers import tokenizer_cache_dir

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o555)
    try:
        assert tokenizer_cache_dir(shared) == tmp_path / "cache" / "heavytail" / "tokenizers"
        assert not list(shared.iterdir())
        assert tokenizer_cache_dir(tmp_path / "new" / "data") == tmp_path / "new" / "data" / "tokenizers"
    finally:
        shared.chmod(0o755)
