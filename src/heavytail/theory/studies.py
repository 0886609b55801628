"""The theory presets' computations and figures: the weighted quadratic (NeurIPS Fig 6) and gradient vs sign flow."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from heavytail.plots import save_figure
from heavytail.store import Store
from heavytail.theory.flows import (
    FlowSetup,
    descend,
    first_time_below,
    gradient_flow_loss,
    gradient_flow_rate_time,
    gradient_flow_time,
    integrate,
    sign_flow_loss,
    sign_flow_time,
)
from heavytail.theory.quadratic import QuadraticSetup, simulate_all

TITLES = {"gd": "GD", "adam": "Adam", "sign": "Sign descent"}


def weighted_quadratic_study(params: dict[str, Any], *, store: Store, out: Path, device: str, progress: bool) -> dict[str, Any]:
    """Simulate GD, Adam and sign descent on the weighted quadratic; overall and per-group figure, final group losses."""
    setup = QuadraticSetup(**params)
    paths = simulate_all(setup)
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.0), layout="constrained")
    for method, path in paths.items():
        axes[0].plot(path.loss, label=f"{TITLES[method]} (step {setup.step_sizes()[method]:.3g})")
    axes[0].set(xlabel="iteration", ylabel="Σ π_k w_k²", title="Overall loss", ylim=(0, 1.05))
    axes[0].legend(fontsize=7)
    colours = plt.get_cmap("viridis")(np.linspace(0, 1, setup.num_groups))
    for ax, (method, path) in zip(axes[1:], paths.items()):
        for g in range(setup.num_groups):
            ax.plot(path.group_loss[:, g], color=colours[g], lw=1.2)
        ax.set(xlabel="iteration", ylabel="group loss / group mass", title=TITLES[method], ylim=(0, 1.05))
    fig.suptitle(f"Weighted quadratic Σ π_k w_k², π_k ∝ 1/k, c = {setup.num_coords} (NeurIPS Fig 6)", fontsize=10)
    figures = save_figure(fig, out / "figure")
    groups = [len(m) for m in setup.groups().members()]
    summary = {
        "setup": {**params, "step_sizes": setup.step_sizes(), "group_sizes": groups},
        "methods": {
            method: {
                "final_loss": float(path.loss[-1]),
                "group_loss_final": path.group_loss[-1].tolist(),
                "group_loss_max_after_5": path.group_loss[5:].max(axis=0).tolist(),
            }
            for method, path in paths.items()
        },
        "figures": [str(p) for p in figures],
    }
    summary["text"] = [f"groups (classes per group): {groups}"] + [
        f"  {TITLES[m]:<13} step {setup.step_sizes()[m]:<7.3g} final loss {e['final_loss']:.3f}; groups at t={setup.steps}, "
        f"most → least frequent: " + " ".join(f"{v:.3f}" for v in e["group_loss_final"])
        for m, e in summary["methods"].items()
    ]
    return summary


def _class_times(setup: FlowSetup, fraction: float, simulated: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[dict[str, Any]]:
    """Per class: π_k, predicted and simulated times for ℓ_k to reach ``fraction`` of its initial loss."""
    c, pi = setup.num_classes, setup.frequencies()
    level = fraction * math.log(c)
    rows = []
    for k in range(c):
        measured = {name: first_time_below(t, losses[:, k], level) for name, (t, losses) in simulated.items()}
        rows.append(
            {
                "class": k,
                "pi": float(pi[k]),
                "gradient_flow": {
                    "predicted": gradient_flow_time(level, pi[k], c),
                    "rate_law": gradient_flow_rate_time(level, pi[k], c),
                    "ode": measured["gradient_ode"],
                    "descent": measured["gradient_descent"],
                },
                "sign_flow": {"predicted": sign_flow_time(level, c), "ode": measured["sign_ode"], "descent": measured["sign_descent"]},
            }
        )
    return rows


def continuous_time_study(params: dict[str, Any], *, store: Store, out: Path, device: str, progress: bool) -> dict[str, Any]:
    """Gradient flow vs sign flow per class: closed forms, RK4, discrete descent; curves and time-to-fraction tables."""
    fractions = params.get("fractions", (0.5, 0.1))
    shown = params.get("shown_classes", (1, 3, 10, 30, 100))
    setup = FlowSetup(**{k: v for k, v in params.items() if k not in ("fractions", "shown_classes")})
    c, pi = setup.num_classes, setup.frequencies()
    simulated = {
        "gradient_ode": integrate(setup, "gradient"),
        "gradient_descent": descend(setup, "gradient"),
        "sign_ode": integrate(setup, "sign"),
        "sign_descent": descend(setup, "sign"),
    }
    tables = {str(f): _class_times(setup, f, simulated) for f in fractions}

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), layout="constrained")
    shown = [k for k in shown if k <= c]
    colours = plt.get_cmap("viridis")(np.linspace(0, 1, len(shown)))
    t_ode, l_ode = simulated["gradient_ode"]
    t_gd, l_gd = simulated["gradient_descent"]
    grid = np.geomspace(1e-2, setup.horizon, 400)
    for colour, k in zip(colours, shown):
        axes[0].plot(grid, gradient_flow_loss(grid, pi[k - 1], c), color=colour, label=f"k = {k}, π_k = {pi[k - 1]:.2g}")
        axes[0].plot(t_ode[::60], l_ode[::60, k - 1], "o", color=colour, ms=2.5)
        axes[0].plot(t_gd[1:], l_gd[1:, k - 1], ":", color=colour, lw=1)
    axes[0].set(xscale="log", yscale="log", xlabel="time t", ylabel="ℓ_k(t)", title="Gradient flow (line), RK4 (dots), GD (dotted)")
    axes[0].legend(fontsize=6)
    t_sign, l_sign = simulated["sign_ode"]
    t_sd, l_sd = simulated["sign_descent"]
    for colour, k in zip(colours, shown):
        axes[1].plot(t_sign[::40], l_sign[::40, k - 1], "o", color=colour, ms=2.5)
        axes[1].plot(t_sd, l_sd[:, k - 1], ":", color=colour, lw=1)
    sign_grid = np.linspace(0, setup.sign_horizon, 200)
    axes[1].plot(sign_grid, sign_flow_loss(sign_grid, c), "k-", lw=0.8, label="log(1 + (c−1)e^{−2t}), every class")
    axes[1].set(yscale="log", xlabel="time t", ylabel="ℓ_k(t)", title="Sign flow (line), RK4 (dots), sign descent (dotted)")
    axes[1].legend(fontsize=6)
    half = tables[str(fractions[0])]
    axes[2].plot(pi, [r["gradient_flow"]["predicted"] for r in half], "-", color="C0", label="gradient flow, closed form")
    axes[2].plot(pi, [r["gradient_flow"]["descent"] for r in half], "o", color="C0", ms=2.5, label=f"GD (step {setup.step:g})")
    axes[2].plot(pi, [r["sign_flow"]["predicted"] for r in half], "-", color="C1", label="sign flow, closed form")
    axes[2].plot(pi, [r["sign_flow"]["descent"] for r in half], "o", color="C1", ms=2.5, label=f"sign descent (step {setup.sign_step:g})")
    axes[2].set(xscale="log", yscale="log", xlabel="π_k", ylabel="time", title=f"Time to reach {fractions[0]:g} × initial loss")
    axes[2].legend(fontsize=6)
    for ax in axes:
        ax.title.set_fontsize(8)
    fig.suptitle(f"Per-class loss under gradient flow vs sign flow: one-hot softmax problem, c = {c}, π_k ∝ 1/k^{setup.exponent:g}, W(0) = 0", fontsize=10)
    figures = save_figure(fig, out / "figure")

    text = [f"setting: softmax regression, one-hot inputs, c = {c}, π_k ∝ 1/k^{setup.exponent:g}, W(0) = 0; GD step {setup.step:g}, sign step {setup.sign_step:g}"]
    for f, rows in tables.items():
        text.append(f"time to reach {f} × initial loss (log c = {math.log(c):.3f}):")
        text.append("    k      π_k   GF closed form  GF rate law  GF RK4     GD        SF closed form  SF RK4   sign descent")
        for r in rows:
            if r["class"] + 1 in shown:
                g, s = r["gradient_flow"], r["sign_flow"]
                text.append(
                    f"  {r['class'] + 1:>3}  {r['pi']:.4f}  {g['predicted']:>14.4g}  {g['rate_law']:>11.4g}  {g['ode']:>8.4g}  {g['descent']:>8.4g}"
                    f"  {s['predicted']:>14.4g}  {s['ode']:>7.4g}  {s['descent']:>12.4g}"
                )
    setting = {k: getattr(setup, k) for k in ("num_classes", "exponent", "step", "sign_step", "horizon", "sign_horizon", "ode_points")}
    return {"setting": setting, "fractions": list(fractions), "classes": tables, "figures": [str(p) for p in figures], "text": text}
