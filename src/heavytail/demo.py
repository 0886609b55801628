"""The README's first command: the paper's linear-model figure (v1 Fig 3, NeurIPS Fig 4) on a laptop.

Softmax regression on Random Heavy-Tailed Labels with m = 9 (n 4 608, d 5 120, c 511), full batch,
150 steps (the horizon the NeurIPS version plots), GD and Adam with and without momentum. The step
sizes are the ones the paper's protocol (sparse + half-decade grid, max over seeds, stability
fallback) selects at this scale; see docs/decisions.md for the grid they were selected from.
"""

from __future__ import annotations

from heavytail.spec import RunSpec

DEMO_TITLE = "Linear model on Random Heavy-Tailed Labels, m = 9 (paper: v1 Fig 3 / NeurIPS Fig 4)"
DEMO_PROBLEM = {"m": 9}
DEMO_STEPS = 150
DEMO_STEP_SIZES = {"gd": 10**-0.5, "gd+m": 10**-2.0, "adam": 10**-3.0, "adam+m": 10**-3.0}


def demo_specs() -> list[RunSpec]:
    """One full-batch run per optimizer, seed 0."""
    return [
        RunSpec(problem="linear", problem_options=DEMO_PROBLEM, optimizer=name, lr=lr, steps=DEMO_STEPS)
        for name, lr in DEMO_STEP_SIZES.items()
    ]
