"""v1 Fig 14: the CNN on MNIST + Barcoded with GD, Adam, normalized GD and sign descent, each ± momentum.

    heavytail reproduce cnn-optimizers --data-dir ../shared/data      # small: the 10k MNIST test images
    heavytail reproduce cnn-optimizers --scale paper --device cuda

As on the linear model and the transformers, sign descent and Adam fit the barcoded (rare) group
while GD and normalized GD leave it near its initial loss. Sizes are those of `cnn-barcoded` (its
GD+m and Adam+m runs are shared through the store). Paper scale: 300 steps, sparse grid 10^-5..10^1
for every optimizer, half powers around the best with 3 seeds. Small scale: sparse grids of two
powers of ten around where each optimizer's step size lands (the protocol extends them while the
best sits on an edge), half powers within half a decade of the sparse best, one seed.
"""

from heavytail.presets.base import Curve, Preset, Scale
from heavytail.presets.cnn_barcoded import SMALL_DATA, SMALL_GRID
from heavytail.sweep.protocol import GridConfig

SMALL_GRIDS = {
    "gd": (-2, -1), "gd+m": (-3, 0), "adam": (-3, -2), "adam+m": (-4, -1),
    "normgd": (-1, 0), "normgd+m": (-2, -1), "sign": (-3, -2), "sign+m": (-4, -3),
}  # fmt: skip  (gd+m and adam+m as in cnn-barcoded, whose runs are reused)

PRESET = Preset(
    name="cnn-optimizers",
    title="CNN on MNIST + Barcoded: GD, Adam, normalized GD and sign descent (± momentum)",
    v1_figure="Fig 14",
    neurips_figure="appendix (number unverified)",
    aliases=("v1-fig14",),
    problem="mnist-barcoded",
    scales={
        "small": Scale(
            problem_options=SMALL_DATA,
            steps=50,
            curves={name: Curve(name, grid=GridConfig(lo, hi, **SMALL_GRID)) for name, (lo, hi) in SMALL_GRIDS.items()},
        ),
        "paper": Scale(
            problem_options={},
            steps=300,
            curves={name: Curve(name, grid=GridConfig(-5, 1)) for name in SMALL_GRIDS},
        ),
    },
    notes=__doc__ or "",
)
