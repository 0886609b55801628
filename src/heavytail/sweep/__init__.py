"""Step-size sweeps: the paper's selection protocol (section 5) as pure functions over run outcomes."""

from heavytail.sweep.protocol import (
    GridConfig,
    Outcome,
    Selection,
    SelectionError,
    dense_grid,
    grid_table,
    lr_of,
    next_runs,
    parse_exponent,
    select_step_size,
    sparse_grid,
)

__all__ = [
    "GridConfig",
    "Outcome",
    "Selection",
    "SelectionError",
    "dense_grid",
    "grid_table",
    "lr_of",
    "next_runs",
    "parse_exponent",
    "select_step_size",
    "sparse_grid",
]
