"""Resumable training state: what a checkpoint holds besides the model and optimizer, as plain tensors.

A checkpoint is one ``torch.save``-d dict of tensors, numbers, strings, lists and dicts, so it loads
with ``torch.load(weights_only=True)``: the model's and optimizer's state dicts, the RNG states
(torch's CPU generator, and every CUDA device's), the data position (epoch, offset into the epoch's
order, and the shuffling generator's state when that epoch began), the partial statistics of the row
in progress, the history rows so far (training and validation) and the training time so far. The
store writes it atomically next to the run's other files (:meth:`heavytail.Store.save_checkpoint`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from heavytail.options import ConfigError
from heavytail.train.history import HistoryRecorder

FORMAT = 1


def rows_state(recorder: HistoryRecorder | None) -> dict[str, torch.Tensor] | None:
    """A recorder's rows as tensors (None for no recorder)."""
    if recorder is None:
        return None
    history = recorder.history()
    return {
        "step": torch.from_numpy(history.step.copy()),
        "exact": torch.from_numpy(history.exact.copy()),
        "loss": torch.from_numpy(history.loss.copy()),
        "objective": torch.from_numpy(history.objective.copy()),
        "class_loss": torch.from_numpy(history.class_loss.copy()),
        "class_accuracy": torch.from_numpy(history.class_accuracy.copy()),
    }


def restore_rows(recorder: HistoryRecorder | None, rows: dict[str, torch.Tensor] | None) -> None:
    """Put rows saved by :func:`rows_state` back into an empty recorder."""
    if recorder is None or rows is None:
        return
    columns = [rows[k].numpy() for k in ("step", "exact", "loss", "objective", "class_loss", "class_accuracy")]
    for step, exact, loss, objective, class_loss, class_accuracy in zip(*columns):
        recorder.rows.append((int(step), bool(exact), float(loss), float(objective), np.asarray(class_loss), np.asarray(class_accuracy)))


def rng_state(device: torch.device) -> dict[str, Any]:
    """The global RNG states training draws from (dropout): torch's CPU generator, and CUDA's on a GPU."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_checkpoint(checkpoint: Any, run_id: str, spec: dict[str, Any], where: str) -> dict[str, Any]:
    """The checkpoint if it belongs to ``run_id`` (whose spec is ``spec``); a one-line error otherwise."""
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ConfigError(f"{where} is not a heavytail checkpoint (format {FORMAT}); delete it to start the run afresh")
    if checkpoint.get("run_id") != run_id or checkpoint.get("spec") != spec:
        raise ConfigError(
            f"checkpoint {where} belongs to run {checkpoint.get('run_id')} ({checkpoint.get('spec')}), not to run {run_id}; "
            f"move it away or run that spec"
        )
    return checkpoint
