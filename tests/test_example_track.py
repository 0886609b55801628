"""The tracker example runs end to end on the local WikiText-2 file and writes its figure (a tiny configuration)."""

import importlib.util
from pathlib import Path

import pytest

import heavytail as ht

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "track_gpt_wikitext2.py"


def test_example_trains_sgd_and_adam_tracks_both_and_draws_the_figure(tmp_path):
    spec = importlib.util.spec_from_file_location("track_gpt_wikitext2", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    if not example.DEFAULT_TEXT.exists():
        pytest.skip(f"no WikiText-2 file at {example.DEFAULT_TEXT}")
    tokens, vocabulary = example.word_tokens(example.DEFAULT_TEXT)
    assert len(tokens) == 217_646 and len(vocabulary) == 13_777 == int(tokens.max()) + 1
    assert vocabulary[0] == "the"  # ids by frequency
    subset, subset_vocabulary = example.word_tokens(example.DEFAULT_TEXT, 5000)
    assert len(subset) == 5000 and set(subset_vocabulary) <= set(vocabulary)
    tiny = "--max-tokens 5000 --steps 3 --log-every 1 --context 8 --batch-size 2 --width 16 --layers 1 --lr-sgd 0.1 --lr-adam 1e-3".split()
    example.main(tiny + ["--results", str(tmp_path), "--out", str(tmp_path / "figure")])
    store = ht.Store(tmp_path)
    runs = [store.load(run_id) for run_id in store.tracked("gpt-wikitext2")]
    assert sorted(r.spec.metadata["optimizer"] for r in runs) == ["adam", "sgd"]
    for record in runs:
        assert record.status == "complete" and record.history.step.tolist() == [0, 1, 2, 3]
        assert record.history.num_classes == len(subset_vocabulary)
    assert (tmp_path / "figure.png").stat().st_size > 10_000
