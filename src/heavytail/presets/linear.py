"""v1 Fig 3 / NeurIPS Fig 4: softmax regression on Random Heavy-Tailed Labels, GD vs Adam (± momentum).

    heavytail reproduce linear                                   # small: m = 8, 150 steps, ~6 min on 2 cores
    heavytail reproduce linear --scale paper --device cuda       # paper: m = 11, 1 000 steps

Paper scale follows the authors' grids (sparse 10^-6..10^0 with seed 0, then half powers around the
best with seeds 0-2) and trains 1 000 epochs (v1 plots all of them, the NeurIPS version the first 150).
The small scale keeps the protocol and shrinks the problem to m = 8 (n 2 048, d 2 304, c 255, a
128-fold frequency range) and the horizon to the 150 steps the NeurIPS version plots; its sparse
grids start one decade around where the step sizes land, and the protocol extends them if needed.
"""

from heavytail.presets.base import Curve, Preset, Scale
from heavytail.sweep.protocol import GridConfig

OPTIMIZERS = ("gd", "gd+m", "adam", "adam+m")


def _curves(grids: dict[str, tuple[int, int]]) -> dict[str, Curve]:
    return {name: Curve(name, grid=GridConfig(lo, hi)) for name, (lo, hi) in grids.items()}


PRESET = Preset(
    name="linear",
    title="Linear model on Random Heavy-Tailed Labels: GD vs Adam",
    v1_figure="Fig 3",
    neurips_figure="Fig 4",
    aliases=("v1-fig3", "neurips-fig4"),
    scales={
        "small": Scale(
            problem_options={"m": 8},
            steps=150,
            curves=_curves({"gd": (-3, 0), "gd+m": (-3, 0), "adam": (-4, -1), "adam+m": (-4, -1)}),
        ),
        "paper": Scale(
            problem_options={"m": 11},
            steps=1000,
            curves=_curves({name: (-6, 0) for name in OPTIMIZERS}),
        ),
    },
    notes=__doc__ or "",
)
