"""v1 Fig 16 (App. E.2): a huge GD step first blows the loss up by orders of magnitude, then wins.

    heavytail reproduce linear-large-step                        # m = 7, 1 000 steps
    heavytail reproduce linear-large-step --scale paper          # m = 7, 10 000 steps (1 000 shown)

GD without momentum with step sizes 10^3 and 10^-1, both fixed by the paper, on the small problem
(m = 7 as in the authors' code, decisions D2). The figure shows the overall loss on a log scale over
the first 1 000 steps; paper scale trains the 10 000 steps the authors ran.
"""

from fractions import Fraction

from heavytail.presets.base import Curve, Preset, Scale

CURVES = {"gd, large step": Curve("gd", fixed=Fraction(3)), "gd, small step": Curve("gd", fixed=Fraction(-1))}

PRESET = Preset(
    name="linear-large-step",
    title="GD with a huge (10^3) and a small (10^-1) step size: overall loss",
    v1_figure="Fig 16",
    neurips_figure="appendix (number unverified)",
    aliases=("v1-fig16",),
    scales={
        "small": Scale(problem_options={"m": 7}, steps=1_000, curves=CURVES, show_steps=1_000),
        "paper": Scale(problem_options={"m": 7}, steps=10_000, curves=CURVES, show_steps=1_000),
    },
    figure="overall",
    notes=__doc__ or "",
)
