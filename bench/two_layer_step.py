"""Cost of heavytail's training loop per mini-batch step of the two-layer transformer on PTB, against bare PyTorch.

Measures, in one run, on ``ptb-two-layer`` at the small scale of ``reproduce ptb-two-layer`` (the
PTB valid split, 5,980 classes, width 32, B = 64 streams x 35 tokens a step) unless told otherwise:

1. ours: ``heavytail.train.train`` with ``make_optimizer("adam+m")``, ``batch_size = B`` (one window a
   step, windows in order) and a ``HistoryRecorder`` (every per-class loss and accuracy on). A call
   also makes the exact passes over all windows at the first and the final iterate, so it is timed
   twice: ``train(steps)`` and ``train(0)`` (the first pass alone); a step costs
   (T(steps) - 2 T(0)) / steps, and the two passes are reported as a fixed cost per run;
2. bare: the same model, the same windows in the same order, forward, ``F.cross_entropy`` (mean over
   the real targets), backward, ``torch.optim.Adam(betas=(0.9, 0.999))`` step, ``zero_grad``.
Both start from the same weights, dropout on, in a process where glibc keeps freed blocks for reuse
as the command line's and sweep workers' do (``--map-each-time``: glibc's default). Repetitions are
interleaved (ours, bare, ours(0), ...) after a warm-up round; medians. Goal: ours per step / bare - 1 <= 5 %.

Run:  python bench/two_layer_step.py [--steps 33] [--repeats 5] [--threads 1] [--data-dir ../shared/data] [--device cpu|cuda]
      python bench/two_layer_step.py -p width=1000 -p ff_width=1000 -p streams=512 --device cuda   # the paper's model
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

from heavytail.options import parse_assignments
from heavytail.presets.ptb_two_layer import SMALL_DATA
from heavytail.problems import make_problem_options

GOAL, LR = 0.05, 1e-3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    step_arguments(parser, steps=33, data="ptb")  # 33 steps: one epoch at the small scale
    parser.add_argument("-p", dest="options", action="append", metavar="KEY=VALUE", help="ptb-two-layer option over the small scale's")
    args = parser.parse_args(argv)
    device = apply_step_arguments(args)
    steps = args.steps
    load = os.getloadavg()[0]
    options = {**SMALL_DATA, **parse_assignments(args.options, "ptb-two-layer problem")}
    problem = make_problem_options("ptb-two-layer", options).build(seed=0).to(device)
    x, y, model, block = problem.x, problem.y, problem.model, problem.batch_block
    windows = [(x[i : i + block], y[i : i + block]) for i in range(0, len(y), block)]
    init = {k: v.clone() for k, v in model.state_dict().items()}

    def ours(steps: int) -> Callable[[], object]:
        return train_call(problem, init, "adam+m", LR, steps, batch_size=block)

    def bare() -> Callable[[], object]:
        model.load_state_dict(init)
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.999))

        def run() -> None:
            for step in range(steps):
                inputs, targets = windows[step % len(windows)]
                F.cross_entropy(model(inputs).reshape(-1, problem.num_classes), targets.reshape(-1), ignore_index=-100).backward()
                optimizer.step()
                optimizer.zero_grad()

        return run

    makers = {"train(steps)": lambda: ours(steps), "bare PyTorch loop": bare, "train(0)": lambda: ours(0)}
    times: dict[str, list[float]] = {name: [] for name in makers}
    for rep in range(args.repeats + 1):  # repetition 0 is the warm-up
        for name, make in makers.items():
            seconds = clock(make(), device)
            if rep:
                times[name].append(seconds)
    median = {name: statistics.median(t) for name, t in times.items()}
    per_step = (median["train(steps)"] - 2 * median["train(0)"]) / steps
    bare_step = median["bare PyTorch loop"] / steps
    print(f"ptb-two-layer {options}: {len(windows)} windows of {block} x {problem.x.shape[1]}, c={problem.num_classes}, "
          f"{problem.num_parameters:,} parameters")  # fmt: skip
    print(f"device={device} threads={torch.get_num_threads()}, {steps} steps x {args.repeats} interleaved repeats (+1 warm-up), "
          f"medians; 1-min load avg at start {load:.2f}, at end {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"{'train(steps), whole call':28s}{median['train(steps)'] / steps * 1e3:9.1f} ms/step")
    print(f"{'train(0): one exact pass':28s}{median['train(0)'] * 1e3:9.1f} ms  ({median['train(0)'] / (steps * bare_step):.0%} of {steps} bare steps)")
    print(f"{'train, per step':28s}{per_step * 1e3:9.1f} ms/step  (whole call minus the two exact passes)")
    print(f"{'bare PyTorch loop':28s}{bare_step * 1e3:9.1f} ms/step  (min {min(times['bare PyTorch loop']) / steps * 1e3:.1f}, "
          f"max {max(times['bare PyTorch loop']) / steps * 1e3:.1f})")  # fmt: skip
    overhead = per_step / bare_step - 1
    ok = overhead <= GOAL
    print(f"overhead per step ours/bare - 1 = {overhead:+.1%}  goal <= {GOAL:.0%}  {'PASS' if ok else 'MISS'}")
    print(f"a run's two exact passes cost {2 * median['train(0)'] / (len(windows) * bare_step):.0%} of one epoch of bare steps")
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
