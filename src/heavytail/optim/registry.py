"""Optimizer names (``gd``, ``adam+m``, ...) mapped to classes and the hyper-parameters the name fixes.

Register your own in one line, ``register_optimizer("lion", Lion, betas=(0.9, 0.99))``, and it works
in specs, presets, sweeps and the CLI like a built-in. The CLI also accepts ``package.module:Class``
for any importable ``torch.optim.Optimizer`` subclass.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from torch.optim import Optimizer

from heavytail.optim.rules import GD, AdaGrad, Adam, NormalizedGD, SignDescent
from heavytail.options import ConfigError, check_finite, import_object, literal


@dataclass(frozen=True)
class OptimizerEntry:
    """A named optimizer: its class and the keyword arguments its name implies."""

    name: str
    cls: type[Optimizer]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def default_options(self) -> dict[str, Any]:
        """Every keyword default the class declares, overridden by those the name fixes."""
        parameters = inspect.signature(self.cls.__init__).parameters.values()
        declared = {p.name: p.default for p in parameters if p.default is not p.empty and p.name != "lr"}
        return {**declared, **self.defaults}

    def accepted_options(self) -> list[str] | None:
        """Keyword arguments the class takes besides params and lr (None if it takes **kwargs)."""
        parameters = inspect.signature(self.cls.__init__).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in parameters):
            return None
        return [p.name for p in parameters if p.name not in ("self", "params", "lr") and p.kind is not p.VAR_POSITIONAL]


_REGISTRY: dict[str, OptimizerEntry] = {}


def register_optimizer(name: str, cls: type[Optimizer], description: str = "", **defaults: Any) -> None:
    """Make ``cls`` (with ``defaults``) available under ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
        raise TypeError(f"{cls!r} is not a torch.optim.Optimizer subclass")
    _REGISTRY[name] = OptimizerEntry(name, cls, dict(defaults), description or (cls.__doc__ or "").strip().split("\n")[0])


def optimizer_names() -> list[str]:
    return sorted(_REGISTRY)


def optimizer_entries() -> list[OptimizerEntry]:
    return [_REGISTRY[name] for name in optimizer_names()]


def resolve_optimizer(name: str) -> OptimizerEntry:
    """The entry registered as ``name``, or the class a ``package.module:Class`` path names."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        cls = import_object(name, "optimizer")
        if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
            raise ConfigError(f"optimizer {name!r} is not a torch.optim.Optimizer subclass")
        closure = inspect.signature(cls.step).parameters.get("closure")
        if closure is not None and closure.default is inspect.Parameter.empty:
            raise ConfigError(f"optimizer {name!r} needs a closure (several evaluations per step); not supported")
        return OptimizerEntry(name, cls)
    raise ConfigError(
        f"unknown optimizer {name!r}; choose one of: {', '.join(optimizer_names())} (or package.module:Class)"
    )


def optimizer_kwargs(name: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The keyword arguments (besides lr) the optimizer ``name`` is built with; checks option names."""
    entry = resolve_optimizer(name)
    for key, value in (options or {}).items():
        check_finite(value, f"optimizer option {key}=")
    options = {key: literal(value) for key, value in (options or {}).items()}
    accepted = entry.accepted_options()
    if accepted is not None:
        for key in options:
            if key not in accepted:
                raise ConfigError(
                    f"unknown option {key!r} for optimizer {name!r}; choose from: {', '.join(accepted) or '(none)'}"
                )
    return {**entry.defaults, **options}


def make_optimizer(name: str, params: Iterable[Any], lr: float, options: Mapping[str, Any] | None = None) -> Optimizer:
    """Build the optimizer ``name`` over ``params`` with step size ``lr``."""
    entry = resolve_optimizer(name)
    kwargs = optimizer_kwargs(name, options)
    try:
        return entry.cls(params, lr=lr, **kwargs)
    except (TypeError, ValueError) as exc:
        defaults = {k: p.default for k, p in inspect.signature(entry.cls).parameters.items() if p.default is not inspect.Parameter.empty}
        given = ", ".join(f"{k}={v!r}" + (f" (default {defaults[k]!r})" if k in defaults else "") for k, v in (options or {}).items())
        raise ConfigError(f"cannot build optimizer {name!r} with lr={lr}{' and ' + given if given else ''}: {exc}") from None


register_optimizer("gd", GD, "gradient descent (SGD on mini-batches)")
register_optimizer("gd+m", GD, "gradient descent with heavy-ball momentum 0.9", momentum=0.9)
register_optimizer("adam", Adam, "Adam without momentum (beta1 = 0, beta2 = 0.999)", betas=(0.0, 0.999))
register_optimizer("adam+m", Adam, "Adam (beta1 = 0.9, beta2 = 0.999)", betas=(0.9, 0.999))
register_optimizer("normgd", NormalizedGD, "normalized gradient descent")
register_optimizer("normgd+m", NormalizedGD, "normalized GD with heavy-ball momentum 0.9", momentum=0.9)
register_optimizer("sign", SignDescent, "sign descent")
register_optimizer("sign+m", SignDescent, "sign descent with heavy-ball momentum 0.9", momentum=0.9)
register_optimizer("adagrad", AdaGrad, "AdaGrad")
