"""A store that checks what it reads: each way a crash or a disk damages a finished run is named in one
line, never used as finished, set aside under quarantine/ and recomputed; the rest of the store is untouched."""

from __future__ import annotations

import io
import json
import os
import socket

import numpy as np
import pytest

import heavytail.runner as runner
from heavytail import RunSpec, Store, run
from heavytail.cli import main
from heavytail.integrity import CorruptRunError

SPEC = RunSpec(problem_options={"m": 3}, optimizer="gd", lr=0.1, steps=3)
OTHER = RunSpec(problem_options={"m": 3}, optimizer="adam", lr=0.01, steps=3)


def _truncate_half(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))


CORRUPTIONS = {  # name: (damage it, the file the message must name, reason it must give)
    "history truncated to half": (lambda d: _truncate_half(d / "history.npz"), "history.npz", "truncated"),
    "history emptied": (lambda d: (d / "history.npz").write_bytes(b""), "history.npz", "bytes"),
    "history bytes changed": (lambda d: _flip_a_byte(d / "history.npz"), "history.npz", ""),
    "result random bytes": (lambda d: (d / "result.json").write_bytes(np.random.default_rng(0).bytes(512)), "result.json", "not"),
    "result cut in half": (lambda d: _truncate_half(d / "result.json"), "result.json", "not valid JSON"),
    "result emptied": (lambda d: (d / "result.json").write_bytes(b""), "result.json", "empty"),
    "spec deleted": (lambda d: (d / "spec.json").unlink(), "spec.json", "missing"),
}
CHEAPLY_SEEN = set(CORRUPTIONS) - {"history bytes changed"}  # a same-size change needs the checksum


@pytest.fixture
def store(tmp_path):
    """A store with two finished runs; SPEC's is the one the tests damage."""
    run(SPEC, tmp_path)
    run(OTHER, tmp_path)
    return Store(tmp_path)


@pytest.fixture
def trained(monkeypatch):
    """Run ids that heavytail.run trains."""
    calls = []
    real_train = runner.train

    def counting(problem, optimizer, steps, **kwargs):
        calls.append(steps)
        return real_train(problem, optimizer, steps, **kwargs)

    monkeypatch.setattr(runner, "train", counting)
    return calls


def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_list_shows_the_damaged_run_and_the_others(store, corruption, capsys):
    damage, filename, reason = CORRUPTIONS[corruption]
    damage(store.run_dir(SPEC.run_id))
    code, out, err = _cli(capsys, "list", "--results", str(store.root), "--json")
    rows = {row["run_id"]: row for row in json.loads(out)}
    assert code == 0 and set(rows) == {SPEC.run_id, OTHER.run_id}
    assert rows[OTHER.run_id]["status"] == "complete"
    if corruption in CHEAPLY_SEEN:  # list does no checksums, to stay fast on big stores
        assert rows[SPEC.run_id]["status"] == "corrupt"
        assert filename in rows[SPEC.run_id]["damage"] and reason in rows[SPEC.run_id]["damage"]


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_plot_refuses_in_one_line_naming_the_file(store, corruption, capsys, tmp_path):
    damage, filename, _ = CORRUPTIONS[corruption]
    damage(store.run_dir(SPEC.run_id))
    code, _, err = _cli(capsys, "plot", SPEC.run_id[:8], OTHER.run_id, "--results", str(store.root), "--out", str(tmp_path / "f"))
    assert code == 2 and err.count("\n") == 1
    assert str(store.run_dir(SPEC.run_id) / filename) in err
    assert not (tmp_path / "f.png").exists()
    # the other run still plots, and the default figure leaves the damaged run out
    assert _cli(capsys, "plot", OTHER.run_id, "--results", str(store.root), "--out", str(tmp_path / "g"))[0] == 0


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_run_quarantines_and_recomputes(store, corruption, trained, capsys):
    damage, filename, _ = CORRUPTIONS[corruption]
    run_dir = store.run_dir(SPEC.run_id)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    damage(run_dir)
    damaged = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    code, out, err = _cli(capsys, "run", "linear", "--optimizer", "gd", "--lr", "0.1", "--steps", "3", "-p", "m=3",
                          "--results", str(store.root), "--json")  # fmt: skip
    assert code == 0 and len(trained) == 1 and not json.loads(out)["skipped"]
    assert err.count("\n") == 1 and "damaged run" in err and filename in err and "computing it again" in err
    (quarantined,) = (store.root / "quarantine").iterdir()
    assert quarantined.name.startswith(SPEC.run_id) and str(quarantined) in err
    kept = {p.name: p.read_bytes() for p in quarantined.iterdir() if p.name != "reason.txt"}
    assert kept == damaged  # set aside as found, not deleted
    assert filename in (quarantined / "reason.txt").read_text()
    record = store.finished(SPEC.run_id)
    assert record is not None and record.status == "complete"
    np.testing.assert_array_equal(record.history.loss, np.load(io.BytesIO(before["history.npz"]))["loss"])
    assert store.finished(OTHER.run_id) is not None  # untouched


