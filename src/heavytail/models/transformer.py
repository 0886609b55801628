"""The paper's small language models (section 3), batch-first ``(batch, length)`` token ids to logits.

- :class:`AttentionOnlyLM`: scaled embedding + sinusoidal positions → one causal single-head
  attention with a residual → linear head; no LayerNorm, MLP or dropout (v1 Fig 4, trained last layer).
- :class:`EncoderLM`: scaled embedding + sinusoidal positions → ``layers`` post-LN
  ``nn.TransformerEncoderLayer`` blocks (ReLU MLP, dropout) under a causal mask → untied head
  (one layer on TinyPTB, v1 Fig 10; two layers on PTB, v1 Fig 9).

Both split into :meth:`features` (everything before the head) and ``head``, so a problem that trains
only the head can compute the features once.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

INIT_STD = 0.02  # the authors' "default" initialiser: N(0, 0.02) embeddings, feed-forward and head weights


class SinusoidalPositions(nn.Module):
    """Adds the fixed sine/cosine position encoding of "Attention is all you need", then dropout."""

    def __init__(self, width: int, max_len: int = 5000, dropout: float = 0.0) -> None:
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
        table = torch.zeros(max_len, width)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency[: width // 2])
        self.register_buffer("table", table, persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` is (batch, length, width)."""
        if x.shape[1] > len(self.table):
            raise ValueError(f"sequence length {x.shape[1]} exceeds the position table's {len(self.table)}")
        return self.dropout(x + self.table[: x.shape[1]])


class _TokenInput(nn.Module):
    """Token embedding scaled by sqrt(width), plus sinusoidal positions."""

    def __init__(self, vocab_size: int, width: int, dropout: float, max_len: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, width)
        self.positions = SinusoidalPositions(width, max_len, dropout)
        self.scale = math.sqrt(width)
        nn.init.normal_(self.embedding.weight, std=INIT_STD)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.positions(self.embedding(tokens) * self.scale)


def _head(width: int, vocab_size: int) -> nn.Linear:
    head = nn.Linear(width, vocab_size)
    nn.init.normal_(head.weight, std=INIT_STD)
    nn.init.zeros_(head.bias)
    return head


def causal_mask(length: int, device: torch.device | None = None) -> Tensor:
    """(length, length) additive mask: position i attends to positions <= i."""
    return nn.Transformer.generate_square_subsequent_mask(length, device=device)


class AttentionOnlyLM(nn.Module):
    """tokens → embedding·√d + positions → x + CausalSelfAttention(x) (one head) → linear head (paper E5)."""

    def __init__(self, vocab_size: int, width: int = 1200, *, max_len: int = 5000) -> None:
        super().__init__()
        self.input = _TokenInput(vocab_size, width, 0.0, max_len)
        self.attention = nn.MultiheadAttention(width, num_heads=1, batch_first=True)
        self.head = _head(width, vocab_size)

    def features(self, tokens: Tensor) -> Tensor:
        """(batch, length, width) inputs of the head."""
        x = self.input(tokens)
        mask = causal_mask(tokens.shape[1], tokens.device)
        return x + self.attention(x, x, x, attn_mask=mask, need_weights=False, is_causal=True)[0]

    def forward(self, tokens: Tensor) -> Tensor:
        return self.head(self.features(tokens))


class EncoderLM(nn.Module):
    """tokens → embedding·√d + positions (dropout) → post-LN encoder blocks with a causal mask → untied head.

    The authors' "default" initialiser: feed-forward weights N(0, 0.02) and biases 0, LayerNorm weights
    N(1, 0.02) and biases 0, embedding and head N(0, 0.02) (head bias 0); attention keeps PyTorch's
    defaults. Width 1200, 1 head, FF 1200, 1 layer: ≈32.5 M parameters with V = 9,920 (TinyPTB);
    width 1000, 4 heads, FF 1000, 2 layers: ≈31.9 M (PTB).
    """

    def __init__(
        self,
        vocab_size: int,
        width: int = 1200,
        *,
        heads: int = 1,
        ff_width: int | None = None,
        layers: int = 1,
        dropout: float = 0.2,
        max_len: int = 5000,
    ) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by {heads} heads")
        self.input = _TokenInput(vocab_size, width, dropout, max_len)
        block = nn.TransformerEncoderLayer(width, heads, ff_width or width, dropout, batch_first=True)  # post-LN, ReLU
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = _head(width, vocab_size)
        for layer in self.encoder.layers:
            for linear in (layer.linear1, layer.linear2):
                nn.init.normal_(linear.weight, std=INIT_STD)
                nn.init.zeros_(linear.bias)
            for norm in (layer.norm1, layer.norm2):
                nn.init.normal_(norm.weight, mean=1.0, std=INIT_STD)
                nn.init.zeros_(norm.bias)

    def features(self, tokens: Tensor) -> Tensor:
        """(batch, length, width) inputs of the head."""
        mask = causal_mask(tokens.shape[1], tokens.device)
        return self.encoder(self.input(tokens), mask=mask, is_causal=True)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.head(self.features(tokens))


def freeze_all_but_head(model: AttentionOnlyLM | EncoderLM) -> None:
    """Freeze everything before the head (``requires_grad=False``): only the head trains (paper E5)."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith("head."))


class HeadOnFeatures(nn.Module):
    """A language model whose frozen :meth:`features` were computed once: ``forward(features) = head(features)``.

    Holds the whole model, so its parameters, state dict and snapshots are the full model's (the
    frozen part included) while a step costs one linear layer.
    """

    def __init__(self, model: AttentionOnlyLM | EncoderLM) -> None:
        super().__init__()
        self.model = model

    @torch.no_grad()
    def features(self, tokens: Tensor, chunk: int = 256) -> Tensor:
        """(batch, length, width) features of ``tokens``, computed ``chunk`` sequences at a time in eval mode."""
        was_training = self.model.training
        self.model.eval()
        try:
            return torch.cat([self.model.features(tokens[i : i + chunk]) for i in range(0, len(tokens), chunk)])
        finally:
            self.model.train(was_training)

    def forward(self, features: Tensor) -> Tensor:
        return self.model.head(features)
