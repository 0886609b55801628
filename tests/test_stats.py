"""`heavytail stats`: power-law fit on samples of known exponent, label readers, bad input, text datasets' files."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from heavytail.cli import main
from heavytail.data.datadir import DataError, DataFile, Dataset, download, fetch_archive
from heavytail.data.labels import read_label_counts
from heavytail.stats import class_stats, fit_power_law

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_text = pytest.mark.skipif(not (SHARED / "ptb" / "ptb.valid.txt").is_file(), reason="../shared/data not present")


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    """Trained tokenizers of a read-only data directory go to the default cache: keep it in tmp."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def zipf_counts(alpha: float, classes: int, samples: int, seed: int = 0) -> np.ndarray:
    p = np.arange(1, classes + 1, dtype=float) ** -alpha
    return np.random.default_rng(seed).multinomial(samples, p / p.sum())


@pytest.mark.parametrize("alpha", [0.8, 1.0, 1.3])
def test_zipf_exponent_recovered(alpha):
    counts = zipf_counts(alpha, 20_000, 500_000)
    stats = class_stats(dict(enumerate(counts)))
    assert abs(stats.summary["exponent"] - alpha) < 0.05
    lo, hi = stats.summary["fit_ranks"]
    assert lo == 1 and stats.sorted_counts[hi - 1] >= 10 and (hi == len(stats.sorted_counts) or stats.sorted_counts[hi] < 10)


def test_fit_matches_the_likelihood_optimum():
    counts = np.sort(zipf_counts(1.1, 500, 50_000, seed=1))[::-1]
    fit = fit_power_law(counts)
    r = np.arange(fit.lo, fit.hi + 1)
    n = counts[fit.lo - 1 : fit.hi]

    def loglik(a: float) -> float:
        return float(-a * (n @ np.log(r)) - n.sum() * np.log(np.sum(r**-a)))

    assert loglik(fit.exponent) >= max(loglik(fit.exponent - 1e-3), loglik(fit.exponent + 1e-3))


def test_groups_rare_shares_and_json_keys(tmp_path, capsys):
    labels = np.repeat(np.arange(50), zipf_counts(1.0, 50, 5_000, seed=2))
    path = tmp_path / "labels.npy"
    np.save(path, labels)
    assert main(["stats", str(path), "--json", "--out", str(tmp_path / "plot")]) == 0
    summary = json.loads(capsys.readouterr().out)
    counts = np.bincount(labels)
    assert summary["classes"] == np.count_nonzero(counts) and summary["samples"] == len(labels)
    groups = summary["groups"]
    assert len(groups) == 10 and sum(g["num_classes"] for g in groups) == summary["classes"]
    assert abs(sum(g["mass"] for g in groups) - 1) < 1e-9 and groups[0]["max_count"] == counts.max()
    rare10 = summary["rare"][0]
    assert rare10["below_count"] == 10 and rare10["sample_share"] == pytest.approx(counts[(counts > 0) & (counts < 10)].sum() / len(labels))
    assert Path(summary["figures"][0]).is_file()
    for key in ("exponent", "fit_ranks"):
        assert summary[key] is not None
    assert summary["class_counts"] == counts.tolist()  # integer labels: counts by class index, for GroupTracker.from_stats


def test_label_readers_agree(tmp_path):
    labels = [f"class{k}" for k in np.repeat(np.arange(30), zipf_counts(1.0, 30, 3_000, seed=3))]
    (tmp_path / "l.txt").write_text("\n".join(labels) + "\n")
    pd.DataFrame({"id": range(len(labels)), "label": labels}).to_csv(tmp_path / "l.csv", index=False)
    pd.DataFrame({"label": labels}).to_parquet(tmp_path / "l.parquet")
    np.save(tmp_path / "l.npy", np.array(labels))
    expected = Counter(labels)
    assert read_label_counts(tmp_path / "l.txt") == expected
    assert read_label_counts(tmp_path / "l.csv", "label") == expected
    assert read_label_counts(tmp_path / "l.parquet") == expected
    assert read_label_counts(tmp_path / "l.npy") == expected


