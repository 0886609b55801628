"""The weighted quadratic of the NeurIPS version's Fig 6: why GD fits frequent coordinates first.

Exactly the authors' ``plot_quadratic_model.py`` (paper.md §6.4): c = 1 000 coordinates with weights
π_k ∝ 1/k, w(0) = 1, plotted loss Σ_k π_k w_k² (starts at 1) while every method is fed the gradient
π_k w_k, i.e. the dynamics of ½ Σ π_k w_k² (decisions D18: the factor 2 is kept for fidelity). 50
iterations; GD with step 0.5/π_1, sign descent with step 0.70, Adam (β = (0.9, 0.999), ε = 1e-8)
with step 0.70, all fixed by the figure (no grid search). Group losses use the equal-mass frequency
groups applied to π, each normalised by its mass: Σ_{k∈G} π_k w_k² / Σ_{k∈G} π_k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from heavytail.optim.registry import make_optimizer
from heavytail.train.metrics import FrequencyGroups

METHODS = {"gd": "gd", "adam": "adam+m", "sign": "sign"}  # label -> registered optimizer (torch Adam defaults = adam+m)
MASS_RESOLUTION = 10**12  # π is turned into integer "counts" at this resolution to reuse the groups rule


@dataclass(frozen=True)
class QuadraticSetup:
    """The figure's constants (defaults: the authors' script)."""

    num_coords: int = 1000
    steps: int = 50
    gd_step_times_pi1: float = 0.5  # GD step = this / π_1
    sign_step: float = 0.70
    adam_step: float = 0.70
    num_groups: int = 10

    def weights(self) -> np.ndarray:
        """π_k ∝ 1/k, normalised."""
        inverse = 1.0 / np.arange(1, self.num_coords + 1)
        return inverse / inverse.sum()

    def step_sizes(self) -> dict[str, float]:
        return {"gd": self.gd_step_times_pi1 / self.weights()[0], "adam": self.adam_step, "sign": self.sign_step}

    def groups(self) -> FrequencyGroups:
        """Equal-mass groups of the coordinates (paper §2.11 applied to π)."""
        return FrequencyGroups.from_counts(np.rint(self.weights() * MASS_RESOLUTION).astype(np.int64), self.num_groups)


@dataclass(frozen=True)
class QuadraticPath:
    """Iterates of one method: ``w`` (steps + 1, c), the overall loss and the mass-normalised group losses."""

    w: np.ndarray
    loss: np.ndarray  # (steps + 1,) Σ π_k w_k²
    group_loss: np.ndarray  # (steps + 1, G)


def simulate(setup: QuadraticSetup, method: str) -> QuadraticPath:
    """Run ``method`` (gd, adam or sign) on the weighted quadratic, feeding it the gradient π ∘ w."""
    pi = torch.tensor(setup.weights(), dtype=torch.float64)
    w = torch.ones(setup.num_coords, dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer(METHODS[method], [w], setup.step_sizes()[method])
    iterates = [w.detach().clone()]
    for _ in range(setup.steps):
        w.grad = pi * w.detach()
        optimizer.step()
        iterates.append(w.detach().clone())
    path = torch.stack(iterates).numpy()
    per_coord = setup.weights() * path**2
    groups = setup.groups()
    group_loss = np.stack([per_coord[:, m].sum(1) / setup.weights()[m].sum() for m in groups.members()], axis=1)
    return QuadraticPath(w=path, loss=per_coord.sum(1), group_loss=group_loss)


def simulate_all(setup: QuadraticSetup | None = None) -> dict[str, QuadraticPath]:
    """GD, Adam and sign descent on the figure's problem."""
    setup = setup or QuadraticSetup()
    return {method: simulate(setup, method) for method in METHODS}
