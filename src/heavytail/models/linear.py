"""Linear softmax-regression model: logits = W x + b."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Init = Literal["default", "zero"]


def linear_model(in_features: int, num_classes: int, *, bias: bool = True, init: Init = "default") -> nn.Linear:
    """``nn.Linear`` with PyTorch's default init (U(+-1/sqrt(d)), as in the paper's runs) or all zeros.

    Zero init is the W0 = 0 of the paper's analysis (see docs/decisions.md, D4).
    """
    model = nn.Linear(in_features, num_classes, bias=bias)
    if init == "zero":
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
    elif init != "default":
        raise ValueError(f"unknown init {init!r}; choose one of: default, zero")
    return model
