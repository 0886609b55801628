"""Cost of heavytail's training loop per full-batch step, against bare PyTorch and the matmul rate.

Measures, in one run, on the linear problem (``LinearProblem(m).build(seed=0)``; m = 8: n = 2048,
d = 2304, c = 255):

1. ours: ``heavytail.train.train`` with ``make_optimizer("gd")`` and a ``HistoryRecorder`` (every
   per-class metric on), time of the whole call / steps, so its fixed costs (set-up and the final
   extra forward pass for the last iterate) are amortised over ``--steps``;
   bare: nn.Linear forward, F.cross_entropy (mean), backward, torch.optim.SGD step, zero_grad.
   Both start from the same weights on the same data. Goal: ours / bare - 1 <= 5 %.
2. ours in GFLOP/s, counting 4·n·d·c flops per step (forward GEMM 2ndc + weight-gradient GEMM 2ndc;
   the bias, softmax and metric terms are O(n·c), negligible), against this machine's float32 matmul
   rate on the step's own shapes, measured in the same run by running the step's two GEMMs bare
   (x @ W.T, G.T @ x). Goal: >= 80 % of that rate. Also printed: the ratio to a square 2048^3 sgemm,
   for ours, the bare loop and the GEMMs themselves (c = 255 is an awkward GEMM width: the GEMMs
   alone reach ~75-85 % of the square rate, so no loop can reach 80 % of it at m = 8).
Also timed: ``train(steps=0)``, the per-call fixed cost, to show how much of the overhead is that.

All measurements are interleaved (ours, bare, train(0), GEMMs, sgemm, ours, ...) after a warm-up
round so machine noise hits all alike; each is the median over ``--repeats``. Exit code 0 unless
``--check`` is given and a goal is missed. Other busy processes skew timings: run on a quiet machine.

Run:  python bench/step_overhead.py [--m 8] [--steps 50] [--repeats 7] [--device cpu|cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from typing import Callable

import torch
import torch.nn.functional as F

from heavytail.optim import make_optimizer
from heavytail.problems import LinearProblem
from heavytail.train import HistoryRecorder, train
from timing import clock

OVERHEAD_GOAL, EFFICIENCY_GOAL, LR = 0.05, 0.80, 0.01


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--m", type=int, default=8, help="linear problem size (default 8)")
    parser.add_argument("--steps", type=int, default=50, help="training steps per repetition (default 50)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repetitions (default 7)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    device, steps = torch.device(args.device), args.steps

    load = os.getloadavg()[0]
    problem = LinearProblem(m=args.m).build(seed=0).to(device)
    x, y, model = problem.x, problem.y, problem.model
    (n, d), c = x.shape, problem.num_classes
    init = {k: v.clone() for k, v in model.state_dict().items()}
    bare_model = torch.nn.Linear(d, c).to(device)
    flops = 4 * n * d * c  # per step

    def ours(count: int) -> Callable[[], object]:  # set-up outside the timed call
        model.load_state_dict(init)
        optimizer = make_optimizer("gd", model.parameters(), LR)
        recorder = HistoryRecorder(problem.class_counts(), problem.class_weights)

        def run() -> None:
            result = train(problem, optimizer, count, recorder=recorder)
            assert result.steps_done == count and not result.diverged

        return run

    def bare() -> Callable[[], object]:
        bare_model.load_state_dict(init)
        optimizer = torch.optim.SGD(bare_model.parameters(), lr=LR)

        def run() -> None:
            for _ in range(steps):
                F.cross_entropy(bare_model(x), y).backward()
                optimizer.step()
                optimizer.zero_grad()

        return run

    weight, grad_logits = init["weight"], torch.randn(n, c, device=device)
    a, b = torch.randn(2048, 2048, device=device), torch.randn(2048, 2048, device=device)
    square_count = max(1, round(steps * flops / (2 * 2048**3)))  # about as much work as one step loop

    def step_gemms() -> None:
        for _ in range(steps):
            torch.matmul(x, weight.T)
            torch.matmul(grad_logits.T, x)

    def sgemm() -> None:
        for _ in range(square_count):
            torch.matmul(a, b)

    cases: dict[str, Callable[[], Callable[[], object]]] = {
        "heavytail train()": lambda: ours(steps),
        "bare PyTorch loop": bare,
        "train(steps=0)": lambda: ours(0),
        "step GEMMs, bare": lambda: step_gemms,
        "sgemm 2048^3": lambda: sgemm,
    }
    per_call = {"sgemm 2048^3": square_count, "train(steps=0)": 1}
    work = {"sgemm 2048^3": 2 * 2048**3, "train(steps=0)": 0}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for rep in range(args.repeats + 1):  # repetition 0 is the warm-up
        for name, make in cases.items():
            seconds = clock(make(), device) / per_call.get(name, steps)
            if rep:
                times[name].append(seconds)

    median = {name: statistics.median(t) for name, t in times.items()}
    rate = {name: work.get(name, flops) / t / 1e9 for name, t in median.items()}
    print(f"linear m={args.m}: n={n} d={d} c={c}, {flops / 1e9:.2f} GFLOP/step (4ndc; bias terms O(nc) ignored)")
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__}, "
          f"{steps} steps x {args.repeats} interleaved repeats (+1 warm-up), medians; "
          f"1-min load avg at start {load:.2f} (busy machine skews timings)")
    print(f"\n{'':20s}{'ms/call':>10s}{'min':>9s}{'max':>9s}{'GFLOP/s':>10s}")
    for name, t in times.items():
        gflops = f"{rate[name]:10.1f}" if rate[name] else f"{'-':>10s}"
        print(f"{name:20s}{median[name] * 1e3:10.2f}{min(t) * 1e3:9.2f}{max(t) * 1e3:9.2f}{gflops}")
    print("(ms per training step; per train(steps=0) call = set-up + the one forward pass it adds after")
    print(" the last step; per pair of the step's GEMMs; per 2048^3 matmul)\n")

    ours_s, bare_s, fixed_s = (median[k] for k in ("heavytail train()", "bare PyTorch loop", "train(steps=0)"))
    overhead = ours_s / bare_s - 1
    from_minima = min(times["heavytail train()"]) / min(times["bare PyTorch loop"]) - 1
    reference = rate["step GEMMs, bare"]
    efficiency = rate["heavytail train()"] / reference
    ok_overhead, ok_efficiency = overhead <= OVERHEAD_GOAL, efficiency >= EFFICIENCY_GOAL
    print(f"overhead    ours/bare - 1             = {overhead:+6.1%}   goal <= {OVERHEAD_GOAL:.0%}   "
          f"{'PASS' if ok_overhead else 'MISS'}   (from the minima: {from_minima:+.1%})")
    print(f"  of which fixed cost per call / steps = {fixed_s / steps / bare_s:+6.1%}   "
          f"(per-step overhead without it: {(ours_s - fixed_s / steps) / bare_s - 1:+.1%})")
    print(f"efficiency  ours / step-GEMM rate     = {efficiency:6.1%}   goal >= {EFFICIENCY_GOAL:.0%}  "
          f"{'PASS' if ok_efficiency else 'MISS'}   (reference {reference:.1f} GFLOP/s)")
    square = rate["sgemm 2048^3"]
    print(f"  against a square sgemm ({square:.1f} GFLOP/s): ours {rate['heavytail train()'] / square:.1%}, "
          f"bare loop {rate['bare PyTorch loop'] / square:.1%}, the step's GEMMs alone {reference / square:.1%}")
    return 1 if args.check and not (ok_overhead and ok_efficiency) else 0


if __name__ == "__main__":
    sys.exit(main())
