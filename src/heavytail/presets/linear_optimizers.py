"""v1 Fig 12: GD, Adam, normalized GD and sign descent, each with and without momentum, on the linear model.

    heavytail reproduce linear-optimizers                        # small: m = 8, 150 steps
    heavytail reproduce linear-optimizers --scale paper --device cuda

The v1 caption says "Gaussian" heavy-tailed labels, but the authors' code uses the uniform inputs of
Fig 3 (our decisions D7): so do we. Paper scale: m = 11, 1 000 steps, sparse grid 10^-6..10^0 for
every optimizer. Small scale: m = 8, 150 steps, sparse grids one decade around where each
optimizer's step size lands (sign descent's per-coordinate steps are orders of magnitude smaller),
and a dense window of half a decade on each side of the sparse best (still 3 seeds; the window
grows if the best lands on its edge), to fit 8 optimizers in about 8 minutes on 2 cores.
The NeurIPS version keeps this figure in its appendix (its number there is not verified).
"""

from fractions import Fraction

from heavytail.presets.base import Curve, Preset, Scale
from heavytail.sweep.protocol import GridConfig

SMALL_GRIDS = {
    "gd": (-3, 0), "gd+m": (-3, 0), "adam": (-4, -1), "adam+m": (-4, -1),
    "normgd": (-2, 1), "normgd+m": (-3, 0), "sign": (-5, -2), "sign+m": (-6, -3),
}  # fmt: skip

PRESET = Preset(
    name="linear-optimizers",
    title="Linear model: GD, Adam, normalized GD and sign descent (± momentum)",
    v1_figure="Fig 12",
    neurips_figure="appendix (number unverified)",
    aliases=("v1-fig12",),
    scales={
        "small": Scale(
            problem_options={"m": 8},
            steps=150,
            curves={
                name: Curve(name, grid=GridConfig(lo, hi, dense_radius=Fraction(1, 2)))
                for name, (lo, hi) in SMALL_GRIDS.items()
            },
        ),
        "paper": Scale(
            problem_options={"m": 11},
            steps=1000,
            curves={name: Curve(name, grid=GridConfig(-6, 0)) for name in SMALL_GRIDS},
        ),
    },
    notes=__doc__ or "",
)
