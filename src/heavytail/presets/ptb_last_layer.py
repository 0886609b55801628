"""v1 Fig 4 / NeurIPS Fig 5: a one-layer attention-only transformer on TinyPTB, only its last layer trained.

    heavytail reproduce ptb-last-layer --data-dir ../shared/data     # small: 5,600 targets, width 128, ~10 min on 2 idle cores
    heavytail reproduce ptb-last-layer --scale paper --device cuda   # needs ptb.train.txt (the paper's vocabulary)

GD, Adam, normalized GD and sign descent, each with and without momentum, train the head of the
frozen attention-only model (`tinyptb-last-layer`: embedding and attention frozen, their output
computed once per run, full-batch steps). Sign descent and Adam fit the rare tokens; GD and
normalized GD leave them near their initial loss; momentum helps overall but not with the gap.

Paper scale: TinyPTB as the paper builds it (B = 1,024 streams, 2 windows of 35: 71,680 targets;
the vocabulary of the PTB train split, 9,920 words), width 1,200, 1,000 full-batch steps (what the
figure shows; the authors' grid runs were 3,200 epochs long), sparse grid 10^-6..10^0 for every
optimizer, half powers within a decade of the best with 3 seeds.

Small scale (2 CPU cores): the first B·(35W + 1) tokens of PTB valid with B = 80 streams and W = 2
windows (5,600 targets; the vocabulary is the 1,532 word types of those tokens, decisions "TinyPTB at
small scale"), width 128, 100 steps. The head (128 × 1,532) can fit 5,600 targets, as the paper's
(1,200 × 9,920) can fit 71,680: the over-parameterisation is kept by using fewer targets, not a
narrower model. Sparse grids from the paper's dense windows (the protocol extends them while the
best sits on an edge), half powers within half a decade of the sparse best, 3 seeds.
"""

from fractions import Fraction

from heavytail.presets.base import Curve, Preset, Scale
from heavytail.sweep.protocol import GridConfig

OPTIMIZERS = ("gd", "gd+m", "adam", "adam+m", "normgd", "normgd+m", "sign", "sign+m")
SMALL_DATA = {"streams": 80, "windows": 2, "width": 128, "vocab": "used"}
SMALL_GRIDS = {
    "gd": (-2, 0), "gd+m": (-2, 0), "adam": (-4, -2), "adam+m": (-4, -2),
    "normgd": (-3, 0), "normgd+m": (-3, 0), "sign": (-5, -3), "sign+m": (-5, -3),
}  # fmt: skip  (the paper's dense windows, section 5.4)

PRESET = Preset(
    name="ptb-last-layer",
    title="Attention-only transformer on TinyPTB, last layer trained: GD, Adam, normalized GD, sign descent (± momentum)",
    v1_figure="Fig 4",
    neurips_figure="Fig 5",
    aliases=("v1-fig4", "neurips-fig5"),
    problem="tinyptb-last-layer",
    scales={
        "small": Scale(
            problem_options=SMALL_DATA,
            steps=100,
            curves={
                name: Curve(name, grid=GridConfig(lo, hi, dense_radius=Fraction(1, 2)))
                for name, (lo, hi) in SMALL_GRIDS.items()
            },
        ),
        "paper": Scale(
            problem_options={},
            steps=1000,
            curves={name: Curve(name, grid=GridConfig(-6, 0)) for name in OPTIMIZERS},
        ),
    },
    notes=__doc__ or "",
)
