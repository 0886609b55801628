"""Hessian block traces of any model by Hutchinson's estimator, with Hessian-vector products from ``torch.func``.

For a parameter tensor P and a Rademacher probe v (entries ±1, independent across P's entries),
E[v ∘ (H v)] is the diagonal of P's Hessian block, so summing v ∘ (H v) over one slice P[k] estimates
the trace of that slice's diagonal block (the cross terms v_kᵀ H_kk' v_k' have mean zero). Slices
along dimension 0 of a weight matrix are its rows: for a softmax head, the per-class blocks of
:mod:`heavytail.curvature.softmax_blocks`, which serve as the check of this estimator.

Each probe costs one forward-over-reverse HVP (about two gradient evaluations). curvlinops
(`HessianLinearOperator`, `HutchinsonDiagonalEstimator`) would serve for the HVPs and diagonal
estimates as SciPy linear operators; it is not used here, because per-slice traces need only
v ∘ Hv and ``torch.func`` gives that without a dependency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp

from heavytail.options import ConfigError


@dataclass(frozen=True)
class TraceEstimate:
    """Per-slice trace estimates of one parameter tensor's diagonal Hessian blocks, with standard errors."""

    mean: np.ndarray  # (slices,) average over probes
    standard_error: np.ndarray  # (slices,) sample std over probes / sqrt(probes)
    probes: int


def block_trace_estimates(
    loss_of: Callable[[dict[str, Tensor]], Tensor],
    params: Mapping[str, Tensor],
    names: list[str],
    *,
    probes: int = 100,
    seed: int = 0,
    batch: int = 32,
) -> dict[str, TraceEstimate]:
    """Hutchinson estimates of Tr ∇²_{P[k]} L for each slice k (dimension 0) of each tensor named in ``names``.

    ``loss_of(params)`` maps a dict of tensors (all of ``params``) to the scalar loss; probes touch only
    the named tensors, the others are held fixed. ``batch`` probes are evaluated at once with ``vmap``.
    """
    fixed = {k: v.detach() for k, v in params.items() if k not in names}
    chosen = {k: params[k].detach() for k in names}

    def loss_of_chosen(p: dict[str, Tensor]) -> Tensor:
        return loss_of({**fixed, **p})

    gradient = grad(loss_of_chosen)

    def probe_products(v: dict[str, Tensor]) -> dict[str, Tensor]:
        _, hv = jvp(gradient, (chosen,), (v,))
        return {k: (v[k] * hv[k]).reshape(v[k].shape[0], -1).sum(1) for k in names}

    batched = torch.func.vmap(probe_products)
    generator = torch.Generator().manual_seed(seed)
    samples: dict[str, list[Tensor]] = {k: [] for k in names}
    done = 0
    while done < probes:
        size = min(batch, probes - done)
        v = {
            k: (torch.randint(0, 2, (size, *t.shape), generator=generator) * 2 - 1).to(t.dtype).to(t.device)
            for k, t in chosen.items()
        }
        for k, values in batched(v).items():
            samples[k].append(values.detach())
        done += size
    out = {}
    for k in names:
        values = torch.cat(samples[k]).double().cpu().numpy()  # (probes, slices)
        spread = values.std(axis=0, ddof=1) if probes > 1 else np.full(values.shape[1], np.nan)
        out[k] = TraceEstimate(values.mean(axis=0), spread / np.sqrt(probes), probes)
    return out


def model_block_traces(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    names: list[str],
    *,
    probes: int = 100,
    seed: int = 0,
) -> dict[str, TraceEstimate]:
    """Block-trace estimates for a classifier's parameter tensors ``names`` under the mean cross-entropy on (x, y)."""
    params = dict(model.named_parameters())
    unknown = sorted(set(names) - set(params))
    if unknown:
        raise ConfigError(f"unknown parameter {unknown[0]!r}; choose among: {', '.join(params)}")

    def loss_of(p: dict[str, Tensor]) -> Tensor:
        logits = functional_call(model, p, (x,))
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    return block_trace_estimates(loss_of, params, names, probes=probes, seed=seed)
