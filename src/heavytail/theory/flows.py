"""Gradient flow vs sign flow per class on a decoupled imbalanced softmax problem (the v2 theorem, paper.md §6.3).

The v2 text's exact setting was not available; this is the reconstruction paper.md §6.3 gives, which
yields exactly the theorem's rates. Softmax regression with one-hot inputs x_i = e_{y_i} ∈ R^c,
W(0) = 0 and class frequencies π_k, so L(W) = Σ_k π_k ℓ_k with ℓ_k = CE(W e_k, k): column k of W
is a copy of one c-way cross-entropy problem scaled by π_k.

By symmetry column k keeps its target logit at (c−1)a and the others at −a; with u = (c−1)e^{−ca}
the class loss is ℓ_k = log(1 + u), ℓ_k(0) = log c, and

* gradient flow Ẇ = −∇L:  du/dt = −κ u²/(1 + u), κ = π_k c/(c−1), solved by
  1/u − log u = κ t + 1/u_0 − log u_0 (u_0 = c−1), i.e. u = 1/W₀(exp(κ t + 1/u_0 − log u_0)) with
  W₀ the Lambert function; for large t, ℓ_k ≈ 1/(κ t) = (1 − 1/c)/(π_k t): Θ(1/(π_k t)).
* sign flow Ẇ = −sign ∇L: the target logit rises at rate 1 and every other falls at rate 1, so
  ℓ_k(t) = log(1 + (c−1) e^{−2t}) for every class, whatever π_k.

The ODEs are also integrated numerically on the full c × c matrix (RK4), and their discrete
counterparts are run: gradient descent and sign descent with step α, at time t = α · steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

Flow = Literal["gradient", "sign"]


@dataclass(frozen=True)
class FlowSetup:
    """Number of classes, the law of π (∝ 1/k^exponent), the discrete step and the horizon."""

    num_classes: int = 100
    exponent: float = 1.0
    step: float = 1.0  # α of gradient descent (stable: each column's curvature is below π_k / 2)
    sign_step: float = 0.02  # α of sign descent (its loss moves 2α per step whatever π_k)
    horizon: float = 1e4  # time simulated for gradient flow (the rarest class needs ~3 500 to lose 90 %)
    sign_horizon: float = 10.0  # and for sign flow (its loss is ~1e-7 by then)
    ode_points: int = 3000  # geometric time grid of the RK4 integration

    def time_span(self, flow: Flow) -> tuple[float, float]:
        """(horizon, discrete step) of ``flow``."""
        return (self.horizon, self.step) if flow == "gradient" else (self.sign_horizon, self.sign_step)

    def frequencies(self) -> np.ndarray:
        weights = 1.0 / np.arange(1, self.num_classes + 1) ** self.exponent
        return weights / weights.sum()


def _lambert_w(z_log: np.ndarray) -> np.ndarray:
    """Principal Lambert W of exp(z_log) (> 0), by Newton on v + log v = z_log (no overflow for large z)."""
    v = np.where(z_log > 1, z_log - np.log(np.maximum(z_log, 1.0)), np.exp(np.minimum(z_log, 1.0)) / math.e)
    v = np.maximum(v, 1e-300)
    for _ in range(100):
        step = (v + np.log(v) - z_log) / (1 + 1 / v)
        v = np.maximum(v - step, v / 10)
        if np.all(np.abs(step) <= 1e-15 * v):
            break
    return v


def gradient_flow_loss(t: np.ndarray, pi: float, num_classes: int) -> np.ndarray:
    """ℓ_k(t) under gradient flow, in closed form (Lambert W)."""
    c = num_classes
    kappa, u0 = pi * c / (c - 1), c - 1.0
    u = 1.0 / _lambert_w(kappa * np.asarray(t, dtype=np.float64) + 1 / u0 - math.log(u0))
    return np.log1p(u)


def sign_flow_loss(t: np.ndarray, num_classes: int) -> np.ndarray:
    """ℓ_k(t) under sign flow, the same for every class."""
    return np.log1p((num_classes - 1) * np.exp(-2 * np.asarray(t, dtype=np.float64)))


def gradient_flow_time(level: float, pi: float, num_classes: int) -> float:
    """Time at which gradient flow brings ℓ_k down to ``level`` (closed form)."""
    c = num_classes
    kappa, u0, u = pi * c / (c - 1), c - 1.0, math.expm1(level)
    return (1 / u - math.log(u) - 1 / u0 + math.log(u0)) / kappa


def gradient_flow_rate_time(level: float, pi: float, num_classes: int) -> float:
    """Time at which the theorem's rate ℓ_k ≈ (1 − 1/c)/(π_k t) reaches ``level``."""
    return (1 - 1 / num_classes) / (pi * level)


def sign_flow_time(level: float, num_classes: int) -> float:
    """Time at which sign flow brings any ℓ_k down to ``level``."""
    return 0.5 * math.log((num_classes - 1) / math.expm1(level))


def _gradient(W: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """∇L for one-hot inputs: column k is π_k (softmax(W e_k) − e_k)."""
    z = W - W.max(axis=0, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=0, keepdims=True)
    return (p - np.eye(len(pi))) * pi[None, :]


def _class_losses(W: np.ndarray) -> np.ndarray:
    z = W - W.max(axis=0, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=0, keepdims=True))
    return -np.diagonal(log_p).copy()


def _velocity(flow: Flow, pi: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    if flow == "gradient":
        return lambda W: -_gradient(W, pi)
    return lambda W: -np.sign(_gradient(W, pi))


def integrate(setup: FlowSetup, flow: Flow) -> tuple[np.ndarray, np.ndarray]:
    """RK4 integration of the flow on the full matrix W over a geometric time grid: (times, class losses (T, c))."""
    pi = setup.frequencies()
    velocity = _velocity(flow, pi)
    horizon, _ = setup.time_span(flow)
    times = np.concatenate([[0.0], np.geomspace(1e-3, horizon, setup.ode_points)])
    W = np.zeros((setup.num_classes, setup.num_classes))
    losses = [_class_losses(W)]
    for t0, t1 in zip(times[:-1], times[1:]):
        h = t1 - t0
        k1 = velocity(W)
        k2 = velocity(W + h / 2 * k1)
        k3 = velocity(W + h / 2 * k2)
        k4 = velocity(W + h * k3)
        W = W + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        losses.append(_class_losses(W))
    return times, np.array(losses)


def descend(setup: FlowSetup, flow: Flow) -> tuple[np.ndarray, np.ndarray]:
    """The discrete counterpart: gradient descent or sign descent with step α, at times α · steps."""
    pi = setup.frequencies()
    velocity = _velocity(flow, pi)
    horizon, step = setup.time_span(flow)
    steps = math.ceil(horizon / step)
    W = np.zeros((setup.num_classes, setup.num_classes))
    losses = [_class_losses(W)]
    for _ in range(steps):
        W = W + step * velocity(W)
        losses.append(_class_losses(W))
    return step * np.arange(steps + 1), np.array(losses)


def first_time_below(times: np.ndarray, losses: np.ndarray, level: float) -> float:
    """First time a decreasing loss curve reaches ``level`` (linear interpolation); NaN if it never does."""
    below = np.nonzero(losses <= level)[0]
    if not len(below):
        return float("nan")
    i = below[0]
    if i == 0:
        return float(times[0])
    t0, t1, l0, l1 = times[i - 1], times[i], losses[i - 1], losses[i]
    return float(t0 + (t1 - t0) * (l0 - level) / (l0 - l1))
