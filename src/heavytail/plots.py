"""Paper-style figures: class frequencies, overall loss, and one panel of group curves per optimizer.

Group curves are coloured with viridis from the most frequent group (dark) to the least frequent
one (yellow), as in the paper's per-class figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from heavytail.spec import TrackedSpec  # noqa: E402
from heavytail.store import RunRecord  # noqa: E402
from heavytail.train.history import History  # noqa: E402


def run_label(record: RunRecord) -> str:
    """Legend/panel title of a run: optimizer, its options, and the step size (a tracked run: name and metadata)."""
    spec = record.spec
    if isinstance(spec, TrackedSpec):
        return spec.label() + (" (unfinished)" if record.status in ("running", "failed") else "")
    options = "".join(f" {k}={v}" for k, v in sorted(spec.optimizer_options.items()))
    exponent = np.log10(spec.lr)
    lr = f"10^{exponent:.3g}" if abs(exponent - round(exponent * 4) / 4) < 1e-9 else f"{spec.lr:.3g}"
    batch = "" if spec.batch_size is None else f", B={spec.batch_size}"
    suffix = " (diverged)" if record.status == "diverged" else ""
    return f"{spec.optimizer}{options}, lr={lr}{batch}{suffix}"


def _truncated(history: History, max_step: int | None) -> History:
    """The rows of ``history`` up to ``max_step`` (all of them when None)."""
    if max_step is None:
        return history
    return history.select_rows(history.step <= max_step)


def time_axis(history: History) -> tuple[np.ndarray, str]:
    """The x values and label of a history's rows: epochs for a mini-batch run (its first epoch row's step
    is one epoch), steps otherwise."""
    epoch_rows = np.flatnonzero(~history.exact)
    if len(epoch_rows) and history.step[epoch_rows[0]] > 0:
        return history.step / history.step[epoch_rows[0]], "epoch"
    return history.step, "step"


def figure_per_group(
    records: Sequence[RunRecord],
    num_groups: int | None = None,
    *,
    title: str | None = None,
    labels: Sequence[str] | None = None,
    max_step: int | None = None,
) -> Figure:
    """Panels: samples per class (log-log), overall training loss, then the group losses of each run,
    then (runs with validation rows, e.g. GPT-2) each run's validation group losses.

    ``num_groups`` equal-mass groups, or with None the problem's natural groups (named in the legend), else 10.
    """
    if not records:
        raise ValueError("no runs to plot")
    histories: list[History] = [_truncated(r.history, max_step) for r in records]
    labels = list(labels) if labels is not None else [run_label(r) for r in records]
    validations = [(r.result or {}).get("validation") for r in records]
    validations = validations if all(validations) else []
    panels = 2 + len(records) + len(validations)
    nrows = -(-panels // 5)  # at most 5 panels a row, rows filled evenly
    ncols = -(-panels // nrows)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.9 * nrows), squeeze=False, layout="constrained")
    axes = axes.ravel()
    groups = histories[0].groups(num_groups)
    colors = _group_colors(groups.num_groups)
    names = _group_names(records[0], num_groups)
    ax = axes[0]
    sorted_counts = groups.counts[groups.order]
    ranks = np.arange(1, len(sorted_counts) + 1)
    for g, members in enumerate(groups.members()):
        start = groups.ends[g - 1] if g else 0
        ax.scatter(ranks[start : start + len(members)], sorted_counts[start : start + len(members)], s=4, color=colors[g])
    ax.set(xscale="log", yscale="log", xlabel="class (sorted by frequency)", ylabel="samples", title="Samples per class")

    ax = axes[1]
    top = 0.0
    for history, label in zip(histories, labels):
        x, unit = time_axis(history)
        ax.plot(x, history.loss, label=label)
        top = max(top, np.nanmax(np.where(np.isfinite(history.loss), history.loss, np.nan)))
    ax.set(xlabel=unit, ylabel="training loss", title="Overall loss", ylim=(0, 1.05 * top))
    ax.legend(fontsize=7)

    group_top = max(np.nanmax(np.where(np.isfinite(g), g, np.nan)) for g in (h.group_loss(num_groups) for h in histories))
    for ax, history, label in zip(axes[2:], histories, labels):
        group_loss = history.group_loss(num_groups)
        x, unit = time_axis(history)
        for g in range(groups.num_groups):
            ax.plot(x, group_loss[:, g], color=colors[g], lw=1.2, label=names[g] if names else None)
        ax.set(xlabel=unit, ylabel="loss per group", title=label, ylim=(0, 1.05 * group_top))
        ax.title.set_fontsize(9)
        if names:
            ax.legend(fontsize=7)
    for ax, validation, label in zip(axes[2 + len(records) :], validations, labels):
        steps, group_loss = np.asarray(validation["step"]), np.asarray(validation["group_loss"], dtype=float)
        keep = steps <= max_step if max_step is not None else slice(None)
        for g in range(group_loss.shape[1]):
            ax.plot(steps[keep], group_loss[keep, g], color=_group_colors(group_loss.shape[1])[g], lw=1.2)
        ax.set(xlabel="step", ylabel="validation loss per group", title=f"validation: {label}", ylim=(0, 1.05 * max(group_top, np.nanmax(group_loss))))
        ax.title.set_fontsize(9)
    for ax in axes[panels:]:
        ax.axis("off")
    scalar = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(0, 1))
    bar = fig.colorbar(scalar, ax=list(axes), shrink=0.6, aspect=30, ticks=[0, 1])
    bar.ax.set_yticklabels(["most\nfrequent", "least\nfrequent"], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def _group_names(record: RunRecord, num_groups: int | None) -> list[str] | None:
    """Names of the problem's natural groups when those are drawn (None for equal-mass groups)."""
    if num_groups is not None or record.history.class_groups is None:
        return None
    return (record.result or {}).get("problem_info", {}).get("group_names")


