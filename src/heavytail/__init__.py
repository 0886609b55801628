"""heavytail: how optimizers fit rare and frequent classes under heavy-tailed class imbalance.

    import heavytail as ht
    record = ht.run(ht.RunSpec(problem="linear", problem_options={"m": 8}, optimizer="adam+m", lr=1e-3, steps=100))
    record.history.group_loss(10)          # (steps + 1, 10): most to least frequent group
    ht.load_results()                      # every stored run as a pandas DataFrame
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from heavytail import integrations
from heavytail.data import random_heavy_tailed_labels
from heavytail.optim import make_optimizer, optimizer_names, register_optimizer
from heavytail.options import ConfigError
from heavytail.problems import LinearProblem, Problem, problem_names, register_problem
from heavytail.runner import run, summarize
from heavytail.spec import RunSpec
from heavytail.store import RunRecord, Store
from heavytail.track import GroupTracker
from heavytail.train import FrequencyGroups, History


def load_results(results: str | None = None) -> Any:
    """Every run in the results directory as a pandas DataFrame (one row per run)."""
    return Store(results).to_frame()


__all__ = [
    "ConfigError",
    "FrequencyGroups",
    "GroupTracker",
    "History",
    "LinearProblem",
    "Problem",
    "RunRecord",
    "RunSpec",
    "Store",
    "__version__",
    "integrations",
    "load_results",
    "make_optimizer",
    "optimizer_names",
    "problem_names",
    "random_heavy_tailed_labels",
    "register_optimizer",
    "register_problem",
    "run",
    "summarize",
]
