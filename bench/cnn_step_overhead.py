"""Cost of heavytail's training loop per full-batch CNN step on MNIST + Barcoded, against bare PyTorch.

Measures, in one run, on ``mnist-barcoded`` at the small scale of ``reproduce cnn-barcoded`` (the
10,000 MNIST test images: 300 per digit + 640 barcoded classes of one image, n = 3,640, c = 650, CNN
8/16):

1. ours: ``heavytail.train.train`` with ``make_optimizer("gd+m")`` and a ``HistoryRecorder`` (every
   per-class loss and accuracy on), whole call / steps, so the fixed costs (set-up, the final extra
   forward pass) are amortised over ``--steps``; once with the automatic chunk size (memory-bounded:
   3 chunks here) and once in one chunk, as the bare loop computes it;
2. bare: the same CNN, forward, ``F.cross_entropy`` (mean), backward, ``torch.optim.SGD(momentum=0.9)``
   step, ``zero_grad`` on the same full batch.
Both start from the same weights. Repetitions are interleaved (ours, bare, ours, ...) after a warm-up
round; medians. Goal, per step: (ours(steps) - ours(0 steps)) / bare - 1 <= 5 %, where ours(0 steps) is the
final exact forward pass, a fixed cost that all steps of a call share (the whole call's ratio is printed
too, and the memory-bounded default). Freed memory is kept for reuse, as in the command line.

Run:  python bench/cnn_step_overhead.py [--steps 10] [--repeats 5] [--data-dir ../shared/data] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from typing import Callable

import torch
import torch.nn.functional as F
from timing import apply_step_arguments, clock, step_arguments, train_call

from heavytail.presets.cnn_barcoded import SMALL_DATA
from heavytail.problems import make_problem_options

GOAL, LR = 0.05, 0.01


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    step_arguments(parser, steps=10, data="mnist")
    args = parser.parse_args(argv)
    device, steps = apply_step_arguments(args), args.steps
    load = os.getloadavg()[0]
    problem = make_problem_options("mnist-barcoded", SMALL_DATA).build(seed=0).to(device)
    x, y, model = problem.x, problem.y, problem.model
    init = {k: v.clone() for k, v in model.state_dict().items()}

    def ours(chunk_size: int | None, steps: int = steps) -> Callable[[], object]:
        return train_call(problem, init, "gd+m", LR, steps, chunk_size=chunk_size)

    def bare() -> Callable[[], object]:
        model.load_state_dict(init)
        optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)

        def run() -> None:
            for _ in range(steps):
                F.cross_entropy(model(x), y).backward()
                optimizer.step()
                optimizer.zero_grad()

        return run

    makers = {
        "train(), one chunk": lambda: ours(len(y)),
        "train(), auto chunks": lambda: ours(None),
        "bare PyTorch loop": bare,
        "train(0), one chunk": lambda: ours(len(y), 0),  # the final exact forward pass alone (per call, / steps)
    }
    times: dict[str, list[float]] = {name: [] for name in makers}
    for rep in range(args.repeats + 1):  # repetition 0 is the warm-up
        for name, make in makers.items():
            seconds = clock(make(), device) / steps
            if rep:
                times[name].append(seconds)
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"mnist-barcoded small: n={len(y)} c={problem.num_classes}, CNN {problem.model[0].out_channels}/{problem.model[3].out_channels}, {problem.num_parameters:,} parameters")
    print(f"device={device} threads={torch.get_num_threads()}, {steps} steps x {args.repeats} interleaved repeats (+1 warm-up), "
          f"medians; 1-min load avg at start {load:.2f}")
    for name, t in times.items():
        print(f"{name:20s}{median[name] * 1e3:10.1f} ms/step  (min {min(t) * 1e3:.1f}, max {max(t) * 1e3:.1f})")
    bare_s, final_pass = median["bare PyTorch loop"], median["train(0), one chunk"]
    whole_call = median["train(), one chunk"] / bare_s - 1
    overhead = (median["train(), one chunk"] - final_pass) / bare_s - 1
    ok = overhead <= GOAL
    print(f"overhead per step ours/bare - 1 = {overhead:+.1%}  goal <= {GOAL:.0%}  {'PASS' if ok else 'MISS'}  "
          f"(whole call: {whole_call:+.1%}, with the final exact forward pass that {steps} steps share)")
    print(f"memory-bounded chunks (the default): {median['train(), auto chunks'] / bare_s - 1:+.1%} against the bare loop")
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
