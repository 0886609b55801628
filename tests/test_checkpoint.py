"""Checkpoints: a killed run resumes from its last checkpoint with the history of an uninterrupted run."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from heavytail import RunSpec, Store, run
from heavytail.cli import main
from heavytail.options import ConfigError
from heavytail.store import CHECKPOINT
from heavytail.sweep.executors import RequeueableRun, Task

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


class Killed(BaseException):
    """Stands for a SIGKILL arriving right after a checkpoint was written."""


@contextmanager
def killed_after(saves: int):
    """The run inside dies right after writing its ``saves``-th checkpoint."""
    original, count = Store.save_checkpoint, [0]

    def save_then_die(self, run_id, state):
        original(self, run_id, state)
        count[0] += 1
        if count[0] == saves:
            raise Killed

    with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
        patch.setattr(Store, "save_checkpoint", save_then_die)
        yield


def _same_history(a, b) -> None:
    for name in ("step", "exact", "loss", "objective", "class_loss", "class_accuracy", "class_counts"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=name not in ("step", "exact")), name


SPECS = {
    "full batch": RunSpec(problem="linear", problem_options={"m": 5}, optimizer="adam+m", lr=1e-2, steps=20),
    "mini-batch": RunSpec(problem="linear", problem_options={"m": 5}, optimizer="gd+m", lr=0.1, steps=23, batch_size=48),
}


@pytest.mark.parametrize("name", list(SPECS))
def test_interrupted_run_resumes_bit_identically(tmp_path, name):
    spec = SPECS[name]
    reference = run(spec, tmp_path / "uninterrupted")
    with killed_after(2):
        run(spec, tmp_path / "killed", checkpoint_every=7)
    store = Store(tmp_path / "killed")
    assert store.status(spec.run_id) == "failed" and (store.run_dir(spec.run_id) / CHECKPOINT).exists()
    resumed = run(spec, store, checkpoint_every=7)
    assert resumed.result["resumed_from"] == 14
    assert reference.result["resumed_from"] is None
    _same_history(resumed.history, reference.history)
    assert not (store.run_dir(spec.run_id) / CHECKPOINT).exists()  # a finished run drops its checkpoint


def test_gpt2_with_dropout_resumes_bit_identically(tmp_path, monkeypatch):
    if not (SHARED / "wikitext-2" / "valid.txt").is_file():
        pytest.skip("../shared/data/wikitext-2 not present")
    monkeypatch.setenv("HEAVYTAIL_DATA", str(SHARED))
    options = {"corpus": "tinywikitext-2", "vocab_size": 2000, "seq_len": 16, "layers": 1, "width": 16, "heads": 2,
               "dropout": 0.2, "train_tokens": 2048, "valid_tokens": 512, "log_every": 4}
    spec = RunSpec(problem="gpt2-wikitext", problem_options=options, optimizer="adam+m", lr=1e-2, steps=11, batch_size=24)
    reference = run(spec, tmp_path / "a")
    with killed_after(1):
        run(spec, tmp_path / "b", checkpoint_every=6)  # mid-epoch (5 batches an epoch), between two rows
    resumed = run(spec, tmp_path / "b", checkpoint_every=6)
    assert resumed.result["resumed_from"] == 6
    _same_history(resumed.history, reference.history)
    assert resumed.result["validation"] == reference.result["validation"]


def test_checkpoint_is_not_part_of_the_run_id_and_force_starts_over(tmp_path):
    spec = SPECS["full batch"]
    with killed_after(1):
        run(spec, tmp_path, checkpoint_every=5)
    assert Store(tmp_path).run_ids() == [spec.run_id]
    record = run(spec, tmp_path, force=True)
    assert record.result["resumed_from"] is None


def test_checkpoint_of_another_spec_is_refused_in_one_line(tmp_path):
    spec, other = SPECS["full batch"], RunSpec(problem="linear", problem_options={"m": 5}, optimizer="adam+m", lr=1e-3, steps=20)
    with killed_after(1):
        run(spec, tmp_path, checkpoint_every=5)
    store = Store(tmp_path)
    store.run_dir(other.run_id).mkdir(parents=True)
    shutil.copy(store.run_dir(spec.run_id) / CHECKPOINT, store.run_dir(other.run_id) / CHECKPOINT)
    with pytest.raises(ConfigError, match=f"belongs to run {spec.run_id}.*not to run {other.run_id}") as error:
        run(other, store)
    assert "\n" not in str(error.value)


def test_cli_reports_resumed_from(tmp_path, capsys):
    args = ["run", "linear", "-p", "m=5", "--optimizer", "gd", "--lr", "0.1", "--steps", "9", "--results", str(tmp_path), "--json"]
    with killed_after(1):
        main(args + ["--checkpoint-every", "4"])
    capsys.readouterr()
    assert main(args + ["--checkpoint-every", "4"]) == 0
    assert json.loads(capsys.readouterr().out)["resumed_from"] == 4
    with pytest.raises(SystemExit):
        main(args + ["--checkpoint-every", "0"])
    assert "--checkpoint-every: got '0'; expected an integer >= 1" in capsys.readouterr().err


def test_submitit_requeues_the_same_task(tmp_path):
    submitit = pytest.importorskip("submitit")
    spec = SPECS["full batch"]
    task = Task.of(spec, Store(tmp_path), "cpu", settings={"checkpoint_every": 5})
    delayed = RequeueableRun().checkpoint(task)
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert delayed.args == (task,) and isinstance(delayed.function, RequeueableRun)
    assert delayed.function(task) == "complete"
    assert Store(tmp_path).load(spec.run_id).result["status"] == "complete"


@pytest.mark.slow
def test_sigkilled_cli_run_resumes_from_its_last_checkpoint(tmp_path):
    """A real SIGKILL mid-run, then the same command again: it resumes and equals an uninterrupted run."""
    base = [sys.executable, "-m", "heavytail", "run", "linear", "-p", "m=7", "--optimizer", "adam+m", "--lr", "1e-3",
            "--steps", "1500", "--json", "--checkpoint-every", "50"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    process = subprocess.Popen(base + ["--results", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spec = RunSpec(problem="linear", problem_options={"m": 7}, optimizer="adam+m", lr=1e-3, steps=1500)
    checkpoint = Store(killed).run_dir(spec.run_id) / CHECKPOINT
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if checkpoint.exists() and torch.load(checkpoint, weights_only=True)["step"] >= 150:
            break
        time.sleep(0.2)
    assert process.poll() is None, "the run finished before it could be killed; make it longer"
    process.send_signal(signal.SIGKILL)
    process.wait()
    step = torch.load(checkpoint, weights_only=True)["step"]
    resumed = subprocess.run(base + ["--results", str(killed)], env=env, capture_output=True, text=True, check=True)
    assert json.loads(resumed.stdout)["resumed_from"] == step
    reference = subprocess.run(base + ["--results", str(tmp_path / "reference")], env=env, capture_output=True, text=True, check=True)
    assert json.loads(reference.stdout)["resumed_from"] is None
    _same_history(Store(killed).load(spec.run_id).history, Store(tmp_path / "reference").load(spec.run_id).history)
