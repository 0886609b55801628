"""Sweeps end to end on a tiny preset: summary and figure, resume after an interruption, two sweeps
sharing one store, and submitit's local executor."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from fractions import Fraction
from typing import Any

import pytest

from heavytail import Store
from heavytail import runner as runner_module
from heavytail.cli import main
from heavytail.presets import Curve, Preset, Scale, Study, get_preset
from heavytail.sweep.executors import LocalExecutor, SlurmExecutor
from heavytail.sweep.protocol import GridConfig
from heavytail.sweep.reproduce import reproduce

TINY_MODULE = '''
from fractions import Fraction
from heavytail.presets import Curve, Preset, Scale
from heavytail.sweep.protocol import GridConfig

TINY = Preset(
    name="tiny",
    title="tiny linear preset for tests",
    v1_figure="none",
    neurips_figure="none",
    scales={
        "small": Scale(
            problem_options={"m": 4},
            steps=20,
            curves={
                "gd": Curve("gd", grid=GridConfig(-1, 0, dense_seeds=(0, 1), dense_radius=Fraction(1, 2))),
                "adam+m": Curve("adam+m", grid=GridConfig(-2, -1, dense_seeds=(0, 1), dense_radius=Fraction(1, 2))),
            },
        )
    },
)
'''
GRID_KEYS = {"lr", "final_loss", "max_loss", "stable", "diverged"}


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """The tiny preset, importable as ``tiny_preset:TINY`` here and in child processes."""
    (tmp_path / "tiny_preset.py").write_text(TINY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    return get_preset("tiny_preset:TINY")


def count_training(monkeypatch) -> list[str]:
    """Record the run id of every run that heavytail.run trains in this process."""
    calls: list[str] = []
    real_train = runner_module.train

    def counting(problem, optimizer, steps, **kwargs):
        calls.append(steps)
        return real_train(problem, optimizer, steps, **kwargs)

    monkeypatch.setattr(runner_module, "train", counting)
    return calls


def check_summary(summary: dict, store: Store) -> None:
    assert summary["preset"] == "tiny" and summary["scale"] == "small"
    assert set(summary["optimizers"]) == {"gd", "adam+m"}
    for name, entry in summary["optimizers"].items():
        assert {"lr", "reason", "grid", "run_id", "group_loss_initial", "group_loss_final"} <= entry.keys()
        assert all(GRID_KEYS <= row.keys() for row in entry["grid"])
        assert entry["lr"] in [row["lr"] for row in entry["grid"]]
        chosen = next(row for row in entry["grid"] if row["lr"] == entry["lr"])
        assert chosen["stable"] and not chosen["diverged"]
        record = store.load(entry["run_id"])
        assert record.spec.optimizer == name and record.spec.lr == entry["lr"] and record.status == "complete"
        assert len(entry["group_loss_final"]) == 10
    for path in summary["figures"]:
        assert os.path.getsize(path) > 10_000


def test_reproduce_writes_summary_and_figure(tiny, tmp_path, monkeypatch):
    store = Store(tmp_path / "results")
    calls = count_training(monkeypatch)
    summary = reproduce(tiny, store=store, executor=LocalExecutor(workers=1), out=tmp_path / "out")
    check_summary(summary, store)
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert on_disk == {k: v for k, v in summary.items() if k != "summary"}
    assert summary["runs"]["computed"] == summary["runs"]["total"] == len(calls) == len(store.run_ids())
    # The grid was sparse (seed 0) then half powers around the best with seeds 0 and 1.
    grid = summary["optimizers"]["gd"]["grid"]
    assert {row["exponent"] for row in grid} >= {"-1", "0"}
    assert any(len(row["seeds"]) == 2 for row in grid)
    again = reproduce(tiny, store=store, executor=LocalExecutor(workers=1), out=tmp_path / "out")
    assert again["runs"]["computed"] == 0 and len(calls) == summary["runs"]["total"]
    assert again["optimizers"] == summary["optimizers"]


class InterruptAfter(LocalExecutor):
    """Runs some specs, then raises KeyboardInterrupt as a killed sweep would stop."""

    def __init__(self, runs: int) -> None:
        super().__init__(workers=1)
        self.left = runs

    def run(self, specs, store, device, progress):
        for spec in specs:
            if self.left == 0:
                raise KeyboardInterrupt
            self.left -= 1
            super().run([spec], store, device, progress)
        return []


class RecordSettings(LocalExecutor):
    """Runs every spec and keeps the execution settings each call was given (None: called without them)."""

    def __init__(self) -> None:
        super().__init__(workers=1)
        self.seen: list[Any] = []

    def run(self, specs, store, device, progress, settings=None):
        self.seen.append(settings)
        return super().run(specs, store, device, progress, settings)


def test_reproduce_passes_the_scales_checkpoint_interval_unless_given(tiny, tmp_path):
    """A scale's ``checkpoint_every`` reaches every run; one given explicitly wins; defaults pass nothing."""
    small = dataclasses.replace(tiny.scale("small"), checkpoint_every=7)
    long = dataclasses.replace(tiny, scales={"small": small})
    cases = ((long, None, {"checkpoint_every": 7}), (long, {"checkpoint_every": 3}, {"checkpoint_every": 3}),
             (tiny, {"checkpoint_every": None, "precision": "auto"}, None))  # fmt: skip
    for i, (preset, given, expected) in enumerate(cases):
        executor = RecordSettings()
        reproduce(preset, store=Store(tmp_path / f"store-{i}"), executor=executor, settings=given, out=tmp_path / "out")
        assert executor.seen and all(seen == expected for seen in executor.seen)


