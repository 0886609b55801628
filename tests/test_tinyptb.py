"""TinyPTB problems: windows, frozen parameters, cached features, the evaluation mode of logged losses (D12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from heavytail.cli import main
from heavytail.models.transformer import AttentionOnlyLM, EncoderLM, HeadOnFeatures, freeze_all_but_head
from heavytail.optim import make_optimizer
from heavytail.options import ConfigError
from heavytail.presets import get_preset
from heavytail.problems import Problem, make_problem_options
from heavytail.train import train
from heavytail.train.loop import has_dropout

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_ptb = pytest.mark.skipif(not (SHARED / "ptb" / "ptb.valid.txt").is_file(), reason="../shared/data not present")
TINY = {"streams": 8, "windows": 2, "seq_len": 10, "width": 16, "vocab": "used"}  # 168 tokens, 160 targets


@pytest.fixture(autouse=True)
def _data(tmp_path, monkeypatch):
    """Read the shared PTB files; encoded corpora of the read-only data directory are cached under tmp."""
    monkeypatch.setenv("HEAVYTAIL_DATA", str(SHARED))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_frozen_and_trainable_parameter_counts_at_paper_width():
    """Paper section 3: the head (11.9 M) trains; the embedding (11.9 M) and attention (5.76 M) are frozen."""
    model = AttentionOnlyLM(9920, 1200)
    freeze_all_but_head(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert trainable == 1200 * 9920 + 9920
    assert frozen == 9920 * 1200 + 4 * 1200 * 1200 + 4 * 1200


@needs_ptb
def test_windows_are_the_first_tokens_cut_into_streams():
    from heavytail.data.text import load_text_corpus

    problem = make_problem_options("tinyptb-last-layer", {**TINY, "features": "recompute"}).build(0)
    x, y = problem.x, problem.y
    assert x.shape == y.shape == (16, 10)  # W·B sequences, windows of seq_len
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the next tokens
    assert torch.equal(y[:8, -1], x[8:, 0])  # window 2 of each stream continues window 1
    assert problem.info["n"] == 160 and problem.info["windows"] == 2
    # vocab=used: classes are the word types of the 168 tokens, re-indexed by decreasing count
    corpus = load_text_corpus("tinyptb", vocab_splits=("valid", "test"))
    first = corpus.train[:168]
    assert problem.num_classes == len(torch.unique(first))
    counts = torch.bincount(torch.cat([x[:8, :1].reshape(-1), y.reshape(-1)]), minlength=problem.num_classes)
    assert torch.all(counts[:-1] >= counts[1:])


@needs_ptb
def test_paper_tinyptb_size_and_corpus_vocabulary():
    """B = 1,024 streams of PTB valid hold 2 whole windows of 35: the paper's 71,680 targets."""
    options = make_problem_options("tinyptb-one-layer", {"width": 8, "ff_width": 8, "vocab": "valid+test"})
    problem = options.build(0)
    assert problem.info["n"] == 71_680 and problem.info["windows"] == 2
    assert problem.num_classes == 7534 and "valid + test" in problem.info["note"]


@needs_ptb
@pytest.mark.parametrize("bad, match", [
    ({"vocab": "test"}, "vocab='test'; choose one of: train, valid\\+test, used"),
    ({"features": "lazy"}, "features='lazy'; choose one of: cached, recompute"),
    ({"windows": 0}, "windows=0; expected 1 <= windows"),
    ({"streams": 80, "windows": 100}, "windows=100; 73339 training tokens hold at most 91 windows of 10 in 80 streams"),
    ({"streams": 100_000}, "streams=100000; 73339 training tokens leave no window"),
    ({"width": 0}, "width=0; expected 1 <= width"),
])  # fmt: skip
def test_bad_options_are_one_line_errors(bad, match):
    with pytest.raises(ConfigError, match=match) as error:
        make_problem_options("tinyptb-last-layer", {**TINY, **bad}).build(0)
    assert "\n" not in str(error.value)


def test_bad_one_layer_options():
    with pytest.raises(ConfigError, match="log_mode='off'; choose one of: eval, train"):
        make_problem_options("tinyptb-one-layer", {"log_mode": "off"})
    with pytest.raises(ConfigError, match="heads=3; width=16 must be a multiple of it"):
        make_problem_options("tinyptb-one-layer", {"width": 16, "heads": 3})
    with pytest.raises(ConfigError, match="dropout=1.5"):
        make_problem_options("tinyptb-one-layer", {"dropout": 1.5})


@needs_ptb
def test_paper_vocabulary_needs_the_train_split():
    with pytest.raises(Exception, match="ptb.train.txt not found"):
        make_problem_options("tinyptb-last-layer", {**TINY, "vocab": "train"}).build(0)


