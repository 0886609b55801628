"""The paper's CNN for (barcoded) MNIST: two 5x5 conv + ReLU + 2x2 max-pool stages, then one linear layer."""

from __future__ import annotations

from torch import nn


def cnn(num_classes: int, width1: int = 32, width2: int = 100) -> nn.Sequential:
    """conv 1→width1 → ReLU → pool → conv width1→width2 → ReLU → pool → flatten (width2·7·7) → linear → classes.

    PyTorch's default initialisation, as in the paper; widths 32/100 give ≈130 k parameters on MNIST.
    """
    return nn.Sequential(
        nn.Conv2d(1, width1, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width1, width2, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(width2 * 7 * 7, num_classes),
    )


def cnn_activation_bytes(width1: int, width2: int) -> int:
    """Float32 bytes one image's forward keeps for backward (conv and ReLU outputs, pools), doubled for their gradients."""
    floats = 2 * width1 * 28 * 28 + width1 * 14 * 14 + 2 * width2 * 14 * 14 + width2 * 7 * 7
    return 2 * 4 * floats


def cnn_flops_per_image(num_classes: int, width1: int, width2: int) -> float:
    """Forward multiply-adds × 2 of one 28×28 image (convolutions at full and half resolution, then the linear layer)."""
    macs = 28 * 28 * 25 * width1 + 14 * 14 * 25 * width1 * width2 + 7 * 7 * width2 * num_classes
    return 2.0 * macs
