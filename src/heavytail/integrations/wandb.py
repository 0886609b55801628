"""wandb metrics ``group_loss/g0`` … for each row a :class:`heavytail.GroupTracker` logs (extra: ``[wandb]``; offline mode works)."""

from __future__ import annotations

from typing import Any

import wandb

from heavytail.integrations import scalars


class WandbLogger:
    """Logs each row to a wandb run (``run``, else the active ``wandb.run``) at the row's step."""

    def __init__(self, run: Any = None) -> None:
        self.run = run

    def log_row(self, row: dict[str, Any]) -> None:
        run = self.run or wandb.run
        if run is None:
            raise RuntimeError("no wandb run: call wandb.init() first or pass WandbLogger(run)")
        run.log(scalars(row), step=row["step"])
