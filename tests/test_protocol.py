"""The step-size selection protocol (paper 5.1-5.3, D15) on fabricated outcome tables."""

from __future__ import annotations

import json
import math
from fractions import Fraction as F

import pytest

from heavytail.options import ConfigError
from heavytail.sweep import (
    GridConfig,
    Outcome,
    SelectionError,
    dense_grid,
    grid_table,
    lr_of,
    next_runs,
    parse_exponent,
    select_step_size,
    sparse_grid,
)

NAN, INF = float("nan"), float("inf")


def run(e, seed=0, final=0.5, init=1.0, max_loss=None, **kw) -> Outcome:
    """A fabricated outcome; by default finished and stable (max loss = initial loss)."""
    return Outcome(F(e), seed, init, final, init if max_loss is None else max_loss, **kw)


def diverged(e, seed=0, final=NAN, init=1.0) -> Outcome:
    return Outcome(F(e), seed, init, final, INF, diverged=True, finished=False)


def drive(config, simulate, one_at_a_time=False, limit=500):
    """Run the planning loop to completion; returns all outcomes."""
    outcomes: list[Outcome] = []
    while todo := next_runs(outcomes, config):
        assert len(set(todo)) == len(todo) and not {(o.exponent, o.seed) for o in outcomes} & set(todo)
        outcomes += [simulate(e, s) for e, s in (todo[:1] if one_at_a_time else todo)]
        assert len(outcomes) < limit, "planning loop does not terminate"
    return outcomes


def bowl(opt, unstable=(), diverge_above=None):
    """Fake training: final loss a capped parabola in the exponent, minimal at ``opt``; per-seed noise."""

    def simulate(e, seed):
        init = 2.0 + 0.01 * seed
        if diverge_above is not None and e > diverge_above:
            return diverged(e, seed, init=init)
        final = min(0.1 + 0.05 * float(e - opt) ** 2, 1.9) + 0.001 * seed  # tiny steps barely move the loss
        return run(e, seed, final, init, max_loss=init * 1.2 if e in unstable else init)

    return simulate


# -- step sizes ---------------------------------------------------------------------------------------


def test_lr_of_and_parse_exponent():
    assert lr_of(F(-3)) == pytest.approx(1e-3, rel=1e-15)
    assert lr_of(F(-5, 2)) == 10.0**-2.5
    for text, e in [("1e-3", F(-3)), ("1E2", F(2)), ("1.0e-4", F(-4)), ("10^-2.5", F(-5, 2)),
                    ("10**-5/2", F(-5, 2)), ("-2.5", F(-5, 2)), ("-5/2", F(-5, 2)), (" 0 ", F(0))]:
        assert parse_exponent(text) == e, text
    for bad in ["3e-3", "1e-2.5", "abc", "", "10^x", "inf"]:
        with pytest.raises(ConfigError):
            parse_exponent(bad)


def test_grids():
    assert sparse_grid(-3, 0) == [F(-3), F(-2), F(-1), F(0)]
    assert dense_grid(F(-3)) == [F(-4), F(-7, 2), F(-3), F(-5, 2), F(-2)]
    assert dense_grid(F(-3), radius=F(3, 2)) == [F(k, 2) for k in range(-9, -2)]
    assert dense_grid(F(0), radius=F(0)) == [F(0)]
    assert dense_grid(F(0), radius=F(1), step=F(1, 4)) == [F(k, 4) for k in range(-4, 5)]


def test_outcome_validation_and_duplicates():
    with pytest.raises(ValueError):
        Outcome(F(-1), 0, 1.0, None, None, diverged=True, finished=True)
    with pytest.raises(ValueError):
        Outcome(F(-1), 0, NAN, 0.5, 1.0)
    with pytest.raises(ValueError, match="two outcomes"):
        select_step_size([run(-1), run(-1)])
    assert Outcome(-2, 0, 1.0, 0.5, 1.0).exponent == F(-2)  # ints are normalised to Fraction


