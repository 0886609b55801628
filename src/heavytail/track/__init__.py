"""Per-group loss for any training loop: :class:`GroupTracker` (integrations: ``heavytail.integrations``)."""

from heavytail.track.tracker import GroupTracker, class_counts_from_labels, class_counts_from_stats

__all__ = ["GroupTracker", "class_counts_from_labels", "class_counts_from_stats"]
