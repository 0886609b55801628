"""Curvature along an optimizer's path: per-class gradient norms and Hessian block traces.

``softmax_blocks`` has the closed forms for softmax regression (all classes from one pass);
``hutchinson`` estimates block traces of any model's parameter tensors from Hessian-vector products;
``snapshots`` applies them to the parameters a stored run kept (``heavytail run --snapshots``).
"""

from heavytail.curvature.hutchinson import TraceEstimate, block_trace_estimates, model_block_traces
from heavytail.curvature.softmax_blocks import (
    BlockStats,
    block_dominance,
    class_groups,
    correct_class_probability,
    correlations,
    flipped,
    hessian_entries,
    softmax_blocks,
    spearman,
)

__all__ = [
    "BlockStats",
    "TraceEstimate",
    "block_dominance",
    "block_trace_estimates",
    "class_groups",
    "correct_class_probability",
    "correlations",
    "flipped",
    "hessian_entries",
    "model_block_traces",
    "softmax_blocks",
    "spearman",
]
