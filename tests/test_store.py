"""The run store: round trip, reuse of finished runs, stable ids, atomic writes, locks and failures."""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

import heavytail
import heavytail.optim.registry as registry
import heavytail.runner as runner
from heavytail import RunSpec, Store, run
from heavytail.optim import GD, register_optimizer
from heavytail.store import RunLocked
from heavytail.train import History, train

SPEC = RunSpec(problem_options={"m": 4}, optimizer="adam+m", lr=1e-2, steps=3, seed=1)
HISTORY_FIELDS = ("step", "exact", "loss", "objective", "class_loss", "class_accuracy", "class_counts")


def _assert_histories_equal(a: History, b: History) -> None:
    for name in HISTORY_FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name


def _files(store: Store, run_id: str) -> set[str]:
    return {p.name for p in store.run_dir(run_id).iterdir()}


@pytest.fixture
def count_train(monkeypatch):
    """Count calls of the training loop that heavytail.run makes."""
    calls = []

    def counting_train(*args, **kwargs):
        calls.append(1)
        return real_train(*args, **kwargs)

    real_train = runner.train
    monkeypatch.setattr(runner, "train", counting_train)
    return calls


def _forbid_training(monkeypatch):
    def no_train(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(runner, "train", no_train)


def test_round_trip(tmp_path):
    record = run(SPEC, tmp_path)
    assert record.status == "complete" and not record.skipped
    assert _files(Store(tmp_path), record.run_id) == {"spec.json", "history.npz", "result.json"}  # no lock, no tmp

    loaded = Store(tmp_path).load(record.run_id[:6])  # a unique prefix is enough
    assert loaded.run_id == record.run_id == SPEC.run_id
    assert loaded.spec == SPEC.normalized()
    assert loaded.result == record.result
    assert json.loads((loaded.path / "spec.json").read_text()) == SPEC.to_dict()

    problem = SPEC.build_problem()
    optimizer = heavytail.make_optimizer(SPEC.optimizer, problem.model.parameters(), SPEC.lr)
    direct = train(problem, optimizer, SPEC.steps, seed=SPEC.seed).history
    _assert_histories_equal(loaded.history, direct)

    result = loaded.result
    assert result["status"] == "complete" and result["steps_done"] == 3
    assert result["spec"] == SPEC.to_dict()
    assert result["problem_info"] == {"n": 64, "d": 80, "c": 15, "num_parameters": 15 * 80 + 15, "num_trainable_parameters": 15 * 80 + 15}
    assert result["initial_loss"] == direct.loss[0]
    assert result["final_loss"] == direct.loss[-1]
    assert result["max_loss"] == direct.loss.max()


def test_history_file_round_trip_keeps_nan_and_dtypes(tmp_path):
    history = History(
        step=np.array([0, 4, 5], dtype=np.int64),
        exact=np.array([True, False, True]),
        loss=np.array([2.0, 1.5, 1.25]),
        objective=np.array([2.5, 1.75, 1.5]),
        class_loss=np.array([[1.0, 3.0], [np.nan, 2.0], [0.5, 2.0]], dtype=np.float32),
        class_accuracy=np.array([[0.0, 1.0], [np.nan, 0.5], [1.0, 0.5]], dtype=np.float32),
        class_counts=np.array([3, 1], dtype=np.int64),
    )
    history.save(tmp_path / "h.npz")
    _assert_histories_equal(History.load(tmp_path / "h.npz"), history)


def test_optimizer_options_round_trip(tmp_path):
    options = {"betas": (0.5, 0.99)}
    spec = RunSpec(problem_options={"m": 4}, optimizer="adam", optimizer_options=options, lr=1e-2, steps=1)
    record = run(spec, tmp_path)
    loaded = Store(tmp_path).load(record.run_id)
    assert loaded.spec.run_id == spec.run_id
    assert loaded.spec.to_dict() == spec.to_dict()


def test_finished_run_is_reused_not_retrained(tmp_path, monkeypatch):
    first = run(SPEC, tmp_path)
    _forbid_training(monkeypatch)
    second = run(SPEC, tmp_path)
    assert second.skipped and second.status == "complete"
    assert second.result == first.result  # untouched, same finish time
    _assert_histories_equal(second.history, first.history)
    # the same run given with non-normalised options is the same run
    options = {"betas": "(0.9, 0.999)"}
    same = RunSpec(problem_options={"m": "4"}, optimizer="adam+m", optimizer_options=options, lr=0.01, steps=3, seed=1)
    assert run(same, tmp_path).skipped


def test_force_recomputes(tmp_path, count_train):
    first = run(SPEC, tmp_path)
    assert len(count_train) == 1
    again = run(SPEC, tmp_path, force=True)
    assert len(count_train) == 2
    assert not again.skipped and again.status == "complete"
    _assert_histories_equal(again.history, first.history)


def test_run_id_is_stable_under_option_normalisation():
    def run_id(**changes):
        return RunSpec(**{"optimizer": "gd", "lr": 0.1, "steps": 3, **changes}).run_id

    default = run_id()
    assert len(default) == 16 and int(default, 16) >= 0
    # only non-default fields are hashed: the id of this spec is that of its minimal canonical JSON
    minimal = {"problem": "linear", "optimizer": "gd", "lr": 0.1, "steps": 3, "seed": 0}
    canonical = json.dumps(minimal, sort_keys=True, separators=(",", ":"))
    assert default == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert run_id(problem_options={"m": "8"}) == run_id(problem_options={"m": 8}) == default
    assert run_id(problem_options={"inputs": "uniform", "mean": "0", "d": "none"}) == default
    assert run_id(lr=1) == run_id(lr=1.0)
    assert run_id(problem_options={"m": "7"}) == run_id(problem_options={"m": 7}) != default
    assert run_id(optimizer="gd+m") == run_id(optimizer="gd+m", optimizer_options={"momentum": "0.9"})
    others = {
        run_id(lr=0.2),
        run_id(seed=1),
        run_id(steps=4),
        run_id(batch_size=16),
        run_id(optimizer="gd+m"),
        run_id(optimizer_options={"momentum": 0.5}),
        run_id(problem_options={"m": 7}),
        run_id(problem_options={"loss_weights": 1}),
    }
    assert len(others) == 8 and default not in others


@pytest.mark.parametrize(
    ("optimizer", "options"),
    [("gd", {"momentum": 0.0}), ("sign", {"momentum": "0"}), ("adam", {"eps": 1e-8}), ("adagrad", {"eps": 1e-10})],
)
def test_run_id_ignores_optimizer_options_equal_to_the_class_defaults(optimizer, options):
    """Spelling out an option at its default value is the same run, as it is for problem options."""
    base = {"problem_options": {"m": 4}, "optimizer": optimizer, "lr": 0.1, "steps": 1}
    assert RunSpec(**base, optimizer_options=options).run_id == RunSpec(**base).run_id


def test_interrupted_history_write_is_not_complete(tmp_path, monkeypatch, count_train):
    real_save, interrupted = History.save, []

    def save_half_then_fail(self, file):
        if interrupted:  # only the first write fails
            return real_save(self, file)
        interrupted.append(1)
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(History, "save", save_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        run(SPEC, tmp_path)
    store = Store(tmp_path)
    assert store.status(SPEC.run_id) == "failed"
    assert _files(store, SPEC.run_id) == {"spec.json"}  # nothing half-written under a final name, lock released
    record = run(SPEC, tmp_path)
    assert not record.skipped and record.status == "complete" and len(count_train) == 2
    assert record.history.loss.shape == (4,)


def test_interrupted_result_write_is_not_complete(tmp_path, monkeypatch, count_train):
    real_replace = os.replace

    def failing_replace(src, dst):
        if os.path.basename(dst) == "result.json":
            raise OSError("killed while renaming")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="killed"):
        run(SPEC, tmp_path)
    monkeypatch.setattr(os, "replace", real_replace)
    store = Store(tmp_path)
    assert store.status(SPEC.run_id) == "failed"
    assert _files(store, SPEC.run_id) == {"spec.json", "history.npz"}
    record = run(SPEC, tmp_path)
    assert not record.skipped and record.status == "complete" and len(count_train) == 2


KILLED_WRITER = """
import sys, time
from pathlib import Path
import heavytail
from heavytail.train import History

def stuck_save(self, file):
    file.write(b"PK partial")
    file.flush()
    Path(sys.argv[2]).write_text("writing")
    time.sleep(120)

History.save = stuck_save
heavytail.run(heavytail.RunSpec(**{spec}), sys.argv[1])
"""


def test_process_killed_while_writing_leaves_no_complete_run(tmp_path, count_train):
    marker = tmp_path / "writing"
    script = KILLED_WRITER.replace("{spec}", repr(SPEC.to_dict()))
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), str(tmp_path), str(marker)])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, "the child exited before writing"
            assert time.monotonic() < deadline, "the child never started writing"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    store = Store(tmp_path)
    files = _files(store, SPEC.run_id)
    assert "result.json" not in files and "history.npz" not in files
    partial = [name for name in files if name.startswith(".history.npz.")]
    assert len(partial) == 1 and partial[0].endswith(".tmp")  # the half-written file sits under a temporary name
    lock = json.loads((store.run_dir(SPEC.run_id) / "lock.json").read_text())
    assert lock["pid"] == child.pid
    assert store.status(SPEC.run_id) == "failed"  # its owner is dead
    record = run(SPEC, tmp_path)  # takes over the stale lock and recomputes
    assert not record.skipped and record.status == "complete" and len(count_train) == 1
    assert "lock.json" not in _files(store, SPEC.run_id)


