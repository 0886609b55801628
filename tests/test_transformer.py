"""The paper's small language models: parameter counts at the paper's widths and causal masking."""

import pytest
import torch

from heavytail.models.transformer import AttentionOnlyLM, EncoderLM, SinusoidalPositions

PAPER_VOCAB = 9920  # |V| of the paper's PTB vocabulary


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_at_paper_width():
    """Paper section 3: 11.9 M head + 11.9 M embedding + 5.76 M attention; one layer ≈32.5 M; two layers ≈31.9 M."""
    attention_only = AttentionOnlyLM(PAPER_VOCAB, 1200)
    assert _count(attention_only.head) == 1200 * PAPER_VOCAB + PAPER_VOCAB
    assert _count(attention_only.attention) == 4 * 1200 * 1200 + 4 * 1200
    assert _count(attention_only) == pytest.approx(29.58e6, rel=1e-3)
    assert _count(EncoderLM(PAPER_VOCAB, 1200)) == pytest.approx(32.5e6, rel=2e-3)
    assert _count(EncoderLM(PAPER_VOCAB, 1000, heads=4, layers=2)) == pytest.approx(31.9e6, rel=2e-3)


@pytest.mark.parametrize("model", [AttentionOnlyLM(40, 16), EncoderLM(40, 16, heads=4, layers=2, dropout=0.0)], ids=["attention-only", "encoder"])
def test_a_later_token_never_changes_earlier_logits(model):
    torch.manual_seed(0)
    model.eval()
    tokens = torch.randint(0, 40, (3, 12))
    changed = tokens.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 40
    before, after = model(tokens), model(changed)
    assert torch.equal(before[:, :7], after[:, :7])
    assert not torch.allclose(before[:, 7:], after[:, 7:])


def test_default_initialiser():
    model = EncoderLM(30, 64, heads=2, layers=1)
    layer = model.encoder.layers[0]
    assert torch.all(layer.linear1.bias == 0) and torch.all(model.head.bias == 0)
    assert abs(layer.linear1.weight.std().item() - 0.02) < 0.003
    assert abs(layer.norm1.weight.mean().item() - 1.0) < 0.01 and layer.norm1.weight.std().item() > 0.01


def test_positions_reject_sequences_longer_than_the_table():
    with pytest.raises(ValueError, match="exceeds"):
        SinusoidalPositions(8, max_len=4)(torch.zeros(1, 5, 8))
