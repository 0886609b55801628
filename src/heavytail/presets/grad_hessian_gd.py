"""v1 Fig 5 / NeurIPS gradient-vs-Hessian figures: per-class gradient norms and Hessian block traces along GD's path.

    heavytail reproduce grad-hessian-gd                   # small: m = 8, step size from the `linear` protocol
    heavytail reproduce grad-hessian-gd --scale paper     # m = 11, 10^-2.5 as the paper plotted

GD without momentum trains the linear model on Random Heavy-Tailed Labels, keeping its parameters at
t ∈ {0, 1, 2, 5, 10, 20, 50, 100}; at each, every class's ‖∇_{w_k} L‖ and Tr ∇²_{w_k} L in closed
form, their Spearman correlations with each other and with the class count, the same at −W_t (E10),
same-class vs cross-class Hessian entries on 10 classes × 11 coordinates at t ∈ {0, 10, 50, 100}
(E11) and the probability of the correct class per natural group (E12). Small scale: the step size
is the one the `linear` preset's protocol selects for gd (its sweep, about 16 runs, is reused
from the store when present) and the path is that selected 150-step run, recomputed once to keep
snapshots. Paper scale: 10^-2.5 fixed, the step size the paper plotted (its protocol's choice at
m = 11; running that sweep takes GPU hours).
"""

from heavytail.curvature.path import grad_hessian_study
from heavytail.presets.base import Study

CHECKPOINTS = (0, 1, 2, 5, 10, 20, 50, 100)
COMMON = {"optimizer": "gd", "checkpoints": CHECKPOINTS, "structure_at": (0, 10, 50, 100), "correlation_steps": (0, 1, 5, 10, 50, 100), "title": "Gradient vs Hessian along GD's path"}

PRESET = Study(
    name="grad-hessian-gd",
    title="Per-class gradient norms and Hessian block traces along GD's path",
    v1_figure="Fig 5",
    neurips_figure="appendix gradient/Hessian figure (GD path)",
    aliases=("v1-fig5",),
    scales={
        "small": {**COMMON, "problem_options": {"m": 8}, "lr": "protocol", "scale": "small"},
        "paper": {**COMMON, "problem_options": {"m": 11}, "lr": 10**-2.5, "steps": 100, "lr_reason": "fixed: 10^-2.5, the step size the paper plotted for GD without momentum (its protocol's choice at m = 11)"},
    },
    compute=grad_hessian_study,
    minutes={"small": (4.0, 0.5), "paper": (60.0, 2.0)},
    notes=__doc__ or "",
)