def test_lock_status_and_takeover(tmp_path):
    store = Store(tmp_path)
    run_id = store.claim(SPEC)
    lock_path = store.run_dir(run_id) / "lock.json"
    assert json.loads((store.run_dir(run_id) / "spec.json").read_text()) == SPEC.to_dict()  # spec written first
    assert json.loads(lock_path.read_text()) == {"host": socket.gethostname(), "pid": os.getpid()}
    assert store.status(run_id) == "running"  # this process holds it
    with pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
        run(SPEC, Store(tmp_path))  # another claimer (another open file description) is refused
    store.release(run_id)
    assert not lock_path.exists() and store.status(run_id) == "failed"  # claimed, never finished
    lock_path.write_text(json.dumps({"host": socket.gethostname(), "pid": 1}))  # a lock file nobody holds
    assert store.status(run_id) == "failed"
    record = run(SPEC, store)
    assert record.status == "complete" and not record.skipped
    assert not lock_path.exists()


def test_only_one_of_two_claimers_wins(tmp_path):
    first, second = Store(tmp_path), Store(tmp_path)
    run_id = first.claim(SPEC)
    with pytest.raises(RunLocked):
        second.claim(SPEC)
    first.release(run_id)
    assert second.claim(SPEC) == run_id  # free again once released
    with pytest.raises(RunLocked):
        first.claim(SPEC)
    second.release(run_id)


