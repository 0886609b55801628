"""Cost of ``GroupTracker`` in a GPT-style training loop, against the same loop without it, and of ``update`` per token.

Measures, in one run:

1. loop: the GPT of ``examples/track_gpt_wikitext2.py`` (plain torch.nn; ``--layers``, ``--width``,
   ``--context`` tokens, ``--batch-size`` windows) on Zipf-distributed tokens over ``--vocab`` words,
   AdamW; forward, per-token cross-entropy, backward, step. "tracked" adds ``tracker.update(losses, y)``
   every step and ``tracker.log(step)`` every ``--log-every`` steps, the rows written to a store in a
   temporary directory (one row file each, as in real use). Same weights, same batches. ``close()``,
   once per run, is timed apart.
   Goal: tracked / bare - 1 <= 2 %.
2. update alone: ``tracker.update(losses, targets)`` on ``--tokens`` tokens, per token; and with the
   logits (group accuracy too), which reads the (tokens, vocab) logits once more.

Loop timings are interleaved (bare, tracked, bare, ...) after a warm-up round, medians over
``--repeats``. Other busy processes skew timings; the 1-minute load average is printed.

Run:  python bench/tracker_overhead.py [--context 1024] [--steps 20] [--repeats 5] [--device cpu|cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from timing import clock

import heavytail as ht

GOAL = 0.02
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "track_gpt_wikitext2.py"


def load_gpt() -> type:
    """The example's GPT class (plain torch.nn), imported from its file."""
    spec = importlib.util.spec_from_file_location("track_gpt_wikitext2", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.GPT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--context", type=int, default=256, help="tokens per window (1024 on a GPU)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed repetition")
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=1 << 16, help="tokens per update() in the update-alone timing")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device, load = torch.device(args.device), os.getloadavg()[0]

    generator = torch.Generator().manual_seed(0)
    zipf = 1.0 / torch.arange(1, args.vocab + 1, dtype=torch.float64)
    tokens = torch.multinomial(
        zipf, args.steps * args.batch_size * (args.context + 1), replacement=True, generator=generator
    )
    windows = tokens.view(args.steps, args.batch_size, args.context + 1).to(device)
    counts = torch.bincount(tokens, minlength=args.vocab)
    GPT = load_gpt()
    torch.manual_seed(0)
    model = GPT(args.vocab, args.context, args.width, args.layers).to(device)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    store = tempfile.mkdtemp(prefix="heavytail-bench-")

    trackers: list[ht.GroupTracker] = []

    def loop(tracked: bool) -> Callable[[], object]:
        model.load_state_dict(init)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        tracker = ht.GroupTracker(counts, name="bench", store=store) if tracked else None
        trackers.extend([tracker] if tracked else [])

        def run() -> None:
            for step in range(args.steps):
                x, y = windows[step, :, :-1], windows[step, :, 1:]
                losses = F.cross_entropy(model(x).flatten(0, -2), y.flatten(), reduction="none")
                losses.mean().backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if tracker is not None:
                    tracker.update(losses, y)
                    if step % args.log_every == 0:
                        tracker.log(step)

        return run

    times: dict[str, list[float]] = {"bare": [], "tracked": []}
    closing: list[float] = []
    for rep in range(args.repeats + 1):  # repetition 0 is the warm-up
        for name in times:
            seconds = clock(loop(name == "tracked"), device) / args.steps
            if rep:
                times[name].append(seconds)
        closing.append(clock(trackers.pop().close, device))  # once per run: gather the rows, write the result

    targets = torch.multinomial(zipf, args.tokens, replacement=True, generator=generator).to(device)
    logits = torch.randn(args.tokens, args.vocab, device=device)
    losses = F.cross_entropy(logits, targets, reduction="none")
    per_token: dict[str, float] = {}
    for label, logits_arg in (("update(losses, targets)", None), ("update(losses, targets, logits)", logits)):
        tracker = ht.GroupTracker(counts)  # fresh: accuracy is counted only while every update brings logits
        runs = [
            clock(lambda given=logits_arg: tracker.update(losses, targets, given), device)
            for _ in range(args.repeats + 1)
        ][1:]
        per_token[label] = statistics.median(runs) / args.tokens

    bare, tracked = (statistics.median(times[k]) for k in ("bare", "tracked"))
    tokens_per_step = args.batch_size * args.context
    overhead = tracked / bare - 1
    print(
        f"GPT {args.layers} layers, width {args.width}, vocab {args.vocab}, {args.batch_size} x {args.context} tokens a step; "
        f"device={device} threads={torch.get_num_threads()} torch={torch.__version__}; {args.steps} steps x "
        f"{args.repeats} interleaved repeats (+1 warm-up), medians; 1-min load avg at start {load:.2f}"
    )
    print(f"\n{'':10s}{'ms/step':>10s}{'min':>9s}{'max':>9s}")
    for name, t in times.items():
        print(f"{name:10s}{statistics.median(t) * 1e3:10.2f}{min(t) * 1e3:9.2f}{max(t) * 1e3:9.2f}")
    print(
        f"\noverhead  tracked/bare - 1 = {overhead:+.2%}   goal <= {GOAL:.0%}   {'PASS' if overhead <= GOAL else 'MISS'}"
        f"   (from the minima: {min(times['tracked']) / min(times['bare']) - 1:+.2%}; "
        f"update + log every {args.log_every} steps, rows written to a store)"
    )
    for label, seconds in per_token.items():
        print(
            f"{label:34s} {seconds * 1e9:8.2f} ns/token  = {seconds * tokens_per_step / bare:.3%} of a training step's time"
            f" ({args.tokens} tokens a call)"
        )
    print(
        f"close() once per run (rows gathered into history.npz, result.json): {statistics.median(closing[1:]) * 1e3:.1f} ms"
    )
    return 1 if args.check and overhead > GOAL else 0


if __name__ == "__main__":
    sys.exit(main())
