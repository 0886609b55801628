"""Malformed command lines: each gets exactly one stderr line naming the value as typed, a non-zero exit
status and no traceback, and leaves no run in the store."""

from __future__ import annotations

import json

import pytest

from heavytail import RunSpec, Store, run
from heavytail.cli import main

RUN = ["run", "linear", "--optimizer", "gd", "--lr", "0.1", "--steps", "2", "-p", "m=3"]  # later options override
GAUSSIAN = ["-p", "inputs=gaussian"]

# (arguments, text the error line must contain: the bad value as typed)
CASES = [
    (RUN + ["--lr", "10^400"], "'10^400'"),
    (RUN + ["--lr", "1e999"], "'1e999'"),
    (RUN + ["--lr", "nan"], "'nan'"),
    (RUN + ["--lr", "inf"], "'inf'"),
    (RUN + ["--lr", "-0.1"], "'-0.1'"),
    (RUN + ["--lr", "0"], "'0'"),
    (RUN + ["--lr", "abc"], "'abc'"),
    (RUN + ["--lr", "10^abc"], "'10^abc'"),
    (RUN + ["--lr", "10^-400"], "'10^-400'"),
    (RUN + ["--lr", ""], "''"),
    (RUN + ["--seed", "-1"], "'-1'"),
    (RUN + ["--seed", "1.5"], "'1.5'"),
    (RUN + ["--seed", "abc"], "'abc'"),
    (RUN + ["--seed", "99999999999999999999999"], "'99999999999999999999999'"),
    (RUN + ["--steps", "-3"], "'-3'"),
    (RUN + ["--steps", "1e3"], "'1e3'"),
    (RUN + ["--steps", "10^3"], "'10^3'"),
    (RUN + ["--batch-size", "0"], "'0'"),
    (RUN + ["--batch-size", "-5"], "'-5'"),
    (RUN + ["--batch-size", "1000"], "1000"),
    (RUN + ["--chunk-size", "0"], "'0'"),
    (RUN + ["--groups", "0"], "'0'"),
    (RUN + ["--groups", "x"], "'x'"),
    (RUN + GAUSSIAN + ["-p", "mean=nan"], "'nan'"),
    (RUN + GAUSSIAN + ["-p", "mean=inf"], "'inf'"),
    (RUN + GAUSSIAN + ["-p", "scale=1e999"], "'1e999'"),
    (RUN + ["-p", "loss_weights=-inf"], "'-inf'"),
    (RUN + ["-p", "loss_weights=-1"], "loss_weights=-1"),
    (RUN + ["-p", "reweight=-1"], "loss_weights=-1"),
    (RUN + ["-p", "m=0"], "m=0"),
    (RUN + ["-p", "m=17"], "m=17"),
    (RUN + ["-p", "m=abc"], "'abc'"),
    (RUN + ["-p", "m=1e999"], "'1e999'"),
    (RUN + ["-p", "m=2.5"], "'2.5'"),
    (RUN + ["-p", "d=0"], "d=0"),
    (RUN + ["-p", "inputs=cauchy"], "'cauchy'"),
    (RUN + ["-p", "init=bogus"], "'bogus'"),
    (RUN + ["-p", "bias=maybe"], "'maybe'"),
    (RUN + ["-p", "mm=3"], "'mm'"),
    (RUN + ["-p", "=3"], "'=3'"),
    (RUN + ["-p", "m"], "'m'"),
    (RUN + ["-o", "momentum=nan"], "'nan'"),
    (RUN + ["-o", "momentum=1e999"], "'1e999'"),
    (RUN + ["-o", "momentum=1.5"], "1.5"),
    (RUN[:3] + ["adam"] + RUN[4:] + ["-o", "betas=abc"], "betas='abc' (default (0.9, 0.999))"),
    (RUN + ["-o", "mom=0.9"], "'mom'"),
    (RUN + ["--optimizer", "adm"], "'adm'"),
    (RUN + ["--optimizer", "nosuch.module:Optimizer"], "'nosuch.module:Optimizer'"),
    (RUN + ["--device", "cuda:7"], "'cuda:7'"),
    (RUN + ["--device", "tpu"], "'tpu'"),
    (["run", "linearr", "--optimizer", "gd", "--lr", "0.1"], "'linearr'"),
    (["run", "linear", "--optimizer", "gd"], "--lr"),
    (["list", "--results", "{file}"], "{file}"),
    (["list", "--results", "{missing}"], "{missing}"),
    (["plot", "--results", "{missing}"], "{missing}"),
    (["plot", "--results", "{file}"], "{file}"),
    (["plot", "*f", "--results", "{store}"], "'*f'"),
    (["plot", "[0-9]", "--results", "{store}"], "'[0-9]'"),
    (["plot", "ffff", "--results", "{store}"], "'ffff'"),
    (["plot", "", "--results", "{store}"], "''"),
    (["plot", "../runs", "--results", "{store}"], "'../runs'"),
    (["plot", "--groups", "-2", "--results", "{store}"], "'-2'"),
    (RUN + ["--results", "{file}"], "{file}"),
    (["reproduce", ""], "''"),
    (["reproduce", "nosuch"], "'nosuch'"),
    (["reproduce", "linear", "--scale", "huge"], "'huge'"),
    (["reproduce", "linear", "--workers", "0"], "'0'"),
    (["reproduce", "linear", "--executor", "k8s"], "'k8s'"),
    (["reproduce", "linear", "--device", "cuda:3"], "'cuda:3'"),
    (["reproduce", "linear", "--results", "{file}"], "{file}"),
    (["reproduce", "linear", "--executor", "slurm", "-s", "partition"], "'partition'"),
    (["store", "check", "--results", "{missing}"], "{missing}"),
    (["store", "check", "--results", "{file}"], "{file}"),
    (["store", "fix"], "'fix'"),
    (["frobnicate"], "'frobnicate'"),
]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A store with one finished run, a regular file and a missing path."""
    root = tmp_path_factory.mktemp("store")
    run(RunSpec(problem_options={"m": 3}, optimizer="gd", lr=0.1, steps=2), root / "results")
    (root / "a-file").write_text("not a store\n")
    return {"store": str(root / "results"), "file": str(root / "a-file"), "missing": str(root / "nowhere")}


def test_there_are_at_least_fifty_cases():
    assert len(CASES) >= 50


@pytest.mark.parametrize(("argv", "expected"), CASES, ids=[" ".join(a[-2:]) or "empty" for a, _ in CASES])
def test_malformed_command_line_is_one_line_error(argv, expected, stored, tmp_path, capsys):
    argv = [arg.format(**stored) for arg in argv]
    if "--results" not in argv:
        argv += ["--results", str(tmp_path / "results")]
    expected = expected.format(**stored)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    captured = capsys.readouterr()
    assert code not in (0, None)
    assert captured.err.count("\n") == 1 and captured.err.startswith("heavytail: error: "), captured.err
    assert expected in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert Store(tmp_path / "results").run_ids() == []  # nothing stored for a refused command


def test_more_groups_than_classes_are_clamped_with_a_note(tmp_path, capsys):
    assert main(RUN + ["--groups", "1000", "--results", str(tmp_path), "--json"]) == 0
    captured = capsys.readouterr()
    assert "--groups 1000 is more than the problem's 7 classes; showing 7 groups" in captured.err
    summary = json.loads(captured.out)
    assert len(summary["groups"]) == len(summary["group_loss_final"]) == 7
    assert sum(row["num_classes"] for row in summary["groups"]) == 7