def test_claim_after_another_process_finished_reuses_its_result(tmp_path, count_train):
    """A run finished by another process between our status check and our claim is not recomputed."""
    store = Store(tmp_path)
    run(SPEC, store)
    real_status, calls = store.status, []

    def stale_first_answer(run_id):
        calls.append(run_id)
        return None if len(calls) == 1 else real_status(run_id)

    store.status = stale_first_answer
    record = run(SPEC, store)
    assert record.skipped and len(count_train) == 1


def test_unknown_run_is_none_and_unknown_prefix_an_error(tmp_path):
    store = Store(tmp_path)
    assert store.status("0123456789abcdef") is None
    with pytest.raises(heavytail.ConfigError, match="no run"):
        store.load("0123")


class _Boom(GD):
    """GD whose third step raises (a crash in the middle of training)."""

    calls = 0
    error: type[BaseException] | None = RuntimeError

    def step(self, closure=None):
        type(self).calls += 1
        if type(self).calls == 3 and self.error is not None:
            raise self.error("boom")
        return super().step(closure)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_crash_mid_training_is_stored_as_failed_with_partial_history(tmp_path, monkeypatch, error):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_optimizer("boom", _Boom)
    monkeypatch.setattr(_Boom, "calls", 0)
    monkeypatch.setattr(_Boom, "error", error)
    spec = RunSpec(problem_options={"m": 4}, optimizer="boom", lr=0.1, steps=5)
    with pytest.raises(error, match="boom"):
        run(spec, tmp_path)
    store = Store(tmp_path)
    record = store.load(spec.run_id)
    assert record.status == store.status(spec.run_id) == "failed"
    assert record.result["error"] == f"{error.__name__}: boom"
    # rows 0, 1 and 2 were logged before the third step raised
    np.testing.assert_array_equal(record.history.step, [0, 1, 2])
    assert record.result["initial_loss"] == record.history.loss[0]
    assert "lock.json" not in _files(store, spec.run_id)
    # a failed run is not final: the next run computes it
    monkeypatch.setattr(_Boom, "error", None)
    again = run(spec, tmp_path)
    assert not again.skipped and again.status == "complete"
    np.testing.assert_array_equal(again.history.step, np.arange(6))
    np.testing.assert_array_equal(again.history.loss[:3], record.history.loss)


