"""Datasets: each returns inputs, integer targets and the number of classes."""

from heavytail.data.synthetic import LabeledData, heavy_tailed_class_sizes, natural_groups, random_heavy_tailed_labels

__all__ = ["LabeledData", "heavy_tailed_class_sizes", "natural_groups", "random_heavy_tailed_labels"]
