"""v1 Fig 9: the two-layer transformer on PTB with mini-batches, SGD+m vs Adam+m, 10 frequency groups.

    heavytail reproduce ptb-two-layer --data-dir ../shared/data              # small: PTB valid, width 32
    heavytail reproduce ptb-two-layer --scale paper --device cuda            # paper: PTB train, width 1000

Stochastic mini-batches do not remove the gap: SGD+m still leaves the rare tokens where they
started while Adam+m fits them. A mini-batch is one window of B parallel streams × 35 tokens, the
windows in the same order every epoch (decisions D13).

Paper scale: PTB train (the file must be in the data directory; vocabulary of 9,920 words), the
paper's two-layer post-LN transformer (width 1000, 4 heads, FF 1000, dropout 0.2, ≈ 31.9 M
parameters), B = 512 (52 steps an epoch), 100 epochs; every half power of SGD+m 10^-3..10^-1 and of
Adam+m 10^-5..10^-2 with seeds 0-2, as the authors ran them (no extension).

Small scale (2 CPU cores): the whole PTB valid split (73,339 tokens; the local data have no PTB
train) with the vocabulary of its own word types (5,980; every class has samples; the most frequent
word is ~4,000 times as frequent as the rarest), the same architecture at width 32 (FF 32, 4 heads,
2 layers, dropout 0.2), B = 64 (33 steps an epoch, ~3 % of the data a step where the paper has
~2 %), 12 epochs; sparse grids of two powers of ten around where the step sizes land, extended by
the protocol if needed, and half powers ½ decade around the best with seed 0.

The protocol scores each run by its training loss at the end: the exact pass over all training
windows at the final iterate (see decisions.md, "Stochastic runs under the protocol").
"""

from fractions import Fraction

from heavytail.presets.base import Curve, Preset, Scale
from heavytail.sweep.protocol import GridConfig

SMALL_DATA = {"source": "valid", "vocab": "used", "streams": 64, "width": 32, "ff_width": 32}  # shared with ptb-reweighted
SMALL_HORIZON = {"epochs": 12, "batch_size": 64}
SMALL_GRID = {"dense_seeds": (0,), "dense_radius": Fraction(1, 2)}
PAPER_HORIZON = {"epochs": 100, "batch_size": 512}


def every_half_power(lo: int, hi: int) -> GridConfig:
    """The authors' dense grid: every half power in 10^lo..10^hi with seeds 0-2, no extension."""
    return GridConfig(lo, hi, dense_radius=Fraction(hi - lo), max_extensions=0)


PRESET = Preset(
    name="ptb-two-layer",
    title="Two-layer transformer on PTB, mini-batches: SGD+m vs Adam+m",
    v1_figure="Fig 9",
    neurips_figure="appendix (number unverified)",
    aliases=("v1-fig9",),
    problem="ptb-two-layer",
    scales={
        "small": Scale(
            problem_options=SMALL_DATA,
            **SMALL_HORIZON,
            curves={
                "gd+m": Curve("gd+m", grid=GridConfig(-1, 0, **SMALL_GRID)),
                "adam+m": Curve("adam+m", grid=GridConfig(-3, -2, **SMALL_GRID)),
            },
        ),
        "paper": Scale(
            problem_options={},
            **PAPER_HORIZON,
            curves={
                "gd+m": Curve("gd+m", grid=every_half_power(-3, -1)),
                "adam+m": Curve("adam+m", grid=every_half_power(-5, -2)),
            },
        ),
    },
    notes=__doc__ or "",
)
