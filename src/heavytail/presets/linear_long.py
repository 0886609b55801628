"""v1 Fig 15 (App. E.1): GD does fit the rare classes, given enough steps; three horizons of one run.

    heavytail reproduce linear-long                              # m = 7, 10 000 steps, ~1 min on 2 cores

GD without momentum at the paper's step size 10^-2 on the small problem, shown after 100, 1 000 and
10 000 steps. The text says the small problem has m = 8, the authors' code uses m = 7 (decisions
D2); we use the code's m = 7 (n 896, d 1 024, c 127). The run is cheap, so both scales are the
paper's; the step size is fixed by the paper (a per-class figure, not a grid search).
"""

from fractions import Fraction

from heavytail.presets.base import Curve, Preset, Scale

SCALE = Scale(
    problem_options={"m": 7},
    steps=10_000,
    curves={"gd": Curve("gd", fixed=Fraction(-2))},
    horizons=(100, 1_000, 10_000),
)

PRESET = Preset(
    name="linear-long",
    title="GD on the small linear problem after 100, 1 000 and 10 000 steps",
    v1_figure="Fig 15",
    neurips_figure="appendix (number unverified)",
    aliases=("v1-fig15",),
    scales={"small": SCALE, "paper": SCALE},
    figure="horizons",
    notes=__doc__ or "",
)
