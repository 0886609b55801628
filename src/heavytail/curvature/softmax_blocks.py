"""Per-class gradient norms and Hessian block traces of softmax regression, in closed form (paper §3.1, App. F).

For logits W x + b and the mean cross-entropy L over n samples, row k of W has

    gradient       ∇_{w_k} L = (1/n) Σ_i (p_ik − 1[y_i = k]) x_i
    Hessian block  ∇²_{w_k} L = (1/n) Σ_i p_ik (1 − p_ik) x_i x_iᵀ,  so  Tr = (1/n) Σ_i p_ik (1 − p_ik) ||x_i||²
    cross block    ∇_{w_k} ∇_{w_k'} L = −(1/n) Σ_i p_ik p_ik' x_i x_iᵀ

All c gradient norms and block traces come from one pass: a forward GEMM, the weight-gradient GEMM
and O(n c) work, i.e. the cost of one full-batch gradient. The authors' script sums p(1−p)·x instead
of p(1−p)·x² (decisions D3); ``trace="paper-code"`` reproduces that only for pixel-matching its plots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from heavytail.options import ConfigError
from heavytail.train.metrics import FrequencyGroups

TraceVariant = Literal["correct", "paper-code"]
GroupKind = Literal["natural", "equal-mass"]


@dataclass(frozen=True)
class BlockStats:
    """Per-class (row) quantities of the mean cross-entropy at one parameter value, class-index order."""

    grad_norm: np.ndarray  # (c,) ||∇_{w_k} L||, weights only
    hessian_trace: np.ndarray  # (c,) Tr ∇²_{w_k} L (or the paper code's variant)
    bias_grad: np.ndarray | None  # (c,) ∂L/∂b_k, None without a bias
    bias_hessian: np.ndarray | None  # (c,) ∂²L/∂b_k²
    loss: float


def softmax_blocks(
    x: Tensor,
    y: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    trace: TraceVariant = "correct",
    chunk_size: int = 8192,
) -> BlockStats:
    """Gradient norms and Hessian block traces of every weight row, from one chunked pass over the data."""
    if trace not in ("correct", "paper-code"):
        raise ConfigError(f"unknown trace variant {trace!r}; choose one of: correct, paper-code")
    n, c = len(y), weight.shape[0]
    weight, bias = weight.detach(), None if bias is None else bias.detach()
    grad_w = torch.zeros_like(weight)
    grad_b = torch.zeros(c, dtype=weight.dtype, device=weight.device)
    traces = torch.zeros_like(grad_b)
    bias_curv = torch.zeros_like(grad_b)
    loss = torch.zeros((), dtype=torch.float64, device=weight.device)
    for lo in range(0, n, chunk_size):
        xc, yc = x[lo : lo + chunk_size], y[lo : lo + chunk_size]
        logits = xc @ weight.T if bias is None else torch.addmm(bias, xc, weight.T)
        loss += F.cross_entropy(logits, yc, reduction="sum").double()
        probs = logits.softmax(dim=1)
        curvature = probs * (1 - probs)  # p_ik (1 − p_ik)
        residual = probs  # in place: probs is not used after this
        residual[torch.arange(len(yc), device=yc.device), yc] -= 1  # p_ik − 1[y_i = k]
        grad_w.addmm_(residual.T, xc)
        grad_b += residual.sum(0)
        feature = (xc * xc).sum(1) if trace == "correct" else xc.sum(1)
        traces += curvature.T @ feature
        bias_curv += curvature.sum(0)

    def as_numpy(total: Tensor) -> np.ndarray:
        return (total / n).double().cpu().numpy()

    return BlockStats(
        grad_norm=grad_w.norm(dim=1).double().cpu().numpy() / n,
        hessian_trace=as_numpy(traces),
        bias_grad=None if bias is None else as_numpy(grad_b),
        bias_hessian=None if bias is None else as_numpy(bias_curv),
        loss=float(loss) / n,
    )


def linear_parameters(state: Mapping[str, Tensor]) -> tuple[Tensor, Tensor | None]:
    """``(weight, bias)`` of an ``nn.Linear`` state dict; a one-line error for any other model."""
    if "weight" not in state or state["weight"].dim() != 2 or set(state) - {"weight", "bias"}:
        raise ConfigError(
            f"closed-form blocks need a linear model (nn.Linear state with weight, bias); got parameters "
            f"{', '.join(sorted(state))} (use heavytail.curvature.hutchinson for other models)"
        )
    return state["weight"], state.get("bias")


def flipped(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The parameters negated (−W, −b): the paper's check that the gradient–curvature relation is path-specific (E10)."""
    return {name: -tensor for name, tensor in state.items()}