@needs_ptb
@pytest.mark.parametrize("optimizer", ["adam+m", "sign+m", "normgd"])
def test_cached_features_give_the_losses_of_the_full_forward(optimizer):
    """features=cached trains on features computed once; the same run recomputing them every step logs the same losses."""
    runs = {}
    for features in ("cached", "recompute"):
        problem = make_problem_options("tinyptb-last-layer", {**TINY, "features": features}).build(3)
        opt = make_optimizer(optimizer, problem.trainable_parameters(), 1e-2)
        runs[features] = (train(problem, opt, 8).history, problem)
    (cached, p_cached), (full, p_full) = runs["cached"], runs["recompute"]
    assert isinstance(p_cached.model, HeadOnFeatures) and p_cached.x.shape == (16, 10, 16)
    torch.testing.assert_close(cached.loss, full.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cached.class_loss, full.class_loss, rtol=1e-4, atol=1e-5, equal_nan=True)
    assert full.loss[-1] < full.loss[0]
    head_cached, head_full = p_cached.model.model.head, p_full.model.head
    torch.testing.assert_close(head_cached.weight, head_full.weight, rtol=1e-4, atol=1e-6)


@needs_ptb
@pytest.mark.parametrize("features", ["cached", "recompute"])
def test_frozen_parameters_are_bit_identical_and_have_no_optimizer_state(features):
    problem = make_problem_options("tinyptb-last-layer", {**TINY, "features": features}).build(0)
    named = dict(problem.model.named_parameters())
    frozen = {name: p.detach().clone() for name, p in named.items() if not p.requires_grad}
    assert frozen and all("head" not in name for name in frozen)
    head_before = {name: p.detach().clone() for name, p in named.items() if p.requires_grad}
    optimizer = make_optimizer("adam+m", problem.trainable_parameters(), 1e-2)
    train(problem, optimizer, 5)
    for name, before in frozen.items():
        assert torch.equal(named[name], before), name
    assert all(not torch.equal(named[name], before) for name, before in head_before.items())
    frozen_ids = {id(named[name]) for name in frozen}
    assert not any(id(p) in frozen_ids for group in optimizer.param_groups for p in group["params"])
    assert not any(id(p) in frozen_ids for p in optimizer.state)
    assert problem.num_trainable_parameters == sum(p.numel() for p in head_before.values())


def _dropout_problem(log_mode: str) -> Problem:
    """A tiny one-layer encoder with dropout 0.2 on random tokens (no data files needed)."""
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 30, (12, 9), generator=generator)
    torch.manual_seed(1)
    model = EncoderLM(30, 16, heads=2, ff_width=16, dropout=0.2)
    return Problem(model=model, x=tokens[:, :-1], y=tokens[:, 1:], num_classes=30, log_mode=log_mode)  # type: ignore[arg-type]


@pytest.mark.parametrize("batch_size", [None, 4])
def test_logged_losses_come_from_an_evaluation_pass_with_dropout_off(batch_size):
    """D12: log_mode=eval logs dropout-free losses; the updates (dropout on) are the same in both modes,
    in full batch and with mini-batches (whose exact passes with dropout on draw masks off the training stream)."""
    results = {}
    for mode in ("eval", "train"):
        problem = _dropout_problem(mode)
        assert has_dropout(problem.model)
        optimizer = make_optimizer("adam+m", problem.trainable_parameters(), 1e-2)
        history = train(problem, optimizer, 4, seed=7, batch_size=batch_size).history
        results[mode] = (history, problem)
    (eval_history, eval_problem), (train_history, train_problem) = results["eval"], results["train"]
    for a, b in zip(eval_problem.model.parameters(), train_problem.model.parameters()):
        assert torch.equal(a, b)  # the eval pass draws no dropout masks: training saw the same masks
    assert eval_history.loss[0] != train_history.loss[0]
    model = eval_problem.model.eval()
    with torch.no_grad():
        logits = model(eval_problem.x).reshape(-1, 30)
        final = torch.nn.functional.cross_entropy(logits, eval_problem.y.reshape(-1)).item()
    assert eval_history.loss[-1] == pytest.approx(final, rel=1e-6)
    assert model.training is False and eval_problem.model.train().training  # the loop left it in train mode


def test_dropout_masks_are_seeded_by_the_run_seed():
    def final_loss(seed: int) -> float:
        problem = _dropout_problem("train")
        return float(train(problem, make_optimizer("gd", problem.trainable_parameters(), 0.1), 3, seed=seed).history.loss[-1])

    state = torch.get_rng_state()
    assert final_loss(0) == final_loss(0) != final_loss(1)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's generator is left as it was


def test_no_dropout_means_no_evaluation_pass():
    assert not has_dropout(AttentionOnlyLM(20, 8)) and not has_dropout(EncoderLM(20, 8, dropout=0.0))
    assert has_dropout(EncoderLM(20, 8, dropout=0.1))


def test_presets_paper_settings():
    last = get_preset("neurips-fig5")
    paper = last.scale("paper")
    assert last.name == "ptb-last-layer" and paper.steps == 1000 and len(paper.curves) == 8
    assert {(c.grid.lo, c.grid.hi) for c in paper.curves.values()} == {(-6, 0)}
    assert dict(paper.problem_options) == {}  # B = 1024, every whole window, width 1200, vocabulary of PTB train
    one = get_preset("ptb-one-layer").scale("paper")
    assert one.steps == 500 and set(one.curves) == {"gd+m", "adam+m"}
    assert {(c.grid.lo, c.grid.hi) for c in one.curves.values()} == {(-6, 1)}
    eight = get_preset("v1-fig13").scale("paper")
    assert eight.steps == 500 and len(eight.curves) == 8
    for name in ("ptb-last-layer", "ptb-one-layer", "ptb-one-layer-optimizers"):
        assert get_preset(name).cost("small")["cpu_minutes"] < 15