def test_interrupted_sweep_resumes_without_recomputing(tiny, tmp_path, monkeypatch):
    store = Store(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        reproduce(tiny, store=store, executor=InterruptAfter(5), out=tmp_path / "out")
    finished = set(store.run_ids())
    assert len(finished) == 5 and all(store.status(r) == "complete" for r in finished)
    calls = count_training(monkeypatch)
    summary = reproduce(tiny, store=store, executor=LocalExecutor(workers=1), out=tmp_path / "out")
    assert summary["runs"]["computed"] == len(calls) == summary["runs"]["total"] - 5
    check_summary(summary, store)


def test_two_sweeps_share_one_store(tiny, tmp_path):
    """Two processes reproduce the same preset into one store at once; both finish with the same choice."""
    command = [sys.executable, "-m", "heavytail", "reproduce", "tiny_preset:TINY", "--results", str(tmp_path),
               "--workers", "1", "--json"]  # fmt: skip
    children = [
        subprocess.Popen([*command, "--out", str(tmp_path / f"out{i}")], stdout=subprocess.PIPE, text=True, env=os.environ)
        for i in range(2)
    ]
    outputs = [json.loads(child.communicate(timeout=600)[0]) for child in children]
    assert [child.returncode for child in children] == [0, 0]
    store = Store(tmp_path)
    for summary in outputs:
        check_summary(summary, store)
    assert outputs[0]["optimizers"] == outputs[1]["optimizers"]
    assert all(store.status(r) == "complete" for r in store.run_ids())
    assert not list(tmp_path.glob("runs/*/lock.json")) and not list(tmp_path.glob("runs/*/.*.tmp"))


def test_submitit_local_executor_end_to_end(tiny, tmp_path):
    pytest.importorskip("submitit")
    store = Store(tmp_path)
    summary = reproduce(tiny, store=store, executor=SlurmExecutor(cluster="local"), out=tmp_path / "out")
    check_summary(summary, store)
    assert any((tmp_path / "slurm").iterdir())  # submitit's job folder: the runs went through it


def test_reproduce_cli_json_list_and_errors(tiny, tmp_path, capsys):
    assert main(["reproduce", "tiny_preset:TINY", "--results", str(tmp_path), "--workers", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    check_summary(summary, Store(tmp_path))
    assert main(["reproduce", "--list", "--json"]) == 0
    rows = {row["preset"]: row for row in json.loads(capsys.readouterr().out)}
    assert {"linear", "linear-optimizers", "linear-long", "linear-large-step", "linear-inputs"} <= rows.keys()
    assert rows["linear"]["v1_figure"] == "Fig 3" and rows["linear"]["neurips_figure"] == "Fig 4"
    assert rows["linear"]["scales"]["small"]["cpu_minutes"] < 10
    for argv, expected in [
        (["reproduce", "lineer"], "unknown preset 'lineer'; choose one of: cnn-barcoded,"),
        (["reproduce", "linear", "--scale", "huge"], "unknown scale 'huge' for preset 'linear'; choose one of: small, paper"),
        (["reproduce", "linear", "--workers", "0"], "got '0'; expected an integer >= 1"),
        (["reproduce", "linear", "--executor", "k8s"], "invalid choice: 'k8s' (choose from 'local', 'slurm')"),
    ]:
        assert exit_code(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err


def exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors
        return exc.code


@pytest.mark.parametrize("name", ["v1-fig3", "neurips-fig4", "linear"])
def test_aliases_name_the_linear_preset(name):
    assert get_preset(name).name == "linear"


def _cost_of_own_runs(preset: Preset, presets: dict) -> float:
    """Small-scale CPU minutes of the (problem, curve) pairs no earlier preset already runs (those are reused from the store)."""

    def runs(p: Preset) -> dict[tuple[str, str, tuple[int, int | None, int | None], str], tuple[str, str]]:
        small = p.scale("small")
        return {
            (p.problem_name(label), repr(sorted(options.items())), (small.steps, small.epochs, small.batch_size), repr(curve)): (label, name)
            for label, options in p.problems("small").items()
            for name, curve in small.curves.items()
        }

    earlier = [p for p in list(presets.values())[: list(presets).index(preset.name)] if isinstance(p, Preset)]
    done = {key for p in earlier for key in runs(p)}
    small, minutes = preset.scale("small"), 0.0
    for key, (label, name) in runs(preset).items():
        if key not in done:
            variants = {label: preset.variants[label]} if preset.variants else {}
            one = dataclasses.replace(preset, variants=variants, scales={"small": dataclasses.replace(small, curves={name: small.curves[name]})})
            minutes += one.cost("small")["cpu_minutes"]
    return minutes


def test_every_builtin_preset_is_well_formed():
    from heavytail.presets import PRESETS

    for preset in PRESETS.values():
        assert {"small", "paper"} <= set(preset.scales) <= {"small", "paper", "paper-sweep"}
        if isinstance(preset, Study):  # a computed figure: no curves to check
            assert preset.cost("small")["cpu_minutes"] <= 10, preset.name
            continue
        budget = 10 if preset.problem == "linear" else 15  # minutes on 2 cores the issues allow
        assert _cost_of_own_runs(preset, PRESETS) <= budget, preset.name
        for scale in preset.scales.values():
            assert scale.curves and (scale.steps > 0) != (scale.epochs is not None)
            for curve in scale.curves.values():
                assert (curve.grid is None) != (curve.fixed is None)
    assert PRESETS["linear"].scale("paper").problem_options == {"m": 11}
    assert PRESETS["linear"].scale("paper").steps == 1000
    assert PRESETS["linear-large-step"].scale("small").curves["gd, large step"].fixed == Fraction(3)


def test_grid_config_and_curve_validation():
    with pytest.raises(ValueError, match="exactly one of"):
        Curve("gd")
    tiny_curve = Curve("gd", grid=GridConfig(-1, 0, dense_seeds=(0, 1), dense_radius=Fraction(1, 2)))
    assert tiny_curve.expected_runs() == 2 + 3 * 2 - 1  # sparse 2; window of 3 with 2 seeds; its integer point's seed 0 ran
    assert Curve("gd", grid=GridConfig(-3, 0)).expected_runs() == 4 + 5 * 3 - 3
    preset = Preset(name="x", title="x", v1_figure="-", neurips_figure="-", scales={"small": Scale({"m": 3}, 5, {"gd": tiny_curve})})
    assert preset.cost("small")["runs"] == 7
    assert preset.cost("small")["tflop"] == pytest.approx(7 * 5 * 4 * 24 * 32 * 7 / 1e12)


def test_identical_curves_share_their_runs(tmp_path, monkeypatch):
    """Two curves that need the same runs (here: one fixed step inside the other's grid) compute them once."""
    grid = GridConfig(-1, 0, dense_seeds=())
    curves = {"a": Curve("gd", grid=grid), "b": Curve("gd", grid=grid), "c": Curve("gd", fixed=Fraction(-1))}
    preset = Preset(name="dup", title="dup", v1_figure="-", neurips_figure="-", scales={"small": Scale({"m": 3}, 5, curves)})
    calls = count_training(monkeypatch)
    summary = reproduce(preset, store=Store(tmp_path), executor=LocalExecutor(workers=1), out=tmp_path / "out")
    assert summary["optimizers"]["a"] == summary["optimizers"]["b"]
    assert summary["optimizers"]["c"]["lr"] == 0.1
    assert len(calls) == summary["runs"]["computed"] == len(Store(tmp_path).run_ids())


def test_registered_optimizer_reaches_worker_processes(tmp_path):
    """A name registered in this process works in spawned workers (which never ran the registration)."""
    import torch

    from heavytail.optim.registry import _REGISTRY, register_optimizer

    register_optimizer("sgd-half-momentum", torch.optim.SGD, momentum=0.5)
    try:
        curves = {"sgd-half-momentum": Curve("sgd-half-momentum", fixed=Fraction(-1)), "gd": Curve("gd", fixed=Fraction(-1))}
        preset = Preset(name="reg", title="reg", v1_figure="-", neurips_figure="-", scales={"small": Scale({"m": 3}, 5, curves)})
        summary = reproduce(preset, store=Store(tmp_path), executor=LocalExecutor(workers=2), out=tmp_path / "out")
        assert summary["runs"]["computed"] == 2
        record = Store(tmp_path).load(summary["optimizers"]["sgd-half-momentum"]["run_id"])
        assert record.status == "complete" and record.spec.optimizer == "sgd-half-momentum"
        del _REGISTRY["sgd-half-momentum"]  # a store stays readable when its optimizer is unknown here
        assert len(Store(tmp_path).to_frame()) == 2
        assert Store(tmp_path).load(record.run_id).spec.label().startswith("linear(m=3) sgd-half-momentum")
    finally:
        _REGISTRY.pop("sgd-half-momentum", None)


def test_presets_declare_the_papers_settings():
    """Each figure module carries the paper's settings (paper summary sections 5.4, 5.5; decisions D2, D7)."""
    from heavytail.presets import linear_inputs, linear_large_step, linear_long, linear_optimizers

    assert set(linear_optimizers.PRESET.scale("paper").curves) == {
        "gd", "gd+m", "adam", "adam+m", "normgd", "normgd+m", "sign", "sign+m",
    }  # fmt: skip
    assert linear_optimizers.PRESET.scale("paper").problem_options == {"m": 11}  # uniform inputs (D7)
    long = linear_long.PRESET.scale("paper")
    assert long.problem_options == {"m": 7} and long.steps == 10_000 and long.horizons == (100, 1_000, 10_000)
    assert long.curves["gd"].fixed == Fraction(-2)
    large = linear_large_step.PRESET.scale("paper")
    assert {c.fixed for c in large.curves.values()} == {Fraction(3), Fraction(-1)} and large.show_steps == 1_000
    inputs = linear_inputs.PRESET
    assert inputs.problems("small") == {
        "N(1,1)": {"m": 7, "inputs": "gaussian", "mean": 1.0, "scale": 1.0},
        "N(0,1)": {"m": 7, "inputs": "gaussian", "mean": 0.0, "scale": 1.0},
    }
    gd = inputs.scale("paper").curves["gd"].grid
    assert (gd.lo, gd.hi, gd.bounds, gd.dense_seeds) == (-4, 3, (-4, 3), (0,))  # every half power, one seed


def test_cnn_and_curvature_presets_declare_the_papers_settings():
    """CNN figures (paper summary 2.4, 5.4), and the gradient/Hessian paths' fixed paper step sizes (5.5, D31)."""
    from heavytail.presets import cnn_barcoded, cnn_barcoded_only, cnn_optimizers, grad_hessian_adam, grad_hessian_gd
    from heavytail.problems import make_problem_options

    barcoded = cnn_barcoded.PRESET
    paper = barcoded.problems("paper")
    assert {barcoded.problem_name(label) for label in paper} == {"mnist", "mnist-barcoded"}
    assert make_problem_options("mnist-barcoded", paper["mnist-barcoded"]).sizes() == (101_200, 10_250)  # the paper's n, c
    assert barcoded.scale("paper").steps == 300 and set(barcoded.scale("paper").curves) == {"gd+m", "adam+m"}
    only = cnn_barcoded_only.PRESET.scale("paper")
    assert (only.steps, only.show_steps) == (600, 400) and only.curves["gd+m"].grid.sparse_seeds == (0, 1, 2)
    assert make_problem_options("barcoded-only", cnn_barcoded_only.PRESET.problems("paper")["barcoded-only"]).sizes() == (51_200, 10_240)
    assert set(cnn_optimizers.PRESET.scale("paper").curves) == {
        "gd", "gd+m", "adam", "adam+m", "normgd", "normgd+m", "sign", "sign+m",
    }  # fmt: skip
    small = cnn_optimizers.PRESET.scale("small").curves
    assert small["gd+m"] == barcoded.scale("small").curves["gd+m"]  # shared runs with cnn-barcoded
    assert grad_hessian_adam.PRESET.scale("paper")["lr"] == 10**-3.5 and grad_hessian_gd.PRESET.scale("paper")["problem_options"] == {"m": 11}


STUDY_MODULE = '''
from heavytail.presets import Study

def compute(params, *, store, out, device, progress):
    (out / "figure.png").write_bytes(b"png")
    return {"value": params["k"] * 2, "text": ["doubled"], "figures": [str(out / "figure.png")]}

STUDY = Study("tiny-study", "a computed figure", "-", "-", scales={"small": {"k": 21}}, compute=compute, minutes={"small": (0.1, 0.01)})
'''


def test_study_preset_runs_through_reproduce(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny_study.py").write_text(STUDY_MODULE)
    assert main(["reproduce", "tiny_study:STUDY", "--results", str(tmp_path / "res"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["value"] == 42 and summary["preset"] == "tiny-study"
    assert json.loads((tmp_path / "res" / "reproduce" / "tiny-study-small" / "summary.json").read_text())["value"] == 42
    assert main(["reproduce", "tiny_study:STUDY", "--scale", "paper", "--results", str(tmp_path / "res")]) == 2