def test_grid_config_validation():
    cfg = GridConfig(-3, -1, dense_seeds=[0, 1], dense_radius=2, max_extensions=2)
    assert cfg.dense_seeds == (0, 1) and cfg.dense_radius == F(2) and cfg.bounds == (-5, 1)
    for kw in [dict(lo=0, hi=-1), dict(lo=-1, hi=0, sparse_seeds=()), dict(lo=-1, hi=0, dense_radius=-1),
               dict(lo=-1, hi=0, max_extensions=-1)]:
        with pytest.raises(ConfigError):
            GridConfig(**kw)


# -- scoring (5.2) ------------------------------------------------------------------------------------


def test_selection_uses_max_over_seeds_not_mean():
    # -2: mean 0.3, max 0.7;  -3: mean 0.4, max 0.4  ->  the mean would pick -2, the paper's max picks -3
    outcomes = [run(-2, s, f) for s, f in enumerate([0.1, 0.1, 0.7])]
    outcomes += [run(-3, s, 0.4) for s in range(3)] + [run(-4, s, 0.9) for s in range(3)]
    sel = select_step_size(outcomes)
    assert sel.exponent == F(-3) and sel.rule == "min-score" and sel.edge is None
    assert sel.lr == lr_of(F(-3))
    row = {r["exponent"]: r for r in sel.grid}["-2"]
    assert row["score"] == row["final_loss"] == 0.7 and row["seeds"] == [0, 1, 2]


def test_single_seed_step_size_competes_with_its_single_value():
    outcomes = [run(-1, 0, 0.2)] + [run(F(-3, 2), s, f) for s, f in enumerate([0.1, 0.25, 0.3])] + [run(-2, 0, 0.5)]
    sel = select_step_size(outcomes)
    assert sel.exponent == F(-1)
    assert [r["seeds"] for r in sel.grid] == [[0], [0, 1, 2], [0]]


def test_score_replaces_blown_up_unfinished_and_nonfinite_runs_by_initial_loss():
    assert run(-1, final=1.4).score == 1.4
    assert run(-1, final=1.5).score == 1.5  # exactly 1.5x is kept
    assert run(-1, final=1.6, max_loss=1.6).score == 1.0
    assert run(-1, final=2.9, init=2.0, max_loss=2.9).score == 2.9  # relative to the run's own initial loss
    assert run(-1, final=0.3, finished=False).score == 1.0
    assert run(-1, final=None, finished=False).score == 1.0
    assert diverged(-1, final=1e-9).score == 1.0


def test_one_and_a_half_rule_decides_the_best_score():
    # raw finals would make -1 best (1.4 < 1.6); with 5.2(b) the 0 run scores its initial loss 1.0
    outcomes = [run(-1, final=1.4, max_loss=1.4), run(0, final=1.6, max_loss=1.6)]
    sel = select_step_size(outcomes)
    assert sel.best_exponent == F(0)
    assert [r["score"] for r in sel.grid] == [1.4, 1.0]
    assert [r["final_loss"] for r in sel.grid] == [1.4, 1.6]  # the table keeps the raw value
    # both are unstable and nothing smaller is stable: the best is kept and the reason says so
    assert sel.rule == "unstable-kept" and "no smaller evaluated step size is stable: kept" in sel.reason


def test_diverged_step_size_is_never_selected():
    outcomes = [
        diverged(0, final=1e-9),  # garbage tiny final loss from a diverged run
        run(-1, final=NAN, max_loss=NAN, finished=False),  # ended on NaN without the flag
        run(-2, 0, 0.01), diverged(-2, 1, final=0.001),  # one diverged seed spoils the step size
        run(-3, 0, 0.5), run(-4, 0, 0.8),
    ]
    sel = select_step_size(outcomes)
    assert sel.exponent == F(-3) and sel.rule == "min-score"
    rows = {r["exponent"]: r for r in sel.grid}
    for e in ("0", "-1", "-2"):
        assert rows[e]["diverged"] and rows[e]["final_loss"] is None and not rows[e]["stable"]
    assert rows["0"]["score"] == 1.0 and rows["0"]["max_loss"] is None
    assert not rows["-3"]["diverged"] and rows["-3"]["final_loss"] == 0.5


