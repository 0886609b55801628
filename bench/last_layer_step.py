"""Cost of a last-layer step on TinyPTB: heavytail's loop on cached features, a bare loop, and the naive route.

Measures, in one run, on ``tinyptb-last-layer`` (default: the small scale of ``reproduce ptb-last-layer``,
B = 80 streams, W = 2 windows, 5,600 targets, 1,532 classes, width 128):

1. ours: ``heavytail.train.train`` with ``make_optimizer("gd+m")`` and a ``HistoryRecorder`` (every
   per-class loss and accuracy on) on the problem with ``features=cached``: the frozen embedding and
   attention ran once, at build time; a step is the head's forward and backward. Whole call / steps.
2. bare: the same head, forward on the same cached features, ``F.cross_entropy`` (mean), backward,
   ``torch.optim.SGD(momentum=0.9)`` step, ``zero_grad``.
3. naive: ``train`` on the same problem with ``features=recompute``: the frozen forward (embedding,
   attention) runs again every step, as in a model that only sets ``requires_grad=False``.

All start from the same weights. Ours and bare run the full batch in one chunk (like for like); ours
also with the default chunks (on the CPU, chunks small enough that malloc reuses their buffers, see
``CPU_CHUNK_BUDGET`` in train/loop.py), as does the naive route. Repetitions are interleaved (ours,
bare, naive, ours, ...) after a warm-up round; medians of wall time per step, and the CPU time (user
+ sys) of this process per step. Goal, per step: (ours(steps) - ours(0 steps)) / bare - 1 <= 5 %, where
ours(0 steps) is the final exact forward pass that all steps of a call share (the whole call's ratio is
printed too). Also printed: the speed-up of ours over the naive route, both with the default chunks.
Freed memory is kept for reuse, as in the command line (``--map-each-time`` for glibc's default).

Run:  python bench/last_layer_step.py [--steps 30] [--repeats 5] [--data-dir ../shared/data] [--device cpu|cuda]
      python bench/last_layer_step.py --streams 1024 --windows 2 --width 1200 --vocab valid+test --device cuda  # paper size
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from typing import Callable

import torch
import torch.nn.functional as F
from timing import apply_step_arguments, interleaved, step_arguments

from heavytail.optim import make_optimizer
from heavytail.problems import make_problem_options
from heavytail.train import HistoryRecorder, train

GOAL, LR = 0.05, 0.1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    step_arguments(parser, steps=30, data="ptb")
    parser.add_argument("--streams", type=int, default=80)
    parser.add_argument("--windows", type=int, default=2)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--vocab", default="used", help="train, valid+test or used (default: used, as the small preset)")
    args = parser.parse_args(argv)
    device, steps = apply_step_arguments(args), args.steps
    load = os.getloadavg()[0]
    options = {"streams": args.streams, "windows": args.windows, "width": args.width, "vocab": args.vocab}
    cached = make_problem_options("tinyptb-last-layer", options).build(seed=0).to(device)
    naive = make_problem_options("tinyptb-last-layer", {**options, "features": "recompute"}).build(seed=0).to(device)
    heads = {"cached": cached.model.model.head, "naive": naive.model.head}
    init = {k: v.clone() for k, v in heads["cached"].state_dict().items()}
    features, targets = cached.x, cached.y.reshape(-1)

    def ours(route: str, chunk_size: int | None, steps: int = steps) -> Callable[[], object]:
        problem = cached if route == "cached" else naive
        heads[route].load_state_dict(init)
        optimizer = make_optimizer("gd+m", problem.trainable_parameters(), LR)
        recorder = HistoryRecorder(problem.class_counts(), problem.class_weights, problem.class_groups)
        return lambda: train(problem, optimizer, steps, recorder=recorder, chunk_size=chunk_size)

    def bare() -> Callable[[], object]:
        head = heads["cached"]
        head.load_state_dict(init)
        sgd = torch.optim.SGD(head.parameters(), lr=LR, momentum=0.9)

        def steps_of_the_head() -> None:
            for _ in range(steps):
                F.cross_entropy(head(features).reshape(-1, cached.num_classes), targets).backward()
                sgd.step()
                sgd.zero_grad()

        return steps_of_the_head

    makers = {
        "train(), one chunk": lambda: ours("cached", cached.num_samples),
        "bare PyTorch loop": bare,
        "train(), default chunks": lambda: ours("cached", None),
        "naive, default chunks": lambda: ours("naive", None),
        "train(0), one chunk": lambda: ours("cached", cached.num_samples, 0),  # the final exact forward pass alone
    }
    wall, cpu = interleaved(makers, args.repeats, steps, device)
    median = {name: statistics.median(t) for name, t in wall.items()}
    info = cached.info
    print(f"tinyptb-last-layer: {info['n']:,} targets ({args.streams} streams x {info['windows']} windows x 35), c={cached.num_classes:,}, "
          f"width {args.width}; {cached.num_trainable_parameters:,} trained of {cached.num_parameters:,} parameters")
    print(f"device={device} threads={torch.get_num_threads()}, {steps} steps x {args.repeats} interleaved repeats (+1 warm-up), "
          f"medians; 1-min load avg at start {load:.2f}, at end {os.getloadavg()[0]:.2f}")
    for name, t in wall.items():
        print(f"{name:26s}{median[name] * 1e3:10.1f} ms/step  (min {min(t) * 1e3:.1f}, max {max(t) * 1e3:.1f}; "
              f"CPU {statistics.median(cpu[name]) * 1e3:.1f} ms/step)")
    bare_s, ours_s = median["bare PyTorch loop"], median["train(), one chunk"]
    overhead = (ours_s - median["train(0), one chunk"]) / bare_s - 1
    ok = overhead <= GOAL
    print(f"overhead per step ours/bare - 1 = {overhead:+.1%}  goal <= {GOAL:.0%}  {'PASS' if ok else 'MISS'}  "
          f"(whole call: {ours_s / bare_s - 1:+.1%}, with the final exact forward pass that {steps} steps share)")
    default = median["train(), default chunks"]
    print(f"default chunks against the bare loop (one chunk): {default / bare_s - 1:+.1%}")
    print(f"speed-up of cached features over recomputing the frozen forward: {median['naive, default chunks'] / default:.2f}x")
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