def _group_colors(num_groups: int) -> np.ndarray:
    return plt.get_cmap("viridis")(np.linspace(0, 1, num_groups))


def figure_horizons(record: RunRecord, horizons: Sequence[int], num_groups: int | None = None, *, title: str | None = None) -> Figure:
    """One run's group losses over the first ``h`` steps, one panel per horizon ``h`` (v1 Fig 15)."""
    history = record.history
    fig, axes = plt.subplots(1, len(horizons), figsize=(3.6 * len(horizons), 3.0), squeeze=False, layout="constrained")
    group_loss = history.group_loss(num_groups)
    colors = _group_colors(group_loss.shape[1])
    for ax, horizon in zip(axes[0], horizons):
        keep = history.step <= horizon
        for g in range(group_loss.shape[1]):
            ax.plot(history.step[keep], group_loss[keep, g], color=colors[g], lw=1.2)
        ax.set(xlabel="step", ylabel="loss per group", title=f"{run_label(record)}: {horizon} steps", ylim=(0, None))
        ax.title.set_fontsize(9)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def figure_overall(
    records: Sequence[RunRecord],
    *,
    labels: Sequence[str] | None = None,
    max_step: int | None = None,
    title: str | None = None,
) -> Figure:
    """Overall training loss of several runs on a log scale (v1 Fig 16)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    labels = list(labels) if labels is not None else [run_label(r) for r in records]
    for record, label in zip(records, labels):
        history = _truncated(record.history, max_step)
        ax.plot(history.step, history.loss, label=label)
    ax.set(xlabel="step", ylabel="training loss", yscale="log", title="Overall loss")
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def figure_examples(images: Any, titles: Sequence[str], title: str | None = None) -> Figure:
    """A grid of grey-scale images (n, H, W) with a caption each (the barcode sits in the top row)."""
    n = len(images)
    ncols = min(n, 8)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.45 * ncols, 1.75 * nrows), squeeze=False, layout="constrained")
    for ax, image, caption in zip(axes.ravel(), images, titles):
        ax.imshow(np.asarray(image), cmap="gray", interpolation="nearest", vmin=0, vmax=255)
        ax.set_title(caption, fontsize=6)
    for ax in axes.ravel():
        ax.set(xticks=[], yticks=[])
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def save_figure(fig: Figure, path: str | Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Save ``fig`` in each of ``formats`` next to each other (``path`` with or without a suffix)."""
    stem = Path(path)
    stem = stem.with_suffix("") if stem.suffix in (".png", ".pdf") else stem
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(f"{stem.name}.{suffix}") for suffix in formats]  # keeps dots in the name
    for out in paths:
        fig.savefig(out, dpi=150)
    plt.close(fig)
    return paths


def draw_rank_frequency(ax: plt.Axes, sorted_counts: np.ndarray, num_groups: int = 10, *, fit: tuple[float, int, int] | None = None, title: str = "") -> None:
    """Counts against rank (log-log), coloured by equal-mass frequency group; ``fit = (alpha, lo, hi)`` adds the fitted line."""
    from heavytail.train.metrics import FrequencyGroups

    counts = np.asarray(sorted_counts)
    groups = FrequencyGroups.from_counts(counts, num_groups)  # counts are in rank order already
    colors = _group_colors(num_groups)
    ranks = np.arange(1, len(counts) + 1)
    start = 0
    for g, end in enumerate(groups.ends):
        if end > start:  # a group's segment joins the previous one so the curve has no gaps
            seg = slice(max(start - 1, 0), end)
            ax.plot(ranks[seg], counts[seg], color=colors[g], lw=1.6, marker="." if end - start < 3 else None, ms=3)
        start = end
    if fit is not None:
        alpha, lo, hi = fit
        r = np.array([lo, hi], dtype=float)
        scale = counts[lo - 1 : hi].sum() / np.sum(ranks[lo - 1 : hi] ** -alpha)  # the fitted law's normalisation
        ax.plot(r, scale * r**-alpha, "k--", lw=0.8, label=f"fit: $n_r \\propto r^{{-{alpha:.2f}}}$")
        ax.legend(fontsize=7, loc="lower left")
    ax.set(xscale="log", yscale="log", title=title)
    ax.title.set_fontsize(9)


def figure_rank_frequency(
    panels: Sequence[tuple[str, np.ndarray, tuple[float, int, int] | None]],
    *,
    ncols: int = 3,
    row_labels: Sequence[str] = (),
    num_groups: int = 10,
    title: str | None = None,
) -> Figure:
    """A grid of rank-frequency panels ``(title, counts sorted in decreasing order, fit)`` sharing axes (v1 Fig 8)."""
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.7 * nrows), squeeze=False, sharex=True, sharey=True, layout="constrained")
    for ax, (name, counts, fit) in zip(axes.ravel(), panels):
        draw_rank_frequency(ax, counts, num_groups, fit=fit, title=name)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("rank")
    for ax, label in zip(axes[:, 0], row_labels or [""] * nrows):
        ax.set_ylabel(f"{label}\nsamples".strip())
    scalar = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(0, 1))
    bar = fig.colorbar(scalar, ax=list(axes.ravel()), shrink=0.6, aspect=30, ticks=[0, 1])
    bar.ax.set_yticklabels(["most\nfrequent", "least\nfrequent"], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