def test_reproduce_recomputes_a_damaged_run_of_its_sweep(tmp_path, capsys, monkeypatch):
    from heavytail.presets import get_preset
    from heavytail.sweep.executors import LocalExecutor
    from heavytail.sweep.reproduce import reproduce

    (tmp_path / "one_run_preset.py").write_text(
        "from heavytail.presets import Curve, Preset, Scale\n"
        "ONE_RUN = Preset(name='one-run', title='t', v1_figure='-', neurips_figure='-', scales={'small': Scale("
        "problem_options={'m': 3}, steps=3, curves={'gd': Curve('gd', fixed=-1)})})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    preset, store = get_preset("one_run_preset:ONE_RUN"), Store(tmp_path / "results")
    first = reproduce(preset, store=store, executor=LocalExecutor(1), out=tmp_path / "out")
    (run_id,) = store.run_ids()
    _flip_a_byte(store.run_dir(run_id) / "history.npz")
    capsys.readouterr()
    again = reproduce(preset, store=store, executor=LocalExecutor(1), out=tmp_path / "out")
    assert again["runs"]["computed"] == 1 and "checksum mismatch" in capsys.readouterr().err
    assert again["optimizers"] == first["optimizers"]


def test_history_load_verifies_checksum_and_shapes(store):
    record = store.load(SPEC.run_id)
    assert record.result["history"]["rows"] == 4 and record.result["history"]["classes"] == 7
    _flip_a_byte(record.path / "history.npz")
    with pytest.raises(CorruptRunError, match="history.npz: checksum mismatch"):
        store.load(SPEC.run_id).history
    assert store.finished(SPEC.run_id) is None  # never reused as finished


def test_declared_shapes_are_checked(store):
    path = store.run_dir(SPEC.run_id) / "result.json"
    result = json.loads(path.read_text())
    result["history"]["rows"] = 5
    path.write_text(json.dumps(result))
    with pytest.raises(CorruptRunError, match="4 rows x 7 classes, result.json records 5 x 7"):
        store.load(SPEC.run_id).history


def test_old_results_without_checksum_stay_loadable(store, trained):
    path = store.run_dir(SPEC.run_id) / "result.json"
    result = json.loads(path.read_text())
    del result["history"]
    path.write_text(json.dumps(result))
    assert store.status(SPEC.run_id) == "complete"
    record = run(SPEC, store)
    assert record.skipped and len(trained) == 0 and len(record.history.loss) == 4
    _truncate_half(store.run_dir(SPEC.run_id) / "history.npz")  # still caught without a recorded size
    assert store.status(SPEC.run_id) == "corrupt"


def test_stale_lock_and_stray_temporary_files_are_cleaned_on_reuse(store, trained):
    run_dir = store.run_dir(SPEC.run_id)
    (run_dir / "lock.json").write_text(json.dumps({"host": "elsewhere", "pid": 1}))
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    stray = run_dir / f".history.npz.{socket.gethostname()}.{dead}.tmp"
    stray.write_bytes(b"PK half")
    live = run_dir / f".history.npz.{socket.gethostname()}.{os.getpid()}.tmp"  # a live writer's file stays
    live.write_bytes(b"PK")
    record = run(SPEC, store)
    assert record.skipped and len(trained) == 0
    assert {p.name for p in run_dir.iterdir()} == {"spec.json", "history.npz", "result.json", live.name}


def test_store_check_reports_and_repairs(store, capsys):
    root = str(store.root)
    assert _cli(capsys, "store", "check", "--results", root)[0] == 0
    _truncate_half(store.run_dir(SPEC.run_id) / "history.npz")
    (store.run_dir(OTHER.run_id) / "lock.json").write_text("{}")
    (store.run_dir(OTHER.run_id) / ".result.json.nohost.1.tmp").write_text("{")
    (store.root / "sweeps").mkdir()
    (store.root / "sweeps" / "host.1.lock").touch()  # the registration of a sweep that was killed
    code, out, _ = _cli(capsys, "store", "check", "--results", root, "--json")
    problems = {(p["kind"], os.path.basename(p["path"])) for p in json.loads(out)["problems"]}
    assert code == 1 and problems == {
        ("damaged run", SPEC.run_id), ("stale lock", "lock.json"), ("stray file", ".result.json.nohost.1.tmp"), ("stale lock", "host.1.lock")
    }
    code, out, _ = _cli(capsys, "store", "check", "--repair", "--results", root)
    assert code == 0 and out.count("[") == 4 and not any((store.root / "sweeps").iterdir())
    assert store.status(SPEC.run_id) is None and len(list((store.root / "quarantine").iterdir())) == 1
    assert {p.name for p in store.run_dir(OTHER.run_id).iterdir()} == {"spec.json", "history.npz", "result.json"}
    assert _cli(capsys, "store", "check", "--results", root)[0] == 0


def test_a_new_sweep_removes_this_hosts_registrations_that_no_process_holds(tmp_path):
    """A sweep killed before it could remove ``sweeps/HOST.PID.lock`` leaves it behind; the next sweep on the host
    removes it (so `store check` is clean after a restart), keeps the ones other processes hold and other hosts' files."""
    import fcntl
    import time

    from heavytail.sweep.executors import registered_sweep, sweeps_on_this_host

    store = Store(tmp_path)
    folder = tmp_path / "sweeps"
    folder.mkdir()
    host = socket.gethostname()
    stale, held, elsewhere = folder / f"{host}.1.lock", folder / f"{host}.2.lock", folder / "elsewhere.3.lock"
    for path in (stale, held, elsewhere):
        path.touch()
        os.utime(path, (time.time() - 60, time.time() - 60))
    fd = os.open(held, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a live sweep's registration (flock is per open file, so this process holds it)
    try:
        with registered_sweep(store):
            assert not stale.exists() and held.exists() and elsewhere.exists()
            assert sweeps_on_this_host(store) == 2
    finally:
        os.close(fd)
    assert {p.name for p in folder.iterdir()} == {held.name, elsewhere.name}