def test_all_bad_grid_and_empty_table_raise():
    with pytest.raises(SelectionError, match="every evaluated step size diverged"):
        select_step_size([diverged(e) for e in range(-3, 1)])
    with pytest.raises(SelectionError, match="no runs"):
        select_step_size([])


# -- stability fallback (5.3, D15) --------------------------------------------------------------------


def test_stability_fallback_one_step():
    outcomes = [
        run(-1, final=0.9),
        run(-2, 0, 0.1, max_loss=1.2), run(-2, 1, 0.1),  # best score, but seed 0 rose above its initial loss
        run(F(-5, 2), 0, 0.2), run(F(-5, 2), 1, 0.2),
        run(-3, 0, 0.3),
        run(-4, 0, 0.6),
    ]
    sel = select_step_size(outcomes)
    assert (sel.exponent, sel.best_exponent, sel.rule) == (F(-5, 2), F(-2), "stability-fallback")
    assert "stability fallback to 10^-2.5" in sel.reason and "past unstable" not in sel.reason
    assert [r["stable"] for r in sel.grid] == [True, True, True, False, True]


def test_stability_fallback_multiple_steps_skips_unstable_and_diverged():
    outcomes = [
        run(-2, final=0.1, max_loss=1.5),
        run(F(-5, 2), final=0.15, max_loss=1.1),
        diverged(-3),
        run(F(-7, 2), final=0.3),
        run(-4, final=0.4),
        run(-1, final=0.2),  # a larger stable step size is never a fallback
    ]
    sel = select_step_size(outcomes)
    assert (sel.exponent, sel.rule) == (F(-7, 2), "stability-fallback")
    assert "past unstable 10^-2.5, 10^-3" in sel.reason


def test_stability_uses_a_strict_comparison_with_float_tolerance():
    assert run(-1, max_loss=1.0).stable
    assert run(-1, max_loss=1.0 + 1e-14).stable
    assert not run(-1, max_loss=1.0 + 1e-9).stable
    assert not Outcome(F(-1), 0, 1.0, 0.5, None).stable  # unknown counts as unstable
    assert not diverged(-1).stable


# -- planning (5.1) -----------------------------------------------------------------------------------


def test_sparse_pass_first():
    cfg = GridConfig(-4, -1, sparse_seeds=(0, 1))
    assert next_runs([], cfg) == [(F(e), s) for e in range(-4, 0) for s in (0, 1)]
    done = [run(-4, 0), run(-3, 1)]
    assert (F(-4), 0) not in next_runs(done, cfg) and len(next_runs(done, cfg)) == 6


@pytest.mark.parametrize("opt, extra", [(F(2), F(0)), (F(-9), F(-5))])
def test_sparse_pass_extends_past_an_edge_optimum(opt, extra):
    cfg = GridConfig(-4, -1)
    sim = bowl(opt)
    outcomes = [sim(e, 0) for e in sparse_grid(-4, -1)]
    assert next_runs(outcomes, cfg) == [(extra, 0)]  # one decade beyond the edge holding the best


def test_all_diverged_sparse_pass_extends_downward_then_gives_up():
    cfg = GridConfig(-2, 0, max_extensions=3)
    outcomes = drive(cfg, lambda e, s: diverged(e, s))
    assert sorted({o.exponent for o in outcomes}) == sparse_grid(-5, 0)
    with pytest.raises(SelectionError, match="diverged"):
        select_step_size(outcomes, cfg)


