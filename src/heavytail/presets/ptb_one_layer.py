"""v1 Fig 10: a one-layer transformer on TinyPTB trained whole with full-batch GD+m and Adam+m.

    heavytail reproduce ptb-one-layer --data-dir ../shared/data     # small: 5,600 targets, width 64, ~2 min
    heavytail reproduce ptb-one-layer --scale paper --device cuda   # needs ptb.train.txt (the paper's vocabulary)
    heavytail reproduce ptb-one-layer -p log_mode=train             # log losses with dropout on, as the paper's code (D12)

The model is one post-LN encoder block (`tinyptb-one-layer`: embedding·√d + sinusoidal positions,
single-head causal attention, ReLU MLP, dropout 0.2, untied head; the v1 text's "simplified
transformer", decisions D5), every parameter trained with deterministic full-batch steps: the gap
between GD and Adam on rare tokens is not a product of mini-batch noise. Logged losses come from an
evaluation pass with dropout off (decisions D12).

Paper scale: TinyPTB (B = 1,024, 2 windows of 35: 71,680 targets, PTB train's 9,920-word
vocabulary), width = MLP width = 1,200, 500 steps, sparse grid 10^-6..10^1, half powers within a
decade of the best with 3 seeds (the authors' grid runs were 3,200 epochs long; the figure shows 500).

Small scale (2 CPU cores): the data of `ptb-last-layer`'s small scale (the first 5,680 tokens of
PTB valid in B = 80 streams, W = 2 windows: 5,600 targets, 1,532 classes), width = MLP width = 64,
50 steps, sparse grids from the paper's dense windows, half powers within half a decade, 3 seeds.
GD's progress on a class seen once grows with steps × (its count / the most frequent count): the
paper's figure has 500 steps over a most frequent count of ~4,000 (0.12), the small scale 50 over 372
(0.13). At 100 steps (0.27) GD+m's protocol choice, 10^-0.5, brings the rarest group to 0.43× its
initial loss (Adam+m: 0.00×): the gap remains but GD fits the rare tokens too (decisions "TinyPTB at
small scale").
"""

from fractions import Fraction

from heavytail.presets.base import Curve, Preset, Scale
from heavytail.presets.ptb_last_layer import SMALL_DATA as LAST_LAYER_DATA
from heavytail.sweep.protocol import GridConfig

SMALL_DATA = {**LAST_LAYER_DATA, "width": 64}
SMALL_STEPS, PAPER_STEPS = 50, 500  # half the last layer's horizon, as in the paper (1,000 and 500)
SMALL_GRIDS = {
    "gd": (-2, 0), "gd+m": (-3, -1), "adam": (-5, -3), "adam+m": (-4, -2),
    "normgd": (-1, 1), "normgd+m": (-2, 0), "sign": (-4, -2), "sign+m": (-5, -3),
}  # fmt: skip  (the paper's dense windows for the one-layer model, section 5.4)


def one_layer_scales(optimizers: tuple[str, ...]) -> dict[str, Scale]:
    """The small and paper scales of the one-layer figures for ``optimizers`` (shared with `ptb-one-layer-optimizers`)."""
    small_curves = {name: Curve(name, grid=GridConfig(*SMALL_GRIDS[name], dense_radius=Fraction(1, 2))) for name in optimizers}
    return {
        "small": Scale(problem_options=SMALL_DATA, steps=SMALL_STEPS, curves=small_curves),
        "paper": Scale(problem_options={}, steps=PAPER_STEPS, curves={name: Curve(name, grid=GridConfig(-6, 1)) for name in optimizers}),
    }


PRESET = Preset(
    name="ptb-one-layer",
    title="One-layer transformer on TinyPTB, full batch: GD+m vs Adam+m",
    v1_figure="Fig 10",
    neurips_figure="appendix (number unverified)",
    aliases=("v1-fig10",),
    problem="tinyptb-one-layer",
    scales=one_layer_scales(("gd+m", "adam+m")),
    notes=__doc__ or "",
)
