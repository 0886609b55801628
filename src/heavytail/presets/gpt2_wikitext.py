"""v1 Fig 1 / NeurIPS Fig 1 (validation: NeurIPS appendix): GPT-2 on WikiText, SGD+m vs Adam, 10 groups.

    heavytail reproduce gpt2-wikitext --data-dir ../shared/data          # small: local WikiText-2, 2 CPU cores
    heavytail reproduce gpt2-wikitext --scale paper --device cuda        # paper: WikiText-103, one GPU
    torchrun --nproc-per-node 8 -m heavytail reproduce gpt2-wikitext --scale paper --device cuda
    heavytail reproduce gpt2-wikitext --scale paper --device cuda --executor slurm -s gpus_per_node=1 -s timeout_min=240
    heavytail reproduce gpt2-wikitext --scale paper-sweep --device cuda  # the paper's 5,000-step step-size sweep

Paper scale: GPT-2 small (12 pre-LN layers, width 768, 12 heads, ≈163 M parameters) on WikiText-103
with SentencePiece BPE, 1,024-token windows, 512 windows a step (decisions D9), 15,000 steps, rows
and validation every 100 steps, a checkpoint every 500 steps. The step sizes are the paper's,
SGD+m 10^-2 and Adam 10^-4.5: the authors chose them with a sweep at 5,000 steps (seeds 0 and 1),
which ``paper-sweep`` runs with the protocol over the authors' grids; ``paper`` trains the figure's
two runs at 15,000 steps (decisions D34).

Small scale (2 CPU cores): a 2-layer decoder of the same shape (width 128, 4 heads, no dropout) on
the first 65,536 BPE tokens (8,000-piece model, vocabulary and tokenizer from the local valid +
test files) of the local WikiText-2 validation file, 64-token windows, 16 windows a step, 400 steps,
validation on the first 16,384 tokens of the test file; the protocol picks both step sizes
(sparse powers of ten, then half powers within half a decade with seed 0, as the CNN presets).
"""

from fractions import Fraction

from heavytail.presets.base import Curve, Preset, Scale
from heavytail.sweep.protocol import GridConfig

SMALL = {
    "corpus": "tinywikitext-2",
    "vocab_size": 8000,
    "seq_len": 64,
    "layers": 2,
    "width": 128,
    "heads": 4,
    "dropout": 0.0,
    "train_tokens": 65_536,
    "valid_tokens": 16_384,
    "log_every": 50,
}
SMALL_GRID = {"dense_seeds": (0,), "dense_radius": Fraction(1, 2)}
PAPER_SWEEP_GRID = {"sparse_seeds": (0, 1), "dense_seeds": (0, 1), "dense_radius": Fraction(1)}

PRESET = Preset(
    name="gpt2-wikitext",
    title="GPT-2 on WikiText: SGD+m vs Adam",
    v1_figure="Fig 1",
    neurips_figure="Fig 1 (+ validation, appendix)",
    aliases=("v1-fig1", "neurips-fig1"),
    problem="gpt2-wikitext",
    scales={
        "small": Scale(
            problem_options=SMALL,
            steps=400,
            batch_size=16,
            curves={
                "gd+m": Curve("gd+m", grid=GridConfig(-2, 0, **SMALL_GRID)),
                "adam+m": Curve("adam+m", grid=GridConfig(-4, -2, **SMALL_GRID)),
            },
        ),
        "paper": Scale(
            problem_options={},
            steps=15_000,
            batch_size=512,
            checkpoint_every=500,
            curves={"gd+m": Curve("gd+m", fixed=Fraction(-2)), "adam+m": Curve("adam+m", fixed=Fraction(-9, 2))},
        ),
        "paper-sweep": Scale(
            problem_options={},
            steps=5_000,
            batch_size=512,
            checkpoint_every=500,
            curves={
                "gd+m": Curve("gd+m", grid=GridConfig(-4, -1, **PAPER_SWEEP_GRID)),
                "adam+m": Curve("adam+m", grid=GridConfig(-5, 0, **PAPER_SWEEP_GRID)),
            },
        ),
    },
    notes=__doc__ or "",
)
