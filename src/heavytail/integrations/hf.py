"""Hugging Face ``Trainer`` callback for causal language models feeding a :class:`heavytail.GroupTracker` (extra: ``[hf]``).

A forward hook on the model reads the logits and the ``labels`` of each training forward pass and
computes per-token losses shifted as the model does (token t predicts label t + 1; label -100 is
ignored), so neither the model nor the training script changes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import TrainerCallback

from heavytail.options import ConfigError
from heavytail.track.tracker import GroupTracker

HF_IGNORE_INDEX = -100  # what Hugging Face's data collators put on padding


def shifted_token_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token losses of a causal LM, (B, T - 1), with their targets and logits: position t predicts label t + 1."""
    logits, targets = logits[..., :-1, :].float(), labels[..., 1:]
    losses = F.cross_entropy(logits.flatten(0, -2), targets.flatten(), reduction="none", ignore_index=HF_IGNORE_INDEX)
    return losses.view(targets.shape), targets, logits


class GroupLossCallback(TrainerCallback):
    """Tracks the per-token training loss by frequency group; logs a row every ``every_n_steps`` steps
    (default: the Trainer's ``logging_steps``) and at the end of training."""

    def __init__(self, tracker: GroupTracker, every_n_steps: int | None = None, *, accuracy: bool = True) -> None:
        if tracker.ignore_index != HF_IGNORE_INDEX:
            raise ConfigError(
                f"the tracker's ignore_index is {tracker.ignore_index}; Hugging Face labels use {HF_IGNORE_INDEX}"
            )
        self.tracker, self.every_n_steps, self.accuracy = tracker, every_n_steps, accuracy
        self.hook: Any = None
        self.pending = False
        self.rows: list[dict[str, Any]] = []

    def on_train_begin(
        self, args: Any, state: Any, control: Any, model: torch.nn.Module | None = None, **kwargs: Any
    ) -> None:
        if self.every_n_steps is None:
            steps = args.logging_steps
            self.every_n_steps = int(steps) if steps >= 1 else max(1, round(steps * state.max_steps))
        self.hook = model.register_forward_hook(self._track, with_kwargs=True)

    def _track(self, module: torch.nn.Module, args: Any, kwargs: dict[str, Any], output: Any) -> None:
        labels = kwargs.get("labels")
        if not module.training or labels is None:
            return
        with torch.no_grad():
            losses, targets, logits = shifted_token_losses(output.logits.detach(), labels)
            self.tracker.update(losses, targets, logits if self.accuracy else None)
        self.pending = True

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step % self.every_n_steps == 0 and self.pending:
            self._log(state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.pending:
            self._log(state.global_step)
        if self.hook is not None:
            self.hook.remove()
        self.tracker.close()

    def _log(self, step: int) -> None:
        self.rows.append(self.tracker.log(step))
        self.pending = False
