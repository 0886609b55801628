"""Lightning callback feeding a :class:`heavytail.GroupTracker` (extra: ``[lightning]``).

The module's ``training_step`` returns, beside ``loss``, the per-sample (or per-token) losses and
their targets, e.g. ``{"loss": losses.mean(), "losses": losses.detach(), "targets": y}`` (and
``"logits"`` for group accuracy). Rows also go to the trainer's own logger (TensorBoard, wandb, CSV).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

try:
    import lightning.pytorch as pl
except ImportError:  # the standalone package
    import pytorch_lightning as pl

from heavytail.integrations import scalars
from heavytail.options import ConfigError
from heavytail.track.tracker import GroupTracker


class GroupLossCallback(pl.Callback):
    """Adds each training batch's losses to ``tracker``; logs a row every ``every_n_steps`` optimizer steps and at the end."""

    def __init__(
        self,
        tracker: GroupTracker,
        every_n_steps: int = 50,
        *,
        losses_key: str = "losses",
        targets_key: str = "targets",
        logits_key: str = "logits",
    ) -> None:
        if every_n_steps < 1:
            raise ConfigError(f"bad every_n_steps {every_n_steps}; expected an integer >= 1")
        self.tracker, self.every_n_steps = tracker, every_n_steps
        self.keys = (losses_key, targets_key, logits_key)
        self.pending, self.last_logged = False, None
        self.rows: list[dict[str, Any]] = []

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        losses_key, targets_key, logits_key = self.keys
        if not isinstance(outputs, Mapping) or losses_key not in outputs or targets_key not in outputs:
            found = sorted(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__
            raise ConfigError(
                f"training_step must return a dict with {losses_key!r} and {targets_key!r} for GroupLossCallback; got {found}"
            )
        self.tracker.update(outputs[losses_key], outputs[targets_key], outputs.get(logits_key))
        self.pending = True
        step = trainer.global_step
        if step % self.every_n_steps == 0 and step != self.last_logged:
            self._log(trainer, step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.pending:
            self._log(trainer, trainer.global_step)
        self.tracker.close()

    def _log(self, trainer: pl.Trainer, step: int) -> None:
        row = self.tracker.log(step)
        self.rows.append(row)
        self.pending, self.last_logged = False, step
        if trainer.logger is not None and trainer.is_global_zero:
            trainer.logger.log_metrics(scalars(row), step=step)
