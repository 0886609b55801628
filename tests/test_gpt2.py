"""GPT-2 decoder, token windows read by index, gradient accumulation, the gpt2-wikitext problem."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from heavytail import make_optimizer
from heavytail.data.text import NextTokenWindows, TokenWindows
from heavytail.models.gpt2 import BASE_STD, GPT2Config, gpt2
from heavytail.problems.base import Problem
from heavytail.train import train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data(monkeypatch):
    if not (SHARED / "wikitext-2" / "valid.txt").is_file():
        pytest.skip("../shared/data/wikitext-2 not present")
    monkeypatch.setenv("HEAVYTAIL_DATA", str(SHARED))


TINY = GPT2Config(vocab_size=50, seq_len=16, layers=2, width=32, heads=4, dropout=0.0)


def zipf_tokens(n: int, vocab: int, seed: int = 0) -> torch.Tensor:
    """A token stream with pi_k proportional to 1/k (heavy-tailed, like text)."""
    generator = torch.Generator().manual_seed(seed)
    weights = 1.0 / torch.arange(1, vocab + 1, dtype=torch.float64)
    return torch.multinomial(weights, n, replacement=True, generator=generator)


def tiny_text_problem(config: GPT2Config = TINY, tokens: int = 2000, seed: int = 0, validation: bool = False, log_every=None) -> Problem:
    torch.manual_seed(seed)
    stream = zipf_tokens(tokens, config.vocab_size, seed)
    return Problem(
        model=gpt2(config),
        x=None,
        y=None,
        samples=TokenWindows(stream, config.seq_len),
        validation=TokenWindows(zipf_tokens(400, config.vocab_size, seed + 1), config.seq_len) if validation else None,
        num_classes=config.vocab_size,
        log_every=log_every,
    )


def test_parameter_count_of_the_paper_model_is_163m_on_the_meta_device():
    config = GPT2Config()  # 12 layers, width 768, 12 heads, 50,608 tokens
    model = gpt2(config, device="meta")
    counted = sum(p.numel() for p in model.parameters())
    assert counted == config.num_parameters() == 162_840_496  # ≈163 M, paper section 3
    blocks = sum(p.numel() for p in model.blocks.parameters())
    assert blocks == 12 * 7_087_872  # ≈85 M in the blocks, 2 × 38.9 M embedding and head
    assert model.embedding.weight.numel() == model.head.weight.numel() == 50_608 * 768


def test_small_config_counts_its_parameters():
    config = GPT2Config(vocab_size=300, seq_len=20, layers=3, width=48, heads=6)
    assert sum(p.numel() for p in gpt2(config).parameters()) == config.num_parameters()


def test_attention_is_causal():
    model = gpt2(TINY).eval()
    tokens = torch.randint(0, TINY.vocab_size, (2, TINY.seq_len))
    changed = tokens.clone()
    changed[:, 9] = (changed[:, 9] + 1) % TINY.vocab_size
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :9], b[:, :9], rtol=0, atol=0)  # earlier positions cannot see position 9
    assert not torch.allclose(a[:, 9:], b[:, 9:])


def test_scaled_by_depth_initialisation():
    config = GPT2Config(vocab_size=500, seq_len=8, layers=6, width=96, heads=4)
    model = gpt2(config)
    ff_in = torch.cat([b.ff_in.weight.flatten() for b in model.blocks])
    ff_out = torch.cat([b.ff_out.weight.flatten() for b in model.blocks])
    assert ff_in.std().item() == pytest.approx(BASE_STD, rel=0.03)
    assert ff_out.std().item() == pytest.approx(BASE_STD / math.sqrt(2 * 6), rel=0.03)
    assert model.embedding.weight.std().item() == pytest.approx(BASE_STD, rel=0.03)
    assert model.head.weight.std().item() == pytest.approx(BASE_STD, rel=0.03)
    assert all(b.ff_in.bias.abs().max() == 0 and b.attention.in_proj.bias.abs().max() == 0 for b in model.blocks)
    assert torch.equal(model.norm.weight, torch.ones(96))
    # attention projections keep nn.MultiheadAttention's Xavier-uniform bound sqrt(6 / (d + 3d)) (D10)
    bound = math.sqrt(6 / (96 + 3 * 96))
    assert model.blocks[0].attention.in_proj.weight.abs().max().item() <= bound


def test_flops_per_token_follow_the_6n_plus_attention_convention():
    config = GPT2Config()
    n = config.num_parameters() - 50_608 * 768
    assert config.train_flops_per_token() == 6 * n + 12 * 12 * 1024 * 768
    assert 0.8e9 < config.train_flops_per_token() < 0.9e9  # paper.md §8.2: ≈0.8 GFLOP a token


def test_token_windows_are_the_paper_windows_read_by_index():
    stream = torch.arange(1000) % 97
    windows = TokenWindows(stream, 24)
    reference = NextTokenWindows(stream, 24, 1, drop_last=True)
    assert len(windows) == len(reference) == 999 // 24
    index = torch.tensor([0, 5, len(windows) - 1, 5])
    x, y = windows.fetch(index)
    for row, i in enumerate(index.tolist()):
        rx, ry = reference[i]
        assert torch.equal(x[row], rx[0]) and torch.equal(y[row], ry[0])
    assert x.dtype == torch.int64 and windows.tokens.dtype == torch.int32
    assert torch.equal(windows.fetch(slice(3, 6))[0], windows.fetch(torch.arange(3, 6))[0])
    assert torch.equal(windows.class_counts(97), reference.class_counts(97))


def test_gradient_accumulation_over_micro_batches_equals_one_batch():
    def one_step(chunk):
        problem = tiny_text_problem()
        optimizer = make_optimizer("gd", problem.model.parameters(), 0.1)
        result = train(problem, optimizer, 1, batch_size=24, chunk_size=chunk, seed=3)
        return problem.model, result.history

    whole_model, whole = one_step(24)
    for chunk in (8, 5, 1):
        model, history = one_step(chunk)
        for p, q in zip(whole_model.parameters(), model.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(history.class_loss, whole.class_loss, rtol=1e-5)


def test_mini_batch_rows_every_log_every_steps_and_validation_rows():
    problem = tiny_text_problem(validation=True, log_every=4)
    result = train(problem, make_optimizer("adam+m", problem.model.parameters(), 1e-2), 10, batch_size=8, seed=0)
    assert result.history.step.tolist() == [0, 4, 8, 10, 10]  # exact start, every 4 steps, the rest, exact end
    assert result.history.exact.tolist() == [True, False, False, False, True]
    assert result.validation.step.tolist() == [0, 4, 8, 10]
    assert result.validation.exact.all()
    counts = problem.validation.class_counts(TINY.vocab_size).numpy()
    np.testing.assert_array_equal(result.validation.class_counts, counts)  # groups from the validation counts
    assert result.validation.loss[-1] < result.validation.loss[0]


def test_gpt2_wikitext_problem_on_the_local_files(shared_data):
    from heavytail.problems.gpt2 import GPT2WikiTextProblem

    options = GPT2WikiTextProblem(
        corpus="tinywikitext-2", vocab_size=2000, seq_len=32, layers=1, width=32, heads=2, dropout=0.0, train_tokens=4096, valid_tokens=1024
    )
    problem = options.build(0)
    assert problem.num_samples == 4095 // 32
    assert problem.info["c"] == problem.num_classes == problem.model.head.out_features
    assert problem.class_counts().sum() == problem.num_samples * 32
    assert len(problem.validation) == 1023 // 32
    assert options.flops_per_sample() == 32 * options.config().train_flops_per_token()


def test_preset_scales():
    from heavytail.presets import get_preset

    preset = get_preset("v1-fig1")
    paper = preset.scale("paper")
    assert (paper.steps, paper.batch_size, paper.checkpoint_every) == (15_000, 512, 500)  # D9, D34
    assert {name: float(c.fixed) for name, c in paper.curves.items()} == {"gd+m": -2.0, "adam+m": -4.5}
    assert preset.scale("paper-sweep").steps == 5_000
    cost = preset.cost("paper")  # two runs of 15,000 steps x 512 windows x 1,024 tokens x 0.857 GFLOP
    assert cost["runs"] == 2 and cost["tflop"] == pytest.approx(2 * 15_000 * 512 * 1024 * GPT2Config().train_flops_per_token() / 1e12, rel=0.01)
    small = preset.scale("small")
    assert small.batch_size == 16 and small.checkpoint_every is None and all(c.grid is not None for c in small.curves.values())
