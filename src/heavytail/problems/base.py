"""What the training loop trains: a model, its data and the per-class loss weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Literal

import torch
from torch import nn

LogMode = Literal["eval", "train"]  # logged losses of a model with dropout: dropout off, or on as in the paper's code (D12)


@dataclass
class Problem:
    """Model, inputs ``x`` (n, ...) and class targets ``y`` (n,) or (n, T); all on one device.

    The loss is the cross-entropy of ``model(x)`` against ``y``; with ``class_weights`` set it is
    the weighted mean sum_i w_{y_i} l_i / sum_i w_{y_i} (the paper's reweighting).
    """

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    class_weights: torch.Tensor | None = None
    class_groups: torch.Tensor | None = None  # the problem's natural group of each class (None: equal-mass groups)
    group_names: tuple[str, ...] | None = None  # names of the natural groups, most frequent first
    activation_bytes_per_sample: int = 0  # memory a sample's forward/backward holds besides its logits (sizes chunks)
    log_mode: LogMode = "eval"  # where the model has dropout: log losses in eval mode (an extra pass) or from the training pass
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return len(self.y)

    def class_counts(self) -> torch.Tensor:
        """Number of training targets of each class (CPU, int64)."""
        return torch.bincount(self.y.reshape(-1).cpu(), minlength=self.num_classes)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def num_trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.trainable_parameters())

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters the optimizer updates (frozen ones, ``requires_grad=False``, get no state)."""
        return (p for p in self.model.parameters() if p.requires_grad)

    def to(self, device: torch.device | str) -> Problem:
        """Move model, data and weights to ``device`` (in place for the model) and return self."""
        self.model.to(device)
        self.x = self.x.to(device)
        self.y = self.y.to(device)
        if self.class_weights is not None:
            self.class_weights = self.class_weights.to(device)
        return self


def class_loss_weights(counts: torch.Tensor, power: float) -> torch.Tensor | None:
    """Per-class weights 1 / pi_k^power (None when power = 0); classes with no samples get 0."""
    if power == 0:
        return None
    freq = counts.double() / counts.sum()
    weights = torch.where(counts > 0, freq.clamp_min(1e-300) ** -power, torch.zeros_like(freq))
    return weights.float()
