"""The paper's step-size selection protocol (section 5) as pure functions over a table of run outcomes.

Step sizes are ``10**e`` with ``e`` a :class:`~fractions.Fraction`, so run ids stay stable. A sweep driver
runs what :func:`next_runs` asks for until it returns ``[]``, then calls :func:`select_step_size`:

* scoring (5.2): a run scores its final loss, or its initial loss when it did not finish, diverged, ended
  on NaN/inf, or ended above 1.5x its initial loss; seeds aggregate with max; the lowest score wins and a
  step size with any diverged seed is never selected;
* stability fallback (5.3, D15): if the winner's loss ever rose above its initial value, the next smaller
  evaluated step size is taken instead, going down while that one is unstable too;
* grid (5.1): a sparse pass over integer exponents, extended a decade at a time while its best sits on
  an edge, then a dense half-power pass around the sparse best, extended while the pooled best sits on
  the edge of everything evaluated; extensions stop ``max_extensions`` decades past ``[lo, hi]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterable

from heavytail.options import ConfigError

BLOWUP_FACTOR = 1.5  # 5.2(b): a final loss above this many times the initial loss scores as the initial loss
STABILITY_RTOL = 1e-12  # relative float noise tolerated when comparing the maximum loss with the initial one
HALF = Fraction(1, 2)


class SelectionError(ValueError):
    """No step size can be selected (no runs, or every evaluated step size diverged)."""


def lr_of(e: Fraction) -> float:
    """The step size ``10**e``: the single place where an exponent becomes a float."""
    return 10.0 ** float(e)


def parse_exponent(text: str) -> Fraction:
    """Read ``"1e-3"``, ``"10^-2.5"``, ``"10**-5/2"`` or a bare exponent (``"-2.5"``, ``"-5/2"``)."""
    s = text.strip().replace(" ", "")
    try:
        for prefix in ("10^", "10**"):
            if s.startswith(prefix):
                return Fraction(s[len(prefix) :])
        mantissa, sep, exponent = s.lower().partition("e")
        if not sep:
            return Fraction(s)
        if Fraction(mantissa) == 1:
            return Fraction(int(exponent))
    except (ValueError, ZeroDivisionError):
        pass
    raise ConfigError(f"bad step size {text!r}; expected a power of ten (1e-3, 10^-2.5) or an exponent (-2.5, -5/2)")


def _fmt(e: Fraction) -> str:
    """Human-readable step size, e.g. ``10^-2.5``."""
    return f"10^{float(e):g}"


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


@dataclass(frozen=True)
class Outcome:
    """Summary of one run at step size ``10**exponent``; ``max_loss`` includes the initial loss."""

    exponent: Fraction
    seed: int
    initial_loss: float
    final_loss: float | None  # None or NaN/inf when the run diverged or did not finish
    max_loss: float | None
    diverged: bool = False
    finished: bool = True  # ran all steps; a diverged run is not finished

    def __post_init__(self) -> None:
        object.__setattr__(self, "exponent", Fraction(self.exponent))
        if not math.isfinite(self.initial_loss):
            raise ValueError(f"bad {self!r}: the initial loss must be finite")
        if self.diverged and self.finished:
            raise ValueError(f"bad {self!r}: a diverged run cannot be finished")

    @property
    def failed(self) -> bool:
        """Diverged, or ended on a NaN/inf loss: its step size is never selected."""
        return self.diverged or (self.final_loss is not None and not math.isfinite(self.final_loss))

    @property
    def score(self) -> float:
        """The final loss, or the initial loss when unfinished, failed or above 1.5x initial (paper 5.2)."""
        f = self.final_loss
        if not self.finished or self.failed or f is None or f > BLOWUP_FACTOR * self.initial_loss:
            return self.initial_loss
        return f

    @property
    def stable(self) -> bool:
        """The loss never rose above its initial value (paper 5.3); an unknown maximum counts as unstable."""
        limit = self.initial_loss + STABILITY_RTOL * abs(self.initial_loss)
        return not self.failed and _finite(self.max_loss) and self.max_loss <= limit


@dataclass(frozen=True)
class _Point:
    """All runs of one step size."""

    exponent: Fraction
    runs: tuple[Outcome, ...]  # sorted by seed

    @property
    def score(self) -> float:
        return max(o.score for o in self.runs)

    @property
    def diverged(self) -> bool:
        return any(o.failed for o in self.runs)

    @property
    def stable(self) -> bool:
        return all(o.stable for o in self.runs)

    @property
    def seeds(self) -> list[int]:
        return [o.seed for o in self.runs]

    def row(self) -> dict[str, Any]:
        """JSON-friendly summary of this step size (NaN/inf and missing values become None)."""
        finals = [o.final_loss for o in self.runs]
        maxima = [o.max_loss for o in self.runs]
        return {
            "lr": lr_of(self.exponent),
            "exponent": str(self.exponent),
            "final_loss": None if self.diverged or not all(map(_finite, finals)) else max(finals),
            "max_loss": max(maxima) if all(map(_finite, maxima)) else None,
            "stable": self.stable,
            "diverged": self.diverged,
            "score": self.score,
            "seeds": self.seeds,
        }


def _index(outcomes: Iterable[Outcome]) -> dict[tuple[Fraction, int], Outcome]:
    """Outcomes keyed by (exponent, seed); a repeated key is an error."""
    runs: dict[tuple[Fraction, int], Outcome] = {}
    for o in outcomes:
        key = (o.exponent, o.seed)
        if key in runs:
            raise ValueError(f"two outcomes for step size {_fmt(o.exponent)} seed {o.seed}")
        runs[key] = o
    return runs


def _points(outcomes: Iterable[Outcome]) -> list[_Point]:
    """Outcomes grouped by step size, sorted by exponent."""
    groups: dict[Fraction, list[Outcome]] = {}
    for o in _index(outcomes).values():
        groups.setdefault(o.exponent, []).append(o)
    return [_Point(e, tuple(sorted(groups[e], key=lambda o: o.seed))) for e in sorted(groups)]


def _best(points: list[_Point]) -> _Point | None:
    """The non-diverged step size with the lowest score (ties go to the smaller step size), or None."""
    eligible = [p for p in points if not p.diverged]
    return min(eligible, key=lambda p: (p.score, p.exponent), default=None)


# --------------------------------------------------------------------------------------------------
# Planning


@dataclass(frozen=True)
class GridConfig:
    """Sweep plan: integer exponents ``lo..hi`` with ``sparse_seeds``, then half powers within
    ``dense_radius`` decades of the sparse best with ``dense_seeds`` (``()`` skips the dense pass)."""

    lo: int
    hi: int
    sparse_seeds: tuple[int, ...] = (0,)
    dense_seeds: tuple[int, ...] = (0, 1, 2)
    dense_radius: Fraction = Fraction(1)
    max_extensions: int = 4  # decades the grid may grow past lo or hi while the best sits on an edge

    def __post_init__(self) -> None:
        object.__setattr__(self, "sparse_seeds", tuple(self.sparse_seeds))
        object.__setattr__(self, "dense_seeds", tuple(self.dense_seeds))
        object.__setattr__(self, "dense_radius", Fraction(self.dense_radius))
        if self.lo > self.hi:
            raise ConfigError(f"bad step-size grid 10^{self.lo}..10^{self.hi}; lo must not exceed hi")
        if not self.sparse_seeds:
            raise ConfigError("bad step-size grid: sparse_seeds must not be empty")
        if self.dense_radius < 0 or self.max_extensions < 0:
            raise ConfigError("bad step-size grid: dense_radius and max_extensions must be >= 0")

    @property
    def bounds(self) -> tuple[int, int]:
        """The smallest and largest exponent the sweep may ever evaluate."""
        return self.lo - self.max_extensions, self.hi + self.max_extensions


def sparse_grid(lo: int, hi: int) -> list[Fraction]:
    """Integer exponents ``lo..hi`` inclusive."""
    return [Fraction(e) for e in range(lo, hi + 1)]


def dense_grid(center: Fraction, radius: Fraction = Fraction(1), step: Fraction = HALF) -> list[Fraction]:
    """Exponents ``center + k*step`` within ``radius`` of ``center``, ascending."""
    if step <= 0 or radius < 0:
        raise ValueError(f"dense grid needs step > 0 and radius >= 0, got step={step}, radius={radius}")
    n = math.floor(Fraction(radius) / Fraction(step))
    return [Fraction(center) + k * Fraction(step) for k in range(-n, n + 1)]


def _missing(
    runs: dict[tuple[Fraction, int], Outcome], exponents: list[Fraction], seeds: tuple[int, ...]
) -> list[tuple[Fraction, int]]:
    """Pairs not yet run, skipping step sizes that already diverged (more seeds cannot rescue them)."""
    failed = {e for (e, _), o in runs.items() if o.failed}
    return [(e, s) for e in exponents if e not in failed for s in seeds if (e, s) not in runs]


def next_runs(outcomes: Iterable[Outcome], config: GridConfig) -> list[tuple[Fraction, int]]:
    """(exponent, seed) pairs still to run given everything run so far, ascending; ``[]`` when done.

    Each extension is decided from runs that existed when it was first made, so the plan replays
    identically whether the driver runs the returned pairs all at once or a few at a time.
    """
    runs = _index(outcomes)
    low, high = config.bounds

    # Sparse pass over [a, b], grown a decade at a time while its best sits on an edge (down when all diverged).
    a, b = config.lo, config.hi
    while True:
        if need := _missing(runs, sparse_grid(a, b), config.sparse_seeds):
            return need
        sparse = [o for (e, s), o in runs.items() if e.denominator == 1 and a <= e <= b and s in config.sparse_seeds]
        best = _best(_points(sparse))
        if best is not None and best.exponent == b and b < high:
            b += 1
        elif (best is None or best.exponent == a) and a > low:
            a -= 1
        else:
            break
    if best is None:
        return []
    if not config.dense_seeds:
        return _fallback_runs(runs, config)

    # Dense pass over half powers in [wa, wb] around the sparse best, pooled with the sparse runs and
    # grown half a decade at a time while the pooled best sits on the edge of everything evaluated.
    center = best.exponent
    wa, wb = max(center - config.dense_radius, low), min(center + config.dense_radius, high)
    while True:
        window = [e for e in dense_grid(center, max(center - wa, wb - center)) if wa <= e <= wb]
        if need := _missing(runs, window, config.dense_seeds):
            return need
        pool = [o for o in runs.values() if wa <= o.exponent <= wb] + [o for o in sparse if not wa <= o.exponent <= wb]
        top = _best(_points(pool))
        if top is None:
            return []
        evaluated = [o.exponent for o in pool]
        if top.exponent == max(evaluated) and top.exponent < high:
            wb = min(top.exponent + HALF, high)
        elif top.exponent == min(evaluated) and top.exponent > low:
            wa = max(top.exponent - HALF, low)
        else:
            return _fallback_runs(runs, config)


def _fallback_runs(runs: dict[tuple[Fraction, int], Outcome], config: GridConfig) -> list[tuple[Fraction, int]]:
    """Runs the stability fallback needs: the next smaller step sizes on the half-decade grid.

    Walking down from an unstable best, each half power is run (with the dense seeds, so that it is
    judged like its rivals) until one is stable; a step size that diverged counts as unstable.
    """
    try:
        best = select_step_size(runs.values()).best_exponent
    except SelectionError:
        return []
    seeds = config.dense_seeds or config.sparse_seeds
    if _points([o for o in runs.values() if o.exponent == best])[0].stable:
        return []
    exponent = best - HALF
    while exponent >= config.bounds[0]:
        if need := _missing(runs, [exponent], seeds):
            return need
        point = _points([o for o in runs.values() if o.exponent == exponent])
        if point and point[0].stable:
            return []
        exponent -= HALF
    return []


# --------------------------------------------------------------------------------------------------
# Selection


@dataclass(frozen=True)
class Selection:
    """The chosen step size, the rule that chose it, and the per-step-size table behind the choice."""

    exponent: Fraction
    best_exponent: Fraction  # the best-scoring step size, before the stability fallback
    rule: str  # "min-score", "stability-fallback" or "unstable-kept" (no smaller stable step size exists)
    edge: str | None  # "upper"/"lower" when the best-scoring step size is on that edge of the evaluated grid
    reason: str
    grid: list[dict[str, Any]]  # one row per step size, sorted by lr (see _Point.row)

    @property
    def lr(self) -> float:
        return lr_of(self.exponent)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (exponents as strings like ``"-5/2"``)."""
        return {
            "exponent": str(self.exponent),
            "lr": self.lr,
            "best_exponent": str(self.best_exponent),
            "rule": self.rule,
            "edge": self.edge,
            "reason": self.reason,
            "grid": self.grid,
        }


