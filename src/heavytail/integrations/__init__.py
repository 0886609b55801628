"""Integrations of :class:`heavytail.GroupTracker`, each behind an optional extra, imported on first use.

ht.integrations.lightning.GroupLossCallback    pip install 'heavytail[lightning]'
ht.integrations.hf.GroupLossCallback           pip install 'heavytail[hf]'
ht.integrations.tensorboard.TensorBoardLogger  pip install 'heavytail[tensorboard]'
ht.integrations.wandb.WandbLogger              pip install 'heavytail[wandb]'
"""

from __future__ import annotations

import importlib
from types import ModuleType

MODULES = ("hf", "lightning", "tensorboard", "wandb")


def scalars(row: dict) -> dict[str, float]:
    """A logged row as scalars named ``group_loss/g0`` … (and ``group_accuracy/g0`` … when known), plus ``group_loss/all``."""
    out = {f"group_loss/g{g}": value for g, value in enumerate(row["group_loss"])}
    out.update({f"group_accuracy/g{g}": value for g, value in enumerate(row["group_accuracy"] or [])})
    out["group_loss/all"] = row["loss"]
    return out


def __getattr__(name: str) -> ModuleType:
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