def test_dense_pass_window_and_seeds():
    cfg = GridConfig(-6, 0)
    sim = bowl(F(-3))
    outcomes = [sim(e, 0) for e in sparse_grid(-6, 0)]
    todo = next_runs(outcomes, cfg)
    window = [F(-4), F(-7, 2), F(-3), F(-5, 2), F(-2)]
    assert todo == [(e, s) for e in window for s in (0, 1, 2) if not (e.denominator == 1 and s == 0)]
    wide = GridConfig(-6, 0, dense_radius=F(2), dense_seeds=(0, 5))
    assert {e for e, _ in next_runs(outcomes, wide)} == {F(k, 2) for k in range(-10, -1)}
    assert {s for _, s in next_runs(outcomes, wide)} == {0, 5}
    assert next_runs(outcomes, GridConfig(-6, 0, dense_seeds=())) == []  # sparse-only preset


def test_dense_pass_skips_step_sizes_that_already_diverged():
    cfg = GridConfig(-4, 0)
    sim = bowl(F(-2), diverge_above=F(-3, 2))
    outcomes = [sim(e, 0) for e in sparse_grid(-4, 0)]
    todo = next_runs(outcomes, cfg)
    assert {e for e, _ in todo} == {F(-3), F(-5, 2), F(-2), F(-3, 2)}  # no more seeds at the diverged -1


def test_dense_pass_extends_when_the_pooled_best_is_on_the_edge():
    cfg = GridConfig(-3, -1, max_extensions=1)  # bounds: -4 .. 0
    sparse = {F(-3): 0.5, F(-2): 0.3, F(-1): 0.4}  # sparse best -2, interior
    outcomes = [run(e, 0, f) for e, f in sparse.items()]
    assert {e for e, _ in next_runs(outcomes, cfg)} == set(dense_grid(F(-2)))
    dense = {F(-3): 0.5, F(-5, 2): 0.45, F(-2): 0.45, F(-3, 2): 0.42, F(-1): 0.4}
    outcomes += [run(e, s, f) for e, f in dense.items() for s in (1, 2)]
    outcomes += [run(e, 0, f) for e, f in dense.items() if e.denominator == 2]
    assert select_step_size(outcomes).edge == "upper"  # pooled best -1 is the top of everything evaluated
    assert next_runs(outcomes, cfg) == [(F(-1, 2), s) for s in (0, 1, 2)]
    better = outcomes + [run(F(-1, 2), s, 0.35) for s in range(3)]
    assert next_runs(better, cfg) == [(F(0), s) for s in (0, 1, 2)]  # still on the edge: up to the bound 0
    done = better + [run(0, s, 0.3) for s in range(3)]
    assert next_runs(done, cfg) == []
    sel = select_step_size(done, cfg)
    assert sel.exponent == F(0) and "accepted after max_extensions=1" in sel.reason
    worse = outcomes + [run(F(-1, 2), s, 0.6) for s in range(3)]
    assert next_runs(worse, cfg) == [] and select_step_size(worse, cfg).exponent == F(-1)


@pytest.mark.parametrize("one_at_a_time", [False, True])
@pytest.mark.parametrize(
    "opt, lo, hi",
    [(F(-5, 2), -6, 0), (F(-3, 2), -6, -3), (F(-5), -3, 0), (F(-4), -6, 0), (F(-5, 2), -8, -6)],
)
def test_planning_loop_finds_the_true_optimum(opt, lo, hi, one_at_a_time):
    cfg = GridConfig(lo, hi)
    outcomes = drive(cfg, bowl(opt, diverge_above=opt + 2), one_at_a_time)
    sel = select_step_size(outcomes, cfg)
    assert sel.exponent == opt and sel.rule == "min-score" and sel.edge is None
    neighbours = dense_grid(opt, radius=F(1, 2))  # the optimum is bracketed by dense 3-seed runs
    assert {(o.exponent, o.seed) for o in outcomes} >= {(e, s) for e in neighbours for s in (0, 1, 2)}
    assert all(cfg.bounds[0] <= o.exponent <= cfg.bounds[1] for o in outcomes)


