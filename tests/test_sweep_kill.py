"""A sweep SIGKILLed at random moments and restarted: no finished run is ever computed again, and the
store ends clean (no damaged run, stale lock or stray file)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from heavytail import Store

CHILD = """
import os, sys
from heavytail.cli import main
from heavytail.store import Store

real_save = Store.save

def logged_save(self, run_id, history, result):
    real_save(self, run_id, history, result)
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{run_id} {result['status']}\\n".encode())
    os.close(fd)

Store.save = logged_save
sys.exit(main(["reproduce", "tiny_preset:TINY", "--results", sys.argv[2], "--workers", "1", "--json", "--out", sys.argv[3]]))
"""
TINY = """
from fractions import Fraction
from heavytail.presets import Curve, Preset, Scale
from heavytail.sweep.protocol import GridConfig

TINY = Preset(name="tiny", title="tiny", v1_figure="-", neurips_figure="-", scales={"small": Scale(
    problem_options={"m": 5}, steps=600,
    curves={"gd": Curve("gd", grid=GridConfig(-1, 1, dense_seeds=(0, 1), dense_radius=Fraction(1, 2))),
            "adam+m": Curve("adam+m", grid=GridConfig(-3, -1, dense_seeds=(0, 1), dense_radius=Fraction(1, 2)))})})
"""


@pytest.mark.slow
def test_sweep_killed_at_random_moments_never_recomputes_a_finished_run(tmp_path):
    (tmp_path / "tiny_preset.py").write_text(TINY)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    log, results = tmp_path / "saves.log", tmp_path / "results"
    command = [sys.executable, "-c", CHILD, str(log), str(results), str(tmp_path / "out")]
    rng = random.Random(0)
    kills = 0
    for _ in range(8):
        saved = len(log.read_text().splitlines()) if log.exists() else 0
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while child.poll() is None and time.monotonic() < deadline:  # kill only once this start has finished a run,
            if log.exists() and len(log.read_text().splitlines()) > saved:  # so the kills fall mid-sweep on any machine
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.05, 1.0))
        if child.poll() is not None:
            break
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        kills += 1
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    assert kills >= 3  # the sweep really was cut several times
    saves = [line.split() for line in log.read_text().splitlines()]
    finished = [run_id for run_id, status in saves if status in ("complete", "diverged")]
    assert len(finished) == len(set(finished)), "a finished run was computed again"
    summary = json.loads(final.stdout)
    assert summary["runs"]["total"] == len(Store(results).run_ids())
    check = subprocess.run([sys.executable, "-m", "heavytail", "store", "check", "--results", str(results)],
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout
