"""What the training loop trains: a model, its data and the per-class loss weights."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal, Protocol

import torch
from torch import nn

from heavytail.options import ConfigError

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
    Targets equal to ``ignore_index`` are padding: no loss, not counted. Mini-batches are made of
    whole blocks of ``batch_block`` consecutive rows (a text problem's window of B streams), visited
    in a fresh random order every epoch, or in the same order every epoch when ``shuffle_batches``
    is False.
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
    ignore_index: int | None = None  # target value of padding positions
    batch_block: int = 1  # rows that always share a mini-batch, in order (B streams of one window)
    shuffle_batches: bool = True  # False: the same block order every epoch (the paper's text windows, D13)
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
        """Number of training targets of each class (CPU, int64), padding left out."""
        if self.samples is not None:
            return self.samples.class_counts(self.num_classes)
        y = self.y.reshape(-1).cpu()
        if self.ignore_index is not None:
            y = y[y != self.ignore_index]
        return torch.bincount(y, minlength=self.num_classes)

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


@dataclass(frozen=True)
class LossWeights:
    """The option every problem has: ``loss_weights`` = p weights class k by 1/pi_k^p (paper section 4).

    p = 0 is the plain mean cross-entropy; the paper uses 1/2 and 1. The weighted loss is normalised
    by the weight sum of each (mini-)batch; logged per-class losses stay unweighted. A problem's
    options inherit this class and end ``build`` with ``return self.weighted(problem)``.
    """

    loss_weights: float = field(default=0.0, kw_only=True)

    def weighted(self, problem: Problem) -> Problem:
        """``problem`` with the class weights of ``loss_weights`` from its training counts."""
        check_loss_weights(self, type(self).__name__)
        problem.class_weights = class_loss_weights(problem.class_counts(), self.loss_weights)
        return problem


def check_loss_weights(options: Any, problem: str) -> None:
    """A one-line error for a negative or non-finite ``loss_weights`` (p >= 0)."""
    power = options.loss_weights
    if not (math.isfinite(power) and power >= 0):
        raise ConfigError(f"bad {problem} problem option loss_weights={power}; expected p >= 0 (e.g. 1/2 or 1)")
