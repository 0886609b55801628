"""Cost of the closed-form per-class blocks: all c Hessian block traces and gradient norms of softmax regression.

    python bench/curvature_cost.py                # m = 8 against one full-batch gradient; m = 4 against autograd
    python bench/curvature_cost.py --check        # exit 1 when the 2x goal is missed

Prints medians over interleaved repetitions and two ratios:
* closed form / one full-batch gradient evaluation (forward, mean cross-entropy, backward) at m = 8,
  goal <= 2 (both do one forward GEMM and one weight-gradient GEMM);
* naive autograd (the exact d x d diagonal Hessian block of every class, then its trace) / closed form
  on a small problem: the speed-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from heavytail import LinearProblem
from heavytail.curvature import softmax_blocks


def _time(fn, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def interleaved(fns: dict, rounds: int, repeats: dict[str, int]) -> dict[str, float]:
    """Median seconds per call of each function (``repeats[name]`` calls a sample), rounds interleaved after a warm-up."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds + 1):
        for name, fn in fns.items():
            t = _time(fn, repeats[name])
            if r:
                samples[name].append(t)
    return {name: statistics.median(ts) for name, ts in samples.items()}


def gradient_evaluation(problem):
    model = problem.model

    def step() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(problem.x), problem.y).backward()

    return step


def closed_form(problem):
    weight, bias = problem.model.weight.detach(), problem.model.bias.detach()
    return lambda: softmax_blocks(problem.x, problem.y, weight, bias)


def naive_blocks(problem):
    """Exact d x d Hessian block of every class row by autograd, then the traces and gradient norms."""
    x, y = problem.x, problem.y
    weight, bias = problem.model.weight.detach(), problem.model.bias.detach()

    def run() -> None:
        for k in range(weight.shape[0]):
            def loss_of_row(row: torch.Tensor, k: int = k) -> torch.Tensor:
                w = torch.cat([weight[:k], row[None], weight[k + 1 :]])
                return F.cross_entropy(x @ w.T + bias, y)

            torch.trace(torch.autograd.functional.hessian(loss_of_row, weight[k], vectorize=True))
            torch.autograd.functional.jacobian(loss_of_row, weight[k]).norm()

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=8)
    parser.add_argument("--small-m", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")

    problem = LinearProblem(m=args.m).build(0)
    n, d = problem.x.shape
    times = interleaved({"closed form": closed_form(problem), "gradient": gradient_evaluation(problem)}, args.rounds, {"closed form": 5, "gradient": 5})
    ratio = times["closed form"] / times["gradient"]
    print(f"m = {args.m} (n {n}, d {d}, c {problem.num_classes}):")
    print(f"  all c block traces + gradient norms, closed form   {1e3 * times['closed form']:8.2f} ms")
    print(f"  one full-batch gradient evaluation                 {1e3 * times['gradient']:8.2f} ms")
    print(f"  ratio {ratio:.2f} (goal <= 2)")

    small = LinearProblem(m=args.small_m).build(0)
    n, d = small.x.shape
    times = interleaved({"closed form": closed_form(small), "naive": naive_blocks(small)}, 2, {"closed form": 200, "naive": 1})
    print(f"m = {args.small_m} (n {n}, d {d}, c {small.num_classes}):")
    print(f"  closed form                                        {1e3 * times['closed form']:8.2f} ms")
    print(f"  autograd, exact diagonal blocks one class at a time {1e3 * times['naive']:8.1f} ms")
    print(f"  speed-up {times['naive'] / times['closed form']:.0f}x")
    return 1 if args.check and ratio > 2 else 0


if __name__ == "__main__":
    sys.exit(main())
