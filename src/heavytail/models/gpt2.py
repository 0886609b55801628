"""The paper's GPT-2-small-shaped decoder (section 3, GPT2 row; v1 Fig 1), batch-first token ids to logits.

tokens → embedding·√d + sinusoidal positions (dropout) → ``layers`` pre-LN blocks
(LN → causal multi-head attention → dropout; LN → Linear d→4d → GELU(tanh) → Linear 4d→d → dropout)
→ final LN → untied head d→V with bias. 12 layers, width 768, 12 heads: ≈163 M parameters with the
paper's 50,608 tokens. Attention runs through ``F.scaled_dot_product_attention(is_causal=True)`` (flash
or memory-efficient kernels on GPUs).

Initialisation as the authors coded it ("scaled by depth", decisions D10): base σ = √2·0.02; embedding,
head and feed-forward-in weights N(0, σ), feed-forward-out weights N(0, σ/√(2·layers)), their biases 0,
LayerNorm weight 1 and bias 0. The attention projections keep ``nn.MultiheadAttention``'s defaults
(Xavier-uniform input projection with zero bias, ``nn.Linear``'s output projection with zero bias): the
code lists the output projection for depth scaling but never applies it.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from heavytail.models.transformer import SinusoidalPositions

BASE_STD = math.sqrt(2) * 0.02  # the authors' "scaled by depth" initialiser's base standard deviation


@dataclass(frozen=True)
class GPT2Config:
    """Sizes of the decoder; the defaults are the paper's GPT-2 small (with its 50,608 BPE tokens)."""

    vocab_size: int = 50_608
    seq_len: int = 1024  # longest sequence (size of the position table)
    layers: int = 12
    width: int = 768
    heads: int = 12
    dropout: float = 0.1  # embedding, attention and residual dropout

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by {self.heads} heads")

    def num_parameters(self) -> int:
        """Parameters of :class:`GPT2`, counted from the construction (no model is built)."""
        d, v = self.width, self.vocab_size
        block = (3 * d * d + 3 * d) + (d * d + d) + 2 * 2 * d + (4 * d * d + 4 * d) + (4 * d * d + d)
        return v * d + self.layers * block + 2 * d + (d * v + v)

    def non_embedding_parameters(self) -> int:
        """Parameters that cost multiply-adds per token: every one but the embedding table."""
        return self.num_parameters() - self.vocab_size * self.width

    def train_flops_per_token(self) -> float:
        """Forward + backward FLOPs per token: 6·N (N without the embedding lookup) plus attention, 12·layers·T·d.

        The usual convention (Kaplan et al. 2020; PaLM's MFU): attention scores and values over the
        full T×T square, not only its causal half.
        """
        return 6.0 * self.non_embedding_parameters() + 12.0 * self.layers * self.seq_len * self.width


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with ``nn.MultiheadAttention``'s parameters and initialisation."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.in_proj = nn.Linear(width, 3 * width)
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj.weight)  # as nn.MultiheadAttention._reset_parameters
        nn.init.zeros_(self.in_proj.bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.in_proj(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-LN block: x + drop(attn(LN(x))), then x + drop(MLP(LN(x))) with a GELU(tanh) MLP of width 4d."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads, dropout)
        self.ff_in, self.ff_out = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop(self.attention(self.norm1(x)))
        return x + self.drop(self.ff_out(F.gelu(self.ff_in(self.norm2(x)), approximate="tanh")))


class GPT2(nn.Module):
    """The decoder of the module docstring; ``forward`` maps (batch, length) token ids to (batch, length, V) logits."""

    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.config = config
        d = config.width
        self.embedding = nn.Embedding(config.vocab_size, d)
        self.scale = math.sqrt(d)
        self.positions = SinusoidalPositions(d, config.seq_len, config.dropout)
        self.blocks = nn.ModuleList(Block(d, config.heads, config.dropout) for _ in range(config.layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.vocab_size)
        self._initialise()

    def _initialise(self) -> None:
        """The "scaled by depth" initialiser as coded (module docstring; D10)."""
        depth_std = BASE_STD / math.sqrt(2 * self.config.layers)
        for linear, std in [(self.head, BASE_STD)] + [
            pair for block in self.blocks for pair in ((block.ff_in, BASE_STD), (block.ff_out, depth_std))
        ]:
            nn.init.normal_(linear.weight, std=std)
            nn.init.zeros_(linear.bias)
        nn.init.normal_(self.embedding.weight, std=BASE_STD)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.positions(self.embedding(tokens) * self.scale)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def gpt2(config: GPT2Config, device: torch.device | str | None = None) -> GPT2:
    """Build the decoder (on ``device``, e.g. ``"meta"`` to count parameters without memory)."""
    with torch.device(device) if device is not None else nullcontext():
        return GPT2(config)