def probabilities(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Softmax probabilities (n, c) of a linear model."""
    logits = x @ weight.T if bias is None else torch.addmm(bias, x, weight.T)
    return logits.softmax(dim=1)


def spearman(a: Any, b: Any) -> float:
    """Spearman rank correlation (ties get their average rank); NaN when either side is constant."""
    ra, rb = _ranks(np.asarray(a, dtype=np.float64)), _ranks(np.asarray(b, dtype=np.float64))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=np.float64)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def correlations(stats: BlockStats, class_counts: Any) -> dict[str, float]:
    """Rank correlations across classes: gradient norm vs trace, and each vs the class count."""
    return {
        "grad_trace": spearman(stats.grad_norm, stats.hessian_trace),
        "grad_count": spearman(stats.grad_norm, class_counts),
        "trace_count": spearman(stats.hessian_trace, class_counts),
    }


def class_groups(class_counts: Any, kind: GroupKind = "natural", num_groups: int = 10) -> np.ndarray:
    """Group index of every class: ``natural`` power-of-two bins of the count (the construction's m groups
    on Random Heavy-Tailed Labels), or ``equal-mass`` groups of the per-group plots (decisions D16)."""
    counts = np.asarray(class_counts, dtype=np.int64)
    if kind == "natural":
        present = counts > 0
        group = np.full(len(counts), -1, dtype=np.int64)
        group[present] = np.floor(np.log2(counts.max() / counts[present]) + 1e-9).astype(np.int64)
        return group
    if kind == "equal-mass":
        return FrequencyGroups.from_counts(counts, num_groups).assignment()
    raise ConfigError(f"unknown grouping {kind!r}; choose one of: natural, equal-mass")


def correct_class_probability(probs: Tensor, y: Tensor, groups: np.ndarray) -> dict[str, list[float]]:
    """Per group of classes: 5 %, 50 % and 95 % quantiles of the probability given to the correct class (E12)."""
    correct = probs.gather(1, y[:, None]).squeeze(1).double().cpu().numpy()
    sample_group = groups[y.cpu().numpy()]
    out: dict[str, list[float]] = {"q05": [], "median": [], "q95": []}
    for g in range(groups.max() + 1):
        values = correct[sample_group == g]
        q = np.quantile(values, [0.05, 0.5, 0.95]) if len(values) else [np.nan] * 3
        for key, value in zip(out, q):
            out[key].append(float(value))
    return out


def hessian_entries(x: Tensor, probs: Tensor, classes: Any, coords: Any) -> np.ndarray:
    """Entries H[(k,a),(k',b)] = (1/n) Σ_i w_i^{kk'} x_ia x_ib of the weight Hessian on chosen classes × coordinates,
    w^{kk} = p_k (1 − p_k), w^{kk'} = −p_k p_k' (E11). Rows ordered class-major, then coordinate."""
    classes, coords = torch.as_tensor(classes), torch.as_tensor(coords)
    p = probs[:, classes].double()  # (n, K)
    xs = x[:, coords].double()  # (n, J)
    weights = -p[:, :, None] * p[:, None, :] + torch.diag_embed(p)  # (n, K, K): diag p(1−p), off-diag −p p'
    entries = torch.einsum("ikl,ia,ib->kalb", weights, xs, xs) / len(x)
    k, j = len(classes), len(coords)
    return entries.reshape(k * j, k * j).cpu().numpy()


def block_dominance(entries: np.ndarray, num_classes: int) -> dict[str, float]:
    """Mean |entry| of same-class (diagonal) blocks and of cross-class blocks of :func:`hessian_entries`' matrix."""
    size = entries.shape[0] // num_classes
    same = np.kron(np.eye(num_classes, dtype=bool), np.ones((size, size), dtype=bool))
    diagonal, off = np.abs(entries[same]).mean(), np.abs(entries[~same]).mean()
    return {"diagonal_mean_abs": float(diagonal), "off_diagonal_mean_abs": float(off), "ratio": float(diagonal / off)}
