"""v1 Fig 11: the CNN on MNIST, MNIST + Barcoded, and Barcoded-only, GD+m vs Adam+m, overall loss.

    heavytail reproduce cnn-barcoded-only --data-dir ../shared/data   # small: the 10k MNIST test images
    heavytail reproduce cnn-barcoded-only --scale paper --device cuda

The control: on the balanced barcoded classes alone, and on plain MNIST, GD+m trains about as fast
as Adam+m; only their heavy-tailed union separates them. The sizes are those of `cnn-barcoded` at
each scale (so the MNIST and MNIST + Barcoded runs are shared with it through the store); the
barcoded-only data are its barcoded classes alone. Paper scale trains 600 steps and shows the first
400, as the paper does (grids: GD±m, Adam±m 10^-5..10^0 with 3 seeds, E19).
"""

from heavytail.presets.base import Curve, Preset, Scale
from heavytail.presets.cnn_barcoded import SMALL_BARCODES, SMALL_CNN, SMALL_CURVES, SMALL_VARIANTS
from heavytail.sweep.protocol import GridConfig

PRESET = Preset(
    name="cnn-barcoded-only",
    title="CNN on MNIST, MNIST + Barcoded and Barcoded-only: GD+m vs Adam+m",
    v1_figure="Fig 11",
    neurips_figure="appendix (number unverified)",
    aliases=("v1-fig11",),
    problem="mnist-barcoded",
    variants={"mnist": {}, "mnist-barcoded": {}, "barcoded-only": {}},
    variant_problems={"mnist": "mnist", "barcoded-only": "barcoded-only"},
    figure="overall",
    scales={
        "small": Scale(
            problem_options=SMALL_CNN,
            variant_options={**SMALL_VARIANTS, "barcoded-only": SMALL_BARCODES},
            steps=50,
            curves=SMALL_CURVES,
        ),
        "paper": Scale(
            problem_options={},
            steps=600,
            curves={name: Curve(name, grid=GridConfig(-5, 0, sparse_seeds=(0, 1, 2))) for name in ("gd+m", "adam+m")},
            show_steps=400,
        ),
    },
    notes=__doc__ or "",
)