@pytest.mark.parametrize(
    "name, content, args, message",
    [
        ("empty.txt", b"", [], "is empty"),
        ("one.txt", b"a\na\na\n", [], "only one class"),
        ("bin.txt", b"\x00\x01\x02abc\n", [], "binary"),
        ("t.csv", b"a,b\n1,2\n", ["--column", "c"], "no column 'c'; choose one of: a, b"),
        ("t.csv", b"a,b\n1,2\n", [], "choose one with --column"),
        ("corpus.txt", b"\x00\x00", ["--tokenizer", "word"], "binary"),
        ("x.json", b"{}", [], "unknown labels file type"),
    ],
)
def test_bad_input_one_line_error(tmp_path, capsys, name, content, args, message):
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["stats", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@needs_text
def test_stats_on_ptb_valid(capsys):
    assert main(["stats", "ptb", "--split", "valid", "--json", "--data-dir", str(SHARED)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["samples"] == 73_339 and summary["classes"] == 5_980 and summary["tokens_per_second"] > 0
    assert 0.85 < summary["exponent"] < 1.1  # Zipf's law: about 1


@needs_text
def test_data_verify_lists_missing_text_files(capsys):
    assert main(["data", "verify", "ptb", "wikitext-2", "wikitext-103", "--data-dir", str(SHARED), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)["datasets"]
    status = {ds: {f["name"]: f["ok"] for f in files} for ds, files in report.items()}
    assert status["ptb"] == {"ptb.train.txt": False, "ptb.valid.txt": True, "ptb.test.txt": True}
    assert status["wikitext-2"] == {"wiki.train.tokens": False, "wiki.valid.tokens": True, "wiki.test.tokens": True}  # valid.txt alias
    assert not any(status["wikitext-103"].values())


def _archive_dataset(tmp_path: Path, url: str, md5: str) -> Dataset:
    from functools import partial

    files = tuple(DataFile(f"wiki.{s}.tokens", None, split=s) for s in ("train", "test"))
    return Dataset("wt-test", "test archive", files, fetch=partial(fetch_archive, archive=DataFile("a.zip", md5, None, (url,))))


def test_archive_fetch_extracts_members(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("wikitext/wiki.train.tokens", "a b c\n")
        zf.writestr("wikitext/wiki.test.tokens", "d e\n")
        zf.writestr("wikitext/README", "x")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    statuses = download(_archive_dataset(tmp_path, archive.as_uri(), md5), tmp_path / "data")
    assert all(s.ok for s in statuses)
    assert sorted(p.name for p in (tmp_path / "data" / "wt-test").iterdir()) == ["wiki.test.tokens", "wiki.train.tokens"]
    with pytest.raises(DataError) as info:  # a wrong checksum: nothing is extracted, one line
        download(_archive_dataset(tmp_path, archive.as_uri(), "0" * 32), tmp_path / "other")
    assert "\n" not in str(info.value) and not list((tmp_path / "other" / "wt-test").iterdir())


@needs_text
@pytest.mark.slow
def test_reproduce_token_stats_small(tmp_path, capsys):
    """v1 Fig 8 at small scale: six panels, every tokenization heavy-tailed with an exponent near 1."""
    args = ["reproduce", "token-stats", "--data-dir", str(SHARED), "--results", str(tmp_path / "res"), "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["panels"]) == {f"{c}/{t}" for c in ("ptb", "wikitext-2") for t in ("word", "bpe", "unigram")}
    assert all(0.85 < panel["exponent"] < 1.15 for panel in summary["panels"].values())
    assert summary["panels"]["ptb/word"]["samples"] == 155_453  # valid + test: 73 339 + 82 114 tokens
    assert Path(summary["figures"][0]).is_file()