def test_to_frame_has_one_row_per_run(tmp_path):
    specs = [
        RunSpec(problem_options={"m": 4}, optimizer="gd", lr=0.1, steps=2),
        RunSpec(problem_options={"m": 5}, optimizer="gd+m", lr=0.05, steps=3, batch_size=40),
        RunSpec(problem_options={"m": 4}, optimizer="gd", lr=1e38, steps=4),
    ]
    records = [run(spec, tmp_path) for spec in specs]
    store = Store(tmp_path)
    failed = RunSpec(problem_options={"m": 4}, optimizer="sign", lr=0.1, steps=2)
    store.release(store.claim(failed))  # claimed, never finished

    frame = store.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == 4
    expected_columns = {
        "run_id", "status", "problem", "optimizer", "lr", "steps", "seed", "batch_size", "problem.m",
        "n", "d", "c", "initial_loss", "final_loss", "max_loss", "steps_done", "wall_time", "finished",
    }  # fmt: skip
    assert expected_columns <= set(frame.columns)
    rows = frame.set_index("run_id")
    assert set(rows.index) == {r.run_id for r in records} | {failed.run_id}
    assert rows.loc[records[0].run_id, "status"] == "complete"
    assert rows.loc[records[2].run_id, "status"] == "diverged"
    assert rows.loc[failed.run_id, "status"] == "failed"
    for record, spec in zip(records, specs):
        row = rows.loc[record.run_id]
        assert row["lr"] == spec.lr and row["optimizer"] == spec.optimizer and row["steps"] == spec.steps
        assert row["problem.m"] == spec.problem_options["m"]
        m = spec.problem_options["m"]
        assert (row["n"], row["d"], row["c"]) == (m * 2**m, (m + 1) * 2**m, 2**m - 1)
        assert row["initial_loss"] == record.result["initial_loss"]
    assert rows.loc[records[1].run_id, "batch_size"] == 40
    assert rows.loc[records[1].run_id, "steps_done"] == 3
    pd.testing.assert_frame_equal(heavytail.load_results(str(tmp_path)), frame)
