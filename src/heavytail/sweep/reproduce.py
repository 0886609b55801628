"""Reproduce a preset: run the protocol's grid for every curve, select step sizes, write figure and summary.

The sweep proceeds in rounds: each round asks the protocol which (step size, seed) runs each curve
still needs, runs all of them through the executor, and reads their outcomes back from the store.
Runs already in the store are reused, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from heavytail.presets.base import Curve, Preset, Scale, Study
from heavytail.runner import epoch_steps, summarize
from heavytail.spec import RunSpec
from heavytail.store import RunRecord, Store, write_json
from heavytail.sweep.executors import Executor, LocalExecutor
from heavytail.sweep.protocol import Outcome, grid_table, lr_of, next_runs, select_step_size


class SweepError(RuntimeError):
    """Some runs of a sweep failed; every run that finished is kept in the store."""


@dataclass(frozen=True)
class _Key:
    problem: str  # problem label (a preset's variant, or the problem name)
    curve: str  # curve label


_RUN_DEFAULTS = {"checkpoint_every": None, "precision": "auto", "compile": False}  # heavytail.run's execution keywords


def _spec(preset: Preset, label: str, options: dict[str, Any], curve: Curve, s: Scale, exponent: Fraction, seed: int, steps: int | None = None) -> RunSpec:
    """A run of the sweep; ``steps`` defaults to the scale's (an epoch horizon is counted once per problem, :func:`_steps`)."""
    return RunSpec(
        problem=preset.problem_name(label),
        problem_options=options,
        optimizer=curve.optimizer,
        optimizer_options=curve.options,
        lr=lr_of(exponent),
        steps=s.steps if steps is None else steps,
        seed=seed,
        batch_size=s.batch_size,
    )


def _steps(preset: Preset, s: Scale, label: str, options: dict[str, Any]) -> int:
    """The runs' optimizer steps: the scale's, or its epochs times the mini-batches in one pass over the data."""
    if s.epochs is None:
        return s.steps
    return epoch_steps(_spec(preset, label, options, next(iter(s.curves.values())), s, Fraction(0), 0), s.epochs)


def outcome_of(record: RunRecord, exponent: Fraction) -> Outcome:
    """The protocol's view of a finished run: initial, final and maximum loss, diverged or not."""
    result = record.result or {}
    return Outcome(
        exponent=exponent,
        seed=record.spec.seed,
        initial_loss=result["initial_loss"],
        final_loss=result.get("final_loss"),
        max_loss=result.get("max_loss"),
        diverged=record.status == "diverged",
        finished=record.status == "complete" and result.get("steps_done") == record.spec.steps,
    )


def reproduce(
    preset: Preset,
    scale: str = "small",
    *,
    store: Store | None = None,
    executor: Executor | None = None,
    device: str = "cpu",
    out: Path | None = None,
    progress: bool = False,
    problem_options: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``preset`` at ``scale`` and return its summary (also written to ``out/summary.json``).

    ``problem_options`` override the preset's options of every problem (e.g. ``{"log_mode": "train"}``);
    the default ``out`` then names them, so the figure of the preset as declared is kept.
    ``settings``: :func:`heavytail.run`'s execution keywords for every run (``checkpoint_every``,
    ``precision``, ``compile``); ``checkpoint_every`` defaults to the scale's.
    """
    s = preset.scale(scale)
    settings = {"checkpoint_every": s.checkpoint_every, **{k: v for k, v in (settings or {}).items() if v is not None}}
    settings = {k: v for k, v in settings.items() if _RUN_DEFAULTS.get(k, object()) != v}  # empty: an executor without settings works
    store = store or Store()
    executor = executor or LocalExecutor()
    overrides = dict(problem_options or {})
    problems = {label: {**options, **overrides} for label, options in preset.problems(scale).items()}
    steps = {label: _steps(preset, s, label, options) for label, options in problems.items()}
    plans = {_Key(p, c): curve for p in problems for c, curve in s.curves.items()}
    outcomes: dict[_Key, dict[tuple[Fraction, int], Outcome]] = {key: {} for key in plans}
    start, computed = time.perf_counter(), 0
    try:
        while True:
            wanted: dict[str, tuple[RunSpec, list[tuple[_Key, Fraction]]]] = {}  # run id -> spec, its curves
            for key, curve in plans.items():
                if curve.fixed is not None:
                    needed = [] if (curve.fixed, 0) in outcomes[key] else [(curve.fixed, 0)]
                else:
                    needed = next_runs(outcomes[key].values(), curve.grid)
                for exponent, seed in needed:
                    spec = _spec(preset, key.problem, problems[key.problem], curve, s, exponent, seed, steps[key.problem])
                    wanted.setdefault(spec.run_id, (spec, []))[1].append((key, exponent))
            if not wanted:
                break
            todo = [spec for run_id, (spec, _) in wanted.items() if store.finished(run_id) is None]  # verified, checksums included
            extra = (settings,) if settings else ()
            failures = executor.run(todo, store, device, progress, *extra) if todo else []
            if failures:
                lines = "; ".join(f"{f.spec.label()}: {f.error}" for f in failures[:5])
                raise SweepError(f"{len(failures)} run(s) failed (finished runs are kept; rerun to resume): {lines}")
            computed += len(todo)
            for run_id, (spec, users) in wanted.items():
                record = store.load(run_id)
                for key, exponent in users:
                    outcomes[key][(exponent, spec.seed)] = outcome_of(record, exponent)
    except BaseException:
        executor.close(abort=True)
        raise
    executor.close()

    summary: dict[str, Any] = {"preset": preset.name, "scale": scale}
    records: dict[str, dict[str, RunRecord]] = {}
    sections = {}
    for label, options in problems.items():
        section, records[label] = {}, {}
        for name, curve in s.curves.items():
            key = _Key(label, name)
            entry, exponent = _choose(curve, outcomes[key])
            first_seed = min(seed for (e, seed) in outcomes[key] if e == exponent)
            record = store.load(_spec(preset, label, options, curve, s, exponent, first_seed, steps[label]).run_id)
            records[label][name] = record
            brief = summarize(record)
            entry.update(
                run_id=record.run_id,
                group_loss_initial=brief["group_loss_initial"],
                group_loss_final=brief["group_loss_final"],
                **{k: brief[k] for k in ("val_group_loss_initial", "val_group_loss_final") if k in brief},
            )
            if s.show_steps is not None and s.show_steps < steps[label]:
                entry.update(_shown(record, s.show_steps))
            section[name] = entry
        sections[label] = {
            "problem": preset.problem_name(label),
            "problem_options": options,
            "sizes": _sizes(records[label]),
            "steps": steps[label],
            "optimizers": section,
        }
    if s.epochs is not None or s.batch_size is not None:
        summary.update(epochs=s.epochs, batch_size=s.batch_size)
    if preset.variants:
        summary["problems"] = sections
    else:
        only = next(iter(sections.values()))
        summary.update(problem_options=only["problem_options"], sizes=only["sizes"], steps=only["steps"], optimizers=only["optimizers"])
    suffix = "".join(f"-{key}={value}" for key, value in sorted(overrides.items()))
    out = Path(out) if out is not None else store.root / "reproduce" / f"{preset.name}-{scale}{suffix}"
    summary["figures"] = [str(p) for p in _draw(preset, scale, records, out)]
    summary["runs"] = {"total": sum(len(o) for o in outcomes.values()), "computed": computed}
    summary["wall_time"] = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "summary.json", summary)
    summary = json.loads((out / "summary.json").read_text())  # exactly what the file says (JSON types, null)
    summary["summary"] = str(out / "summary.json")
    return summary


def run_study(
    study: Study,
    scale: str = "small",
    *,
    store: Store | None = None,
    device: str = "cpu",
    out: Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Compute a :class:`Study` at ``scale``; its summary gains preset, scale and wall time and goes to ``out/summary.json``."""
    store = store or Store()
    out = Path(out) if out is not None else store.root / "reproduce" / f"{study.name}-{scale}"
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = study.compute(study.scale(scale), store=store, out=out, device=device, progress=progress)
    summary = {"preset": study.name, "scale": scale, **result, "wall_time": time.perf_counter() - start}
    write_json(out / "summary.json", summary)
    summary = json.loads((out / "summary.json").read_text())
    summary["summary"] = str(out / "summary.json")
    return summary