def test_planning_loop_is_the_same_batched_or_one_run_at_a_time():
    cfg = GridConfig(-4, -2)
    sim = bowl(F(-1, 2), diverge_above=F(1))
    batched = drive(cfg, sim)
    single = drive(cfg, sim, one_at_a_time=True)
    assert {(o.exponent, o.seed) for o in batched} == {(o.exponent, o.seed) for o in single}


def test_planning_loop_with_stability_fallback():
    opt = F(-5, 2)
    cfg = GridConfig(-6, 0)
    outcomes = drive(cfg, bowl(opt, unstable={opt}, diverge_above=opt + 2))
    sel = select_step_size(outcomes, cfg)
    assert (sel.exponent, sel.best_exponent, sel.rule) == (opt - F(1, 2), opt, "stability-fallback")


@pytest.mark.parametrize("dense_seeds", [(), (0, 1, 2)])
def test_edge_accepted_after_max_extensions(dense_seeds):
    cfg = GridConfig(-3, -1, dense_seeds=dense_seeds, max_extensions=2)
    outcomes = drive(cfg, lambda e, s: run(e, s, 0.5 - 0.05 * float(e)))  # larger is always better
    assert max(o.exponent for o in outcomes) == F(1) == cfg.bounds[1]  # grown two decades, never past the bound
    sel = select_step_size(outcomes, cfg)
    assert (sel.exponent, sel.edge) == (F(1), "upper")
    assert "upper edge" in sel.reason and "accepted after max_extensions=2" in sel.reason
    unplanned = select_step_size([o for o in outcomes if o.exponent <= -1], cfg)
    assert unplanned.edge == "upper" and "not extended" in unplanned.reason


def test_selection_to_dict_is_json():
    outcomes = [run(-2, 0, 0.1, max_loss=1.2), run(F(-5, 2), 0, 0.2), diverged(-1), run(-3, 0, 0.3)]
    sel = select_step_size(outcomes)
    d = json.loads(json.dumps(sel.to_dict(), allow_nan=False))
    assert d["exponent"] == "-5/2" and d["best_exponent"] == "-2" and d["rule"] == "stability-fallback"
    assert d["lr"] == lr_of(F(-5, 2)) and "10^-2" in d["reason"]
    assert [r["exponent"] for r in d["grid"]] == ["-3", "-5/2", "-2", "-1"]
    assert all(set(r) == {"lr", "exponent", "final_loss", "max_loss", "stable", "diverged", "score", "seeds"}
               for r in d["grid"])
    assert [r["lr"] for r in d["grid"]] == sorted(r["lr"] for r in d["grid"])
    assert grid_table(outcomes) == sel.grid
    assert not math.isnan(d["grid"][-1]["score"])


def test_stability_fallback_onto_a_single_seed_step_size_runs_its_other_seeds():
    cfg = GridConfig(-3, -1, dense_radius=F(1, 2))
    simulate = bowl(F(-2), unstable={F(-2), F(-5, 2), F(-3, 2)})
    outcomes = drive(cfg, simulate)
    sel = select_step_size(outcomes, cfg)
    assert sel.rule == "stability-fallback" and sel.exponent == F(-3)
    seeds = sorted(o.seed for o in outcomes if o.exponent == F(-3))
    assert seeds == [0, 1, 2]  # judged on the same seeds as its rivals


def test_stability_fallback_walks_the_half_decade_grid_running_what_is_missing():
    """The fallback is the next smaller half power, run if the sweep never evaluated it (paper 5.3)."""
    cfg = GridConfig(-2, -1, dense_seeds=())  # sparse only: 10^-1.5 is never part of the plan
    simulate = bowl(F(-1), unstable={F(-1)})  # 10^-1 scores best but is unstable
    outcomes = drive(cfg, simulate)
    assert {(o.exponent, o.seed) for o in outcomes} >= {(F(-3, 2), 0)}
    sel = select_step_size(outcomes, cfg)
    assert (sel.best_exponent, sel.exponent, sel.rule) == (F(-1), F(-3, 2), "stability-fallback")
