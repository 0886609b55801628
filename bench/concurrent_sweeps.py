"""Do concurrent sweeps on one store share the work? One process against N processes, same preset.

Runs, in one invocation: (1) one ``heavytail reproduce PRESET --workers 1`` into a fresh store, timed;
(2) N such processes started together on another fresh store, timed until the last one exits. Every
process logs each run it computes (a wrapper around ``Store.save``), so duplicates = runs computed
more than once. ``--rounds R`` alternates (1) and (2) R times and compares their medians, so a load
that drifts during the measurement hits both alike. Prints both wall times, the speed-up (goal:
>= 1.5x for 4 processes on 2 cores), the duplicates (goal: 0), and whether all N processes (and the
single one) chose the same step sizes.
Other busy processes skew the wall times; the speed-up holds better than the absolute numbers.

``--steps T`` runs the preset's own grids and protocol with every run cut to T steps (a cheaper sweep
of the same shape, for a loaded machine).

Run:  nice -n 5 python bench/concurrent_sweeps.py [--preset linear-inputs] [--steps T] [--processes 4] [--rounds R] [--check]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import os, sys
from heavytail.cli import main
from heavytail.store import Store

real_save = Store.save

def logged_save(self, run_id, history, result):
    real_save(self, run_id, history, result)
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{run_id} {os.getpid()} {result['status']}\\n".encode())
    os.close(fd)

Store.save = logged_save
sys.exit(main(["reproduce", sys.argv[2], "--results", sys.argv[3], "--out", sys.argv[4], "--workers", "1", "--json"]))
"""


SHORTENED = """
import dataclasses
from heavytail.presets import get_preset

_preset = get_preset({name!r})
_scale = dataclasses.replace(_preset.scales["small"], steps={steps}, show_steps=None)
PRESET = dataclasses.replace(_preset, name=_preset.name + "-{steps}steps", scales={{"small": _scale}})
"""


def sweep(preset: str, root: Path, processes: int) -> tuple[float, list[dict], list[tuple[str, str]]]:
    """Start ``processes`` sweeps of ``preset`` on the store ``root`` at once: wall time, summaries, (run id, pid) computed."""
    log = root / "computed.log"
    start = time.perf_counter()
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(log), preset, str(root / "store"), str(root / f"out{i}")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root.parent), os.environ.get("PYTHONPATH", "")])})  # fmt: skip
        for i in range(processes)
    ]
    outputs = [child.communicate() for child in children]
    wall = time.perf_counter() - start
    for child, (_, err) in zip(children, outputs):
        if child.returncode != 0:
            sys.exit(f"a sweep failed (exit {child.returncode}): {err.strip().splitlines()[-1:]}")
    computed = [tuple(line.split()[:2]) for line in log.read_text().splitlines()] if log.exists() else []
    return wall, [json.loads(out) for out, _ in outputs], computed  # type: ignore[misc]


def choices(summary: dict) -> str:
    """The step size chosen for every curve, as comparable text."""
    sections = summary.get("problems") or {"": summary}
    return json.dumps({label: {name: e["lr"] for name, e in s["optimizers"].items()} for label, s in sections.items()}, sort_keys=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="linear-inputs")
    parser.add_argument("--steps", type=int, help="cut every run to this many steps (default: the preset's)")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the two phases this many times; medians (a loaded machine's drift cancels)")
    parser.add_argument("--check", action="store_true", help="exit 1 if speed-up < 1.5, any duplicate, or any disagreement")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    steps = f", runs cut to {args.steps} steps" if args.steps else ""
    print(f"preset {args.preset}{steps}, {cores} cores, load average {os.getloadavg()[0]:.2f} at start", flush=True)
    singles, multis, duplicates, agree = [], [], 0, True
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            preset = args.preset
            if args.steps:
                (Path(tmp) / "shortened_preset.py").write_text(SHORTENED.format(name=args.preset, steps=args.steps))
                preset = "shortened_preset:PRESET"
            (Path(tmp) / "one").mkdir()
            (Path(tmp) / "many").mkdir()
            t1, (alone,), computed1 = sweep(preset, Path(tmp) / "one", 1)
            print(f"round {r + 1}: 1 process:   {t1:7.1f} s, {len(computed1)} runs computed", flush=True)
            tn, summaries, computed = sweep(preset, Path(tmp) / "many", args.processes)
        per_run = collections.Counter(run_id for run_id, _ in computed)
        per_process = collections.Counter(pid for _, pid in computed)
        duplicates += sum(n - 1 for n in per_run.values())
        agree = agree and len({choices(s) for s in [alone, *summaries]}) == 1
        print(f"round {r + 1}: {args.processes} processes: {tn:7.1f} s, {len(per_run)} runs computed, split {sorted(per_process.values(), reverse=True)}; "
              f"ratio {t1 / tn:.2f}x; load average {os.getloadavg()[0]:.2f}", flush=True)
        singles.append(t1)
        multis.append(tn)
    speedup = statistics.median(singles) / statistics.median(multis)
    print(f"speed-up {speedup:.2f}x from the medians of {args.rounds} round(s) (goal >= 1.5x); duplicates {duplicates} (goal 0); same step sizes chosen: {agree}")
    return 1 if args.check and (speedup < 1.5 or duplicates or not agree) else 0


if __name__ == "__main__":
    raise SystemExit(main())
