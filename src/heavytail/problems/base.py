"""What the training loop trains: a model, its data and the per-class loss weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Literal, Protocol

import torch
from torch import nn

LogMode = Literal["eval", "train"]  # logged losses of a model with dropout: dropout off, or on as in the paper's code (D12)


class IndexedSamples(Protocol):
    """Samples read by index instead of held as one tensor of inputs (e.g. token windows of a corpus)."""

    targets_per_sample: int

    def __len__(self) -> int: ...

    def fetch(self, index: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of the samples ``index`` selects, on the samples' device, without a host sync."""
        ...

    def class_counts(self, num_classes: int) -> torch.Tensor:
        """Targets of each class over all samples (CPU, int64)."""
        ...

    def to(self, device: torch.device | str) -> IndexedSamples: ...


@dataclass
class Problem:
    """Model, inputs ``x`` (n, ...) and class targets ``y`` (n,) or (n, T); all on one device.

    A problem too big to hold as tensors of inputs gives ``samples`` instead (``x`` and ``y`` None);
    the loop reads both kinds through :meth:`fetch`. The loss is the cross-entropy of ``model(x)``
    against ``y``; with ``class_weights`` set it is the weighted mean sum_i w_{y_i} l_i / sum_i w_{y_i}
    (the paper's reweighting). ``validation`` samples, if any, are evaluated where rows are logged
    (every ``log_every`` steps) (per-group validation loss, groups from the validation counts).
    """

    model: nn.Module
    x: torch.Tensor | None
    y: torch.Tensor | None
    num_classes: int
    class_weights: torch.Tensor | None = None
    class_groups: torch.Tensor | None = None  # the problem's natural group of each class (None: equal-mass groups)
    group_names: tuple[str, ...] | None = None  # names of the natural groups, most frequent first
    activation_bytes_per_sample: int = 0  # memory a sample's forward/backward holds besides its logits (sizes chunks)
    log_mode: LogMode = "train"  # a model with dropout: exact rows from the training pass (dropout on), or "eval": from an eval-mode pass (D12)
    info: dict[str, Any] = field(default_factory=dict)
    samples: IndexedSamples | None = None  # instead of x and y
    validation: IndexedSamples | None = None
    log_every: int | None = None  # mini-batch training: a row (and a validation pass) every that many steps; None: per epoch

    @property
    def num_samples(self) -> int:
        return len(self.samples) if self.samples is not None else len(self.y)

    @property
    def targets_per_sample(self) -> int:
        if self.samples is not None:
            return self.samples.targets_per_sample
        return self.y[0].numel() if self.y.dim() > 1 else 1

    @property
    def device(self) -> torch.device:
        return next(iter(self.model.parameters())).device

    def fetch(self, index: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of the samples ``index`` (indices on the problem's device, or a slice) selects."""
        if self.samples is not None:
            return self.samples.fetch(index)
        return self.x[index], self.y[index]

    def targets(self, index: torch.Tensor) -> torch.Tensor:
        """Targets of the samples ``index`` selects."""
        return self.samples.fetch(index)[1] if self.samples is not None else self.y[index]

    def class_counts(self) -> torch.Tensor:
        """Number of training targets of each class (CPU, int64)."""
        if self.samples is not None:
            return self.samples.class_counts(self.num_classes)
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
        if self.samples is not None:
            self.samples = self.samples.to(device)
        else:
            self.x = self.x.to(device)
            self.y = self.y.to(device)
        if self.validation is not None:
            self.validation = self.validation.to(device)
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
