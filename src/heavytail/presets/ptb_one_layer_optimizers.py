"""v1 Fig 13: the one-layer transformer on TinyPTB with GD, Adam, normalized GD and sign descent (± momentum).

    heavytail reproduce ptb-one-layer-optimizers --data-dir ../shared/data     # small: ~3 min on 2 idle cores
    heavytail reproduce ptb-one-layer-optimizers --scale paper --device cuda

Sizes are those of `ptb-one-layer` (its seed-0 runs are shared through the store). Paper scale:
500 steps, sparse grid 10^-6..10^1 for every optimizer, half powers within a decade of the best
with 3 seeds. Small scale: sparse grids from the paper's dense windows, half powers within half a
decade of the sparse best with one seed (three for eight optimizers do not fit in 15 minutes).
"""

from fractions import Fraction

from heavytail.presets.base import Curve, Preset, Scale
from heavytail.presets.ptb_one_layer import PAPER_STEPS, SMALL_DATA, SMALL_GRIDS, SMALL_STEPS
from heavytail.sweep.protocol import GridConfig

PRESET = Preset(
    name="ptb-one-layer-optimizers",
    title="One-layer transformer on TinyPTB: GD, Adam, normalized GD and sign descent (± momentum)",
    v1_figure="Fig 13",
    neurips_figure="appendix (number unverified)",
    aliases=("v1-fig13",),
    problem="tinyptb-one-layer",
    scales={
        "small": Scale(
            problem_options=SMALL_DATA,
            steps=SMALL_STEPS,
            curves={
                name: Curve(name, grid=GridConfig(lo, hi, dense_seeds=(0,), dense_radius=Fraction(1, 2)))
                for name, (lo, hi) in SMALL_GRIDS.items()
            },
        ),
        "paper": Scale(
            problem_options={},
            steps=PAPER_STEPS,
            curves={name: Curve(name, grid=GridConfig(-6, 1)) for name in SMALL_GRIDS},
        ),
    },
    notes=__doc__ or "",
)
