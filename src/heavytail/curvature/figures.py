"""Figures of curvature along a path: per-class gradients and traces (E7/E8), their correlation at W and −W
(E9/E10), Hessian block structure (E11) and the correct-class probability per group (E12).

Classes are coloured by natural power-of-two group (decisions D16), dark = most frequent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np

from heavytail.curvature.softmax_blocks import class_groups
from heavytail.plots import save_figure


def _colours(counts: np.ndarray) -> np.ndarray:
    groups = class_groups(counts, "natural")
    return plt.get_cmap("viridis")(groups / max(1, groups.max()))


def figure_per_class(steps: dict[str, Any], *, title: str):
    """3 rows × checkpoints: gradient norm vs class, block trace vs class, trace vs gradient norm (log-log)."""
    keys = list(steps)
    fig, axes = plt.subplots(3, len(keys), figsize=(1.9 * len(keys) + 1, 5.8), squeeze=False, layout="constrained")
    first = steps[keys[0]]
    counts = np.asarray(first["class_counts"])
    colours, index = _colours(counts), np.arange(1, len(counts) + 1)
    grads = np.array([steps[k]["grad_norm"] for k in keys])
    traces = np.array([steps[k]["hessian_trace"] for k in keys])
    glim = (grads[grads > 0].min() / 2, grads.max() * 2)
    hlim = (traces[traces > 0].min() / 2, traces.max() * 2)
    for col, key in enumerate(keys):
        g, h = grads[col], traces[col]
        axes[0, col].scatter(index, g, s=3, c=colours)
        axes[0, col].set(xscale="log", yscale="log", ylim=glim, title=f"t = {key}")
        axes[1, col].scatter(index, h, s=3, c=colours)
        axes[1, col].set(xscale="log", yscale="log", ylim=hlim, xlabel="class index")
        axes[2, col].scatter(g, h, s=3, c=colours)
        axes[2, col].set(xscale="log", yscale="log", xlim=glim, ylim=hlim, xlabel="gradient norm")
        r = steps[key]["spearman"]["grad_trace"]
        axes[2, col].set_title(f"ρ = {r:.2f}", fontsize=8)
        for row in range(3):
            axes[row, col].tick_params(labelsize=6)
            if col:
                axes[row, col].tick_params(labelleft=False)
    axes[0, 0].set_ylabel("‖∇_{w_k} L‖")
    axes[1, 0].set_ylabel("Tr ∇²_{w_k} L")
    axes[2, 0].set_ylabel("Tr ∇²_{w_k} L")
    fig.suptitle(title, fontsize=9)
    return fig


def figure_correlation(steps: dict[str, Any], shown: Sequence[int], *, title: str):
    """Trace vs gradient norm over all classes at W_t (top) and at −W_t (bottom), slope-1 guide (E9, E10)."""
    keys = [str(t) for t in shown if str(t) in steps]
    fig, axes = plt.subplots(2, len(keys), figsize=(2.1 * len(keys) + 0.5, 4.4), squeeze=False, layout="constrained")
    colours = _colours(np.asarray(steps[keys[0]]["class_counts"]))
    for row, (source, label) in enumerate(((lambda e: e, "W_t"), (lambda e: e["flipped"], "−W_t"))):
        for col, key in enumerate(keys):
            entry = source(steps[key])
            g, h = np.asarray(entry["grad_norm"]), np.asarray(entry["hessian_trace"])
            ax = axes[row, col]
            ax.scatter(g, h, s=3, c=colours)
            lo, hi = g.min(), g.max()
            anchor = np.median(h / g)
            ax.plot([lo, hi], [anchor * lo, anchor * hi], "k--", lw=0.7)
            ax.set(xscale="log", yscale="log")
            ax.set_title(f"{label}, t = {key}: ρ = {entry['spearman']['grad_trace']:.2f}", fontsize=7)
            ax.tick_params(labelsize=6)
    for row in range(2):
        axes[row, 0].set_ylabel("block trace")
    for col in range(len(keys)):
        axes[1, col].set_xlabel("gradient norm")
    fig.suptitle(title, fontsize=9)
    return fig


def figure_structure(steps: dict[str, Any], matrices: dict[str, np.ndarray], *, title: str):
    """log10 |H| on sampled classes × coordinates (E11), then the correct-class probability per natural group (E12)."""
    keys = list(matrices)
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(2.6 * (len(keys) + 1), 2.9), squeeze=False, layout="constrained")
    for ax, key in zip(axes[0], keys):
        image = ax.imshow(np.log10(np.abs(matrices[key]) + 1e-30), cmap="YlOrBr", vmin=np.log10(np.abs(matrices[key]).max()) - 4)
        ratio = steps[key]["hessian_structure"]["ratio"]
        ax.set_title(f"log10|H|, t = {key}\nsame/cross-class {ratio:.0f}×", fontsize=7)
        ax.set(xticks=[], yticks=[])
        fig.colorbar(image, ax=ax, shrink=0.7).ax.tick_params(labelsize=6)
    ax = axes[0, -1]
    times = np.array([int(k) for k in steps])
    medians = np.array([steps[k]["correct_class_probability"]["median"] for k in steps])
    low = np.array([steps[k]["correct_class_probability"]["q05"] for k in steps])
    high = np.array([steps[k]["correct_class_probability"]["q95"] for k in steps])
    colours = plt.get_cmap("viridis")(np.linspace(0, 1, medians.shape[1]))
    x = np.maximum(times, 0.5)  # t = 0 drawn at 0.5 on the log axis
    for g in range(medians.shape[1]):
        ax.plot(x, medians[:, g], color=colours[g], lw=1)
        ax.fill_between(x, low[:, g], high[:, g], color=colours[g], alpha=0.12)
    ax.axhline(0.5, color="k", ls=":", lw=0.7)
    ax.set(xscale="log", yscale="log", xlabel="step (0 at 0.5)", title="p(correct class), natural groups")
    ax.title.set_fontsize(7)
    fig.suptitle(title, fontsize=9)
    return fig


def draw_path_figures(
    steps: dict[str, Any], matrices: dict[str, np.ndarray], out: Path, *, title: str, correlation_steps: Sequence[int]
) -> list[Path]:
    """All three figures of a path, PNG and PDF, under ``out``."""
    paths = save_figure(figure_per_class(steps, title=title), out / "per-class")
    paths += save_figure(figure_correlation(steps, correlation_steps, title=title), out / "correlation")
    if matrices:
        paths += save_figure(figure_structure(steps, matrices, title=title), out / "structure")
    return paths