def test_small_scales_use_the_papers_dense_windows_and_share_runs():
    """Paper section 5.4's dense windows seed the small grids; the one-layer figures share data and GD+m/Adam+m runs."""
    from heavytail.presets import ptb_last_layer, ptb_one_layer, ptb_one_layer_optimizers

    def windows(preset) -> dict[str, tuple[int, int]]:
        return {name: (c.grid.lo, c.grid.hi) for name, c in preset.scale("small").curves.items()}

    assert windows(ptb_last_layer.PRESET) == {
        "gd": (-2, 0), "gd+m": (-2, 0), "adam": (-4, -2), "adam+m": (-4, -2),
        "sign": (-5, -3), "sign+m": (-5, -3), "normgd": (-3, 0), "normgd+m": (-3, 0),
    }  # fmt: skip
    assert windows(ptb_one_layer_optimizers.PRESET) == {
        "gd": (-2, 0), "gd+m": (-3, -1), "adam": (-5, -3), "adam+m": (-4, -2),
        "sign": (-4, -2), "sign+m": (-5, -3), "normgd": (-1, 1), "normgd+m": (-2, 0),
    }  # fmt: skip
    last, one = ptb_last_layer.PRESET.scale("small"), ptb_one_layer.PRESET.scale("small")
    assert dict(one.problem_options) == {**last.problem_options, "width": 64}  # same 5,600 targets, narrower model
    for scale in ("small", "paper"):
        eight = ptb_one_layer_optimizers.PRESET.scale(scale)
        two = ptb_one_layer.PRESET.scale(scale)
        assert (eight.steps, dict(eight.problem_options)) == (two.steps, dict(two.problem_options))
        assert {name: eight.curves[name] for name in two.curves} == two.curves  # the store shares these runs


@needs_ptb
def test_run_reports_frozen_parameters(tmp_path, capsys):
    argv = ["run", "tinyptb-last-layer", "--optimizer", "sign+m", "--lr", "10^-2", "--steps", "3", "--json",
            "--results", str(tmp_path)] + [f"-p{k}={v}" for k, v in TINY.items()]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 160 and out["num_trainable_parameters"] == 16 * out["c"] + out["c"]
    assert out["num_parameters"] > out["num_trainable_parameters"]
    assert out["final_loss"] < out["initial_loss"]


def test_reproduce_overrides_problem_options(tmp_path):
    """``reproduce -p KEY=VALUE`` (here on the linear problem) changes every run's problem and names the output."""
    from fractions import Fraction

    from heavytail.presets import Curve, Preset, Scale
    from heavytail.store import Store
    from heavytail.sweep.executors import LocalExecutor
    from heavytail.sweep.protocol import GridConfig
    from heavytail.sweep.reproduce import reproduce

    curves = {"gd": Curve("gd", grid=GridConfig(-1, 0, dense_seeds=(), dense_radius=Fraction(1, 2)))}
    preset = Preset(name="tiny", title="tiny", v1_figure="-", neurips_figure="-", scales={"small": Scale({"m": 3}, 5, curves)})
    summary = reproduce(preset, store=Store(tmp_path), executor=LocalExecutor(workers=1), problem_options={"m": 4})
    assert summary["problem_options"] == {"m": 4} and summary["sizes"]["c"] == 15
    assert summary["summary"].endswith("tiny-small-m=4/summary.json")
    with pytest.raises(ConfigError, match="unknown linear problem option 'width'"):
        reproduce(preset, store=Store(tmp_path), executor=LocalExecutor(workers=1), problem_options={"width": 4})


@needs_ptb
@pytest.mark.slow
@pytest.mark.parametrize("name, fits, stalls", [
    ("ptb-last-layer", ("sign", "sign+m", "adam", "adam+m"), ("gd", "gd+m", "normgd", "normgd+m")),
    ("ptb-one-layer", ("adam+m",), ("gd+m",)),
])  # fmt: skip
def test_small_scale_shows_the_effect_under_the_protocol(tmp_path, name, fits, stalls):
    """The issue's check: the rarest group ends <= 0.5x its initial loss for sign/Adam, >= 0.8x for GD/normalized GD."""
    from heavytail.store import Store
    from heavytail.sweep.reproduce import reproduce

    summary = reproduce(get_preset(name), "small", store=Store(tmp_path))
    ratio = {opt: e["group_loss_final"][-1] / e["group_loss_initial"][-1] for opt, e in summary["optimizers"].items()}
    assert all(ratio[opt] <= 0.5 for opt in fits), ratio
    assert all(ratio[opt] >= 0.8 for opt in stalls), ratio
