"""The command line: JSON keys and values, reuse of stored runs, listing, plotting and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction

import pytest

from heavytail.cli import main
from heavytail.store import Store

RUN_KEYS = {
    "run_id", "n", "d", "c", "steps", "initial_loss", "final_loss", "max_loss", "diverged", "skipped",
    "group_loss_initial", "group_loss_final",
}


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_run_json_reports_sizes_losses_and_reuse(tmp_path, capsys):
    argv = ["run", "linear", "--optimizer", "adam+m", "--lr", "1e-2", "--steps", "5", "-p", "m=5",
            "--results", str(tmp_path), "--json"]
    first = run_json(capsys, *argv)
    assert RUN_KEYS <= first.keys()
    assert (first["n"], first["d"], first["c"]) == (5 * 32, 6 * 32, 31)
    assert first["steps"] == 5 and first["skipped"] is False and first["diverged"] is False
    assert len(first["group_loss_initial"]) == len(first["group_loss_final"]) == 10
    assert first["final_loss"] < first["initial_loss"] <= first["max_loss"]
    second = run_json(capsys, *argv)
    assert second["skipped"] is True and second["run_id"] == first["run_id"]
    assert second["final_loss"] == first["final_loss"]


def test_step_size_in_the_papers_notation_names_the_presets_run(tmp_path, capsys):
    from heavytail.sweep.protocol import lr_of

    out = run_json(capsys, "run", "linear", "--optimizer", "gd", "--lr", "10^-2.5", "--steps", "2", "-p", "m=3",
                   "--results", str(tmp_path), "--json")
    assert out["lr"] == lr_of(Fraction(-5, 2))  # the same float, hence the same run id, as a sweep's 10^-2.5
    with pytest.raises(SystemExit):
        main(["run", "linear", "--optimizer", "gd", "--lr", "ten", "--results", str(tmp_path)])
    assert "bad step size 'ten'" in capsys.readouterr().err


def test_optimizer_from_import_path_with_options(tmp_path, capsys):
    out = run_json(capsys, "run", "linear", "--optimizer", "torch.optim:SGD", "-o", "momentum=0.5", "--lr", "0.1",
                   "--steps", "3", "-p", "m=4", "--results", str(tmp_path), "--json")
    assert out["optimizer"] == "torch.optim:SGD" and out["optimizer_options"] == {"momentum": 0.5}
    assert out["final_loss"] < out["initial_loss"]


def test_list_and_plot(tmp_path, capsys):
    for optimizer in ("gd", "adam"):
        run_json(capsys, "run", "linear", "--optimizer", optimizer, "--lr", "1e-2", "--steps", "4", "-p", "m=4",
                 "--results", str(tmp_path), "--json")
    listed = run_json(capsys, "list", "--results", str(tmp_path), "--json")
    assert len(listed) == 2
    assert {row["status"] for row in listed} == {"complete"}
    assert {row["spec"]["optimizer"] for row in listed} == {"gd", "adam"}
    plotted = run_json(capsys, "plot", "--results", str(tmp_path), "--out", str(tmp_path / "fig"), "--json")
    assert sorted(plotted["runs"]) == sorted(row["run_id"] for row in listed)
    for path in (tmp_path / "fig.png", tmp_path / "fig.pdf"):
        assert path.stat().st_size > 10_000


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--optimizer", "adm"], "unknown optimizer 'adm'; choose one of: adagrad, adam, adam+m"),
        (["--optimizer", "gd", "-p", "mm=3"], "unknown linear problem option 'mm'; choose from: m, inputs"),
        (["--optimizer", "gd", "-p", "inputs=cauchy"], "bad linear problem option inputs='cauchy'; choose one of: uniform, gaussian"),
        (["--optimizer", "gd", "-o", "mom=0.9"], "unknown option 'mom' for optimizer 'gd'; choose from: momentum"),
        (["--optimizer", "gd", "--device", "cuda:7"], "choose one of: cpu"),
    ],
)
def test_bad_input_is_one_line_error(tmp_path, capsys, argv, expected):
    code = main(["run", "linear", "--lr", "0.1", "--steps", "2", "-p", "m=3", "--results", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("heavytail: error: ")
    assert expected in err


def test_console_entry_point(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "heavytail", "run", "linear", "--optimizer", "sign+m", "--lr", "1e-3", "--steps", "2",
         "-p", "m=3", "--json"],
        capture_output=True, text=True, env={"HEAVYTAIL_RESULTS": str(tmp_path), "PATH": ""}, check=True,
    )
    out = json.loads(result.stdout)
    assert out["path"].startswith(str(tmp_path)) and out["c"] == 7
    assert result.stderr == ""


def test_bad_optimizer_values_leave_no_run_behind(tmp_path, capsys):
    for options in (["-o", "momentum=1.5"], ["--batch-size", "1000"]):
        code = main(["run", "linear", "--optimizer", "gd", "--lr", "0.1", "--steps", "2", "-p", "m=3",
                     "--results", str(tmp_path), *options])
        assert code == 2 and capsys.readouterr().err.startswith("heavytail: error: ")
    assert Store(tmp_path).run_ids() == []


def test_step_list_parses_and_refuses():
    import argparse

    from heavytail.cli.common import step_list

    assert step_list("0,1,2,10") == [0, 1, 2, 10]
    for bad in ("", "1,x", "-1,2"):
        with pytest.raises(argparse.ArgumentTypeError, match="bad step list"):
            step_list(bad)
