"""TensorBoard scalars ``group_loss/g0`` … for each row a :class:`heavytail.GroupTracker` logs (extra: ``[tensorboard]``)."""

from __future__ import annotations

import os
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from heavytail.integrations import scalars


class TensorBoardLogger:
    """Writes each row to a ``SummaryWriter`` (given, or made for the directory ``log_dir``)."""

    def __init__(self, writer: SummaryWriter | str | os.PathLike[str]) -> None:
        self.writer = writer if isinstance(writer, SummaryWriter) else SummaryWriter(str(writer))

    def log_row(self, row: dict[str, Any]) -> None:
        for tag, value in scalars(row).items():
            self.writer.add_scalar(tag, value, row["step"])
        self.writer.flush()
