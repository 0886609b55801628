"""The clock every benchmark here uses (``from timing import clock``; benchmarks run as ``python bench/NAME.py``),
and the training call the step benchmarks time."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Callable

import torch

from heavytail.allocator import reuse_freed_memory
from heavytail.optim import make_optimizer
from heavytail.problems import Problem
from heavytail.train import HistoryRecorder, train


def clock(fn: Callable[[], object], device: torch.device) -> float:
    """Wall-clock seconds of ``fn()``, synchronising the GPU before each clock read."""
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def interleaved(makers: dict[str, Callable[[], Callable[[], object]]], repeats: int, steps: int, device: torch.device
                ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:  # fmt: skip
    """Wall and CPU (user + sys) seconds per step of each variant, repetitions interleaved after a warm-up round.

    ``makers[name]()`` prepares a fresh run (weights reset, new optimizer) and returns the function to time.
    """
    wall: dict[str, list[float]] = {name: [] for name in makers}
    cpu: dict[str, list[float]] = {name: [] for name in makers}
    for rep in range(repeats + 1):  # repetition 0 is the warm-up
        for name, make in makers.items():
            fn = make()
            start_cpu = time.process_time()
            seconds = clock(fn, device) / steps
            if rep:
                wall[name].append(seconds)
                cpu[name].append((time.process_time() - start_cpu) / steps)
    return wall, cpu


def train_call(
    problem: Problem, init: dict[str, torch.Tensor], optimizer: str, lr: float, steps: int, **options: Any
) -> Callable[[], object]:
    """``train(problem, ...)`` from the weights ``init``, a fresh optimizer, every per-class metric recorded: ready to clock."""
    problem.model.load_state_dict(init)
    opt = make_optimizer(optimizer, problem.trainable_parameters(), lr)
    recorder = HistoryRecorder(problem.class_counts(), problem.class_weights, problem.class_groups)
    return lambda: train(problem, opt, steps, recorder=recorder, **options)


def step_arguments(parser: argparse.ArgumentParser, steps: int, data: str) -> None:
    """The options every step benchmark takes: steps and repetitions, threads, data directory, device, allocator, --check."""
    parser.add_argument("--steps", type=int, default=steps, help=f"training steps per repetition (default {steps})")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--data-dir", default=None, help=f"data directory holding {data}/ (default: $HEAVYTAIL_DATA)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--map-each-time", action="store_true",
                        help="leave glibc's default: large blocks unmapped when freed (page faults every step)")  # fmt: skip
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")


def apply_step_arguments(args: argparse.Namespace) -> torch.device:
    """Point heavytail at ``--data-dir``, set ``--threads``, keep freed memory for reuse as the command line and
    sweep workers do (unless ``--map-each-time``); return the device."""
    if not args.map_each_time:
        reuse_freed_memory()
    if args.data_dir:
        os.environ["HEAVYTAIL_DATA"] = args.data_dir
    if args.threads:
        torch.set_num_threads(args.threads)
    return torch.device(args.device)