def _choose(curve: Curve, outcomes: dict[tuple[Fraction, int], Outcome]) -> tuple[dict[str, Any], Fraction]:
    """The summary entry of one curve (step size, reason, grid) and the chosen exponent."""
    if curve.fixed is not None:
        outcome = outcomes[(curve.fixed, 0)]
        if outcome.diverged:
            raise SweepError(f"the fixed step size 10^{float(curve.fixed):g} of {curve.optimizer} diverged")
        reason = f"fixed by the paper: 10^{float(curve.fixed):g} (no grid search for this figure)"
        return {"lr": lr_of(curve.fixed), "reason": reason, "grid": grid_table(outcomes.values())}, curve.fixed
    selection = select_step_size(outcomes.values(), curve.grid)
    entry = {"lr": selection.lr, "reason": selection.reason, "rule": selection.rule, "grid": selection.grid}
    return entry, selection.exponent


def _shown(record: RunRecord, show_steps: int) -> dict[str, Any]:
    """The group losses at the last logged step the figure shows, so the summary matches the picture."""
    history = record.history
    row = int(np.flatnonzero(history.step <= show_steps)[-1])
    return {"show_step": int(history.step[row]), "group_loss_shown": history.group_loss()[row].tolist()}


def _sizes(records: dict[str, RunRecord]) -> dict[str, Any]:
    first = next(iter(records.values()))
    return (first.result or {}).get("problem_info", {})


def _draw(preset: Preset, scale: str, records: dict[str, dict[str, RunRecord]], out: Path) -> list[Path]:
    """The preset's figure(s): one per problem, PNG and PDF."""
    from heavytail.plots import figure_horizons, figure_overall, figure_per_group, save_figure

    s = preset.scale(scale)
    paths: list[Path] = []
    for label, by_curve in records.items():
        heading = f"{preset.title}: {label}" if preset.variants else preset.title
        title = f"{heading}\n({scale} scale; v1 {preset.v1_figure}, NeurIPS {preset.neurips_figure})"
        labels = [f"{name}, lr={r.spec.lr:.3g}" for name, r in by_curve.items()]
        if preset.figure == "horizons":
            fig = figure_horizons(next(iter(by_curve.values())), s.horizons, title=title)
        elif preset.figure == "overall":
            fig = figure_overall(list(by_curve.values()), labels=labels, max_step=s.show_steps, title=title)
        else:
            fig = figure_per_group(list(by_curve.values()), labels=labels, max_step=s.show_steps, title=title)
        name = "figure" if not preset.variants else "figure-" + "".join(ch if ch.isalnum() else "_" for ch in label).strip("_")
        paths += save_figure(fig, out / name)
    return paths