def grid_table(outcomes: Iterable[Outcome]) -> list[dict[str, Any]]:
    """One JSON-friendly row per evaluated step size, sorted by lr."""
    return [p.row() for p in _points(outcomes)]


def _describe(p: _Point) -> str:
    seeds = f"{len(p.runs)} seeds" if len(p.runs) > 1 else f"seed {p.runs[0].seed}"
    return f"{_fmt(p.exponent)} (lr={lr_of(p.exponent):.3g}, score {p.score:.6g} over {seeds})"


def select_step_size(outcomes: Iterable[Outcome], config: GridConfig | None = None) -> Selection:
    """Apply the paper's selection (5.2) and stability fallback (5.3) to all runs, sparse and dense pooled.

    ``config`` only refines the reason: whether an edge optimum was accepted at the extension bound.
    Raises :class:`SelectionError` when there are no runs or every step size diverged.
    """
    points = _points(outcomes)
    if not points:
        raise SelectionError("no runs to select a step size from")
    best = _best(points)
    if best is None:
        tried = ", ".join(_fmt(p.exponent) for p in points)
        raise SelectionError(f"every evaluated step size diverged ({tried}); try smaller step sizes")

    reason = f"lowest max-over-seeds score: {_describe(best)}"
    chosen, rule = best, "min-score"
    if not best.stable:
        below = [p for p in reversed(points) if p.exponent < best.exponent]
        fallback = next((p for p in below if p.stable), None)
        if fallback is None:
            rule = "unstable-kept"
            reason += "; its loss rose above the initial loss, but no smaller evaluated step size is stable: kept"
        else:
            chosen, rule = fallback, "stability-fallback"
            skipped = [_fmt(p.exponent) for p in below if p.exponent > fallback.exponent]
            reason += f"; its loss rose above the initial loss: stability fallback to {_describe(fallback)}"
            if skipped:
                reason += f", past unstable {', '.join(skipped)}"

    exponents = [p.exponent for p in points]
    edge = "upper" if best.exponent == max(exponents) else "lower" if best.exponent == min(exponents) else None
    if edge is not None:
        reason += f"; {_fmt(best.exponent)} is on the {edge} edge of the evaluated grid"
        if config is not None and best.exponent == config.bounds[1 if edge == "upper" else 0]:
            reason += f", accepted after max_extensions={config.max_extensions} decades past [{config.lo}, {config.hi}]"
        else:
            reason += " (not extended: run next_runs to extend the grid)"
    return Selection(chosen.exponent, best.exponent, rule, edge, reason, [p.row() for p in points])
