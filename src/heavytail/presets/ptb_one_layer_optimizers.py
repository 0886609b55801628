"""v1 Fig 13: the one-layer transformer on TinyPTB with GD, Adam, normalized GD and sign descent (± momentum).

    heavytail reproduce ptb-one-layer-optimizers --data-dir ../shared/data     # small: ~3 min on 2 idle cores
    heavytail reproduce ptb-one-layer-optimizers --scale paper --device cuda

Sizes, grids and seeds are those of `ptb-one-layer` (its GD+m and Adam+m runs are shared through the
store). Paper scale: 500 steps, sparse grid 10^-6..10^1 for every optimizer, half powers within a
decade of the best with 3 seeds. Small scale: sparse grids from the paper's dense windows, half
powers within half a decade of the sparse best with 3 seeds.
"""

from heavytail.presets.base import Preset
from heavytail.presets.ptb_one_layer import SMALL_GRIDS, one_layer_scales

PRESET = Preset(
    name="ptb-one-layer-optimizers",
    title="One-layer transformer on TinyPTB: GD, Adam, normalized GD and sign descent (± momentum)",
    v1_figure="Fig 13",
    neurips_figure="appendix (number unverified)",
    aliases=("v1-fig13",),
    problem="tinyptb-one-layer",
    scales=one_layer_scales(tuple(SMALL_GRIDS)),
    notes=__doc__ or "",
)
