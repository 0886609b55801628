"""Tokens per second and model FLOP utilisation of a GPT-2 training step, per-group metrics on vs off.

One step = heavytail's loop (:func:`heavytail.train.train`, full-batch mode over ``--batch`` windows of
``--seq-len`` tokens, gradient accumulation over micro-batches of ``--micro``, one row of per-class
statistics per step: the most metrics the loop ever computes) with ``adam+m``. "metrics off" is the
same call with :meth:`ClassStats.add` reduced to the batch's total loss and count (what the loop
needs to detect divergence), so the difference is what the per-class (sum, count) statistics and
accuracy cost. Repetitions are interleaved (on, off, on, ...) after a warm-up; medians.

FLOPs per token: 6·N (N = parameters without the embedding table) + 12·layers·T·d for attention
(:meth:`GPT2Config.train_flops_per_token`). MFU = achieved FLOP/s over a peak: on CUDA the device's
dense bf16 peak (H100 SXM 989 TFLOP/s, H200 the same, A100 312; ``--peak-tflops`` otherwise), on
the CPU the float32 matmul rate measured here on 2048×2048 matrices (so "MFU" there says how close
the step comes to the machine's own GEMM speed). Tokens are synthetic (π_k ∝ 1/k), so no data files
are needed.

Run:  python bench/gpt2_throughput.py                                   # small CPU config
      python bench/gpt2_throughput.py --config paper --device cuda --batch 64 --micro 16   # GPT-2 small on a GPU
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics

import torch

from heavytail.data.text import TokenWindows
from heavytail.models.gpt2 import GPT2Config, gpt2
from heavytail.optim import make_optimizer
from heavytail.problems.base import Problem
from heavytail.train import ClassStats, train
from timing import clock

CONFIGS = {
    "small": GPT2Config(vocab_size=8000, seq_len=64, layers=2, width=128, heads=4, dropout=0.0),
    "paper": GPT2Config(),
}
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def peak_flops(device: torch.device, given: float | None) -> tuple[float, str]:
    """The FLOP/s that MFU divides by, and where it comes from."""
    if given:
        return given * 1e12, "given"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, tflops in PEAK_BF16_TFLOPS.items():
            if key in name:
                return tflops * 1e12, f"{name} dense bf16 peak"
        raise SystemExit(f"unknown GPU {name!r}; pass --peak-tflops")
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    seconds = min(clock(lambda: a @ b, device) for _ in range(5))
    return 2 * 2048**3 / seconds, "measured float32 2048^3 matmul"


def _totals_only(self: ClassStats, losses: torch.Tensor, targets: torch.Tensor, logits: torch.Tensor | None = None) -> None:
    """The mean loss the loop needs (divergence check), without per-class sums or accuracy."""
    self.sums[0, 0] += losses.detach().sum()
    self.sums[2, 0] += losses.numel()


@contextlib.contextmanager
def metrics_off():
    original = ClassStats.add
    ClassStats.add = _totals_only
    try:
        yield
    finally:
        ClassStats.add = original


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--batch", type=int, default=16, help="windows a step (default 16)")
    parser.add_argument("--micro", type=int, default=8, help="windows a micro-batch (default 8)")
    parser.add_argument("--steps", type=int, default=5, help="steps per repetition (default 5)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions (default 5)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["auto", "fp32"], default="auto")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's; 1 is steadier on a busy machine)")
    parser.add_argument("--peak-tflops", type=float, help="peak for MFU (default: known GPU, or measured on the CPU)")
    args = parser.parse_args(argv)
    device, config = torch.device(args.device), CONFIGS[args.config]
    if args.threads:
        torch.set_num_threads(args.threads)
    weights = 1.0 / torch.arange(1, config.vocab_size + 1, dtype=torch.float64)
    tokens = torch.multinomial(weights, args.batch * config.seq_len + 1, replacement=True, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    problem = Problem(model=gpt2(config), x=None, y=None, samples=TokenWindows(tokens, config.seq_len), num_classes=config.vocab_size).to(device)
    optimizer = make_optimizer("adam+m", problem.model.parameters(), 1e-4)

    def step_seconds() -> float:
        return clock(lambda: train(problem, optimizer, args.steps, chunk_size=args.micro, precision=args.precision, compile=args.compile), device)

    peak, peak_source = peak_flops(device, args.peak_tflops)
    step_seconds()  # warm-up (and compilation)
    on, off = [], []
    for _ in range(args.repeats):
        on.append(step_seconds())
        with metrics_off():
            off.append(step_seconds())
    tokens_per_step = args.batch * config.seq_len
    flops_per_step = tokens_per_step * config.train_flops_per_token()
    report = {
        "config": args.config, "device": str(device), "batch": args.batch, "micro": args.micro, "precision": args.precision,
        "compile": args.compile, "parameters": config.num_parameters(), "threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0], "peak_flops": peak, "peak_source": peak_source,
    }
    for name, times in (("metrics_on", on), ("metrics_off", off)):
        seconds = statistics.median(times) / args.steps  # the final extra forward pass is amortised over the steps
        report[name] = {"seconds_per_step": seconds, "tokens_per_second": tokens_per_step / seconds, "mfu": flops_per_step / seconds / peak}
    report["metrics_overhead"] = statistics.median(on) / statistics.median(off) - 1
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
