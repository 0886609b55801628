"""v1 Fig 7: the two-layer transformer on PTB trained on the 1/sqrt(pi_k)-weighted loss; the plain loss is plotted.

    heavytail reproduce ptb-reweighted --data-dir ../shared/data             # small: as ptb-two-layer's
    heavytail reproduce ptb-reweighted --scale paper --device cuda           # paper: PTB train, width 1000

Reweighting the loss by 1/sqrt(pi_k) (``-p loss_weights=1/2``: weighted mean over each mini-batch,
normalised by its weight sum) lets SGD make progress on every frequency group, so the imbalance, not
the noise or the loss, is what holds SGD back. SGD and Adam, each with and without momentum; the
figure and the protocol use the unweighted training loss (what the paper plots), the weighted one
is stored beside it (``objective``).

Scales: those of ``ptb-two-layer`` (its docstring) with the weighted loss. Paper grids (section 5.4):
sparse SGD±m 10^-3..10^0 and Adam±m 10^-5..10^-2 with seed 0, then half powers one decade around the
best with seeds 0-2. Small: sparse grids of two powers of ten, half powers ½ decade around the best
with seed 0. Compare its SGD curves with ``ptb-two-layer``'s at the same scale.
"""


from heavytail.presets.base import Curve, Preset, Scale
from heavytail.presets.ptb_two_layer import PAPER_HORIZON, SMALL_DATA, SMALL_GRID, SMALL_HORIZON
from heavytail.sweep.protocol import GridConfig

WEIGHTS = {"loss_weights": 0.5}  # 1/sqrt(pi_k)

PRESET = Preset(
    name="ptb-reweighted",
    title="Two-layer transformer on PTB, loss weighted by 1/sqrt(pi): unweighted loss of SGD and Adam (+/- m)",
    v1_figure="Fig 7",
    neurips_figure="appendix (number unverified)",
    aliases=("v1-fig7",),
    problem="ptb-two-layer",
    scales={
        "small": Scale(
            problem_options={**SMALL_DATA, **WEIGHTS},
            **SMALL_HORIZON,
            curves={
                "gd": Curve("gd", grid=GridConfig(-1, 0, **SMALL_GRID)),
                "gd+m": Curve("gd+m", grid=GridConfig(-1, 0, **SMALL_GRID)),
                "adam": Curve("adam", grid=GridConfig(-3, -2, **SMALL_GRID)),
                "adam+m": Curve("adam+m", grid=GridConfig(-3, -2, **SMALL_GRID)),
            },
        ),
        "paper": Scale(
            problem_options=WEIGHTS,
            **PAPER_HORIZON,
            curves={name: Curve(name, grid=GridConfig(lo, hi)) for name, (lo, hi) in
                    {"gd": (-3, 0), "gd+m": (-3, 0), "adam": (-5, -2), "adam+m": (-5, -2)}.items()},  # fmt: skip
        ),
    },
    notes=__doc__ or "",
)
