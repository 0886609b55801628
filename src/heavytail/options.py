"""Typed option dataclasses built from ``KEY=VALUE`` strings, with errors that name the choices."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import math
import os
import sys
import types
import typing
from fractions import Fraction
from typing import Any, Literal, Mapping, TypeVar

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A bad user-supplied value; its message is one line naming the value and the valid choices."""


def import_object(path: str, what: str) -> Any:
    """The object a ``package.module:NAME`` path names; a one-line error if it cannot be loaded."""
    module_name, _, attr = path.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:  # as `python -m` does, also for the console script
        sys.path.insert(0, os.getcwd())
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load {what} {path!r}: {exc}") from None


def parse_assignments(items: list[str] | None, what: str) -> dict[str, str]:
    """Turn ``["m=8", "inputs=gaussian"]`` into ``{"m": "8", "inputs": "gaussian"}``."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"bad {what} option {item!r}; expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def literal(value: Any) -> Any:
    """Read a string as a Python literal when it is one (``1e-3``, ``(0.9, 0.99)``, ``True``)."""
    if not isinstance(value, str):
        return value
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def check_finite(value: Any, where: str) -> None:
    """Refuse NaN and infinities, alone or inside a tuple, also spelled as text (``nan``, ``1e999``): a stored
    spec would read them as null and a run with them can only diverge. ``where`` prefixes the bad value."""
    parsed = literal(value)
    for item in parsed if isinstance(parsed, (tuple, list)) else (parsed,):
        if isinstance(item, str):
            try:
                item = float(item)
            except ValueError:
                continue
        if isinstance(item, float) and not math.isfinite(item):
            raise ConfigError(f"bad {where}{value!r}; expected a finite number")


def _fraction(value: Any) -> float | None:
    """``"1/2"`` as 0.5 (the paper writes reweighting powers as fractions); None if not a fraction."""
    try:
        return float(Fraction(str(value)))
    except (ValueError, ZeroDivisionError):
        return None


def coerce(value: Any, hint: Any, where: str) -> Any:
    """Convert ``value`` (often a string from the command line) to the type ``hint``."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        for choice in choices:
            if value == choice or str(value) == str(choice):
                return choice
        raise ConfigError(f"bad {where}{value!r}; choose one of: {', '.join(map(str, choices))}")
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        return coerce(value, args[0], where)
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ConfigError(f"bad {where}{value!r}; expected true or false")
    if hint in (int, float):
        try:
            number = hint(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError, OverflowError):
            number = _fraction(value) if hint is float else None
        if number is None or (hint is int and isinstance(value, float) and value != int(value)):
            raise ConfigError(f"bad {where}{value!r}; expected {'an integer' if hint is int else 'a number'}")
        check_finite(value, where)
        return number
    if hint is str:
        return str(value)
    return literal(value)



def check_range(what: str, key: str, value: float, lo: float, hi: float) -> None:
    """A one-line error for an option outside [lo, hi], naming ``what`` (e.g. "tinyptb-one-layer problem option")."""
    if not lo <= value <= hi:
        bound = {b: str(b) if isinstance(b, int) else f"{b:g}" for b in (lo, hi)}
        raise ConfigError(f"bad {what} {key}={value}; expected {bound[lo]} <= {key} <= {bound[hi]}")


def check_choice(what: str, key: str, value: Any, choices: Any) -> None:
    """A one-line error for an option that is not one of the ``Literal`` type ``choices``."""
    if value not in typing.get_args(choices):
        raise ConfigError(f"bad {what} {key}={value!r}; choose one of: {', '.join(map(str, typing.get_args(choices)))}")


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of an options dataclass, its own first and keyword-only ones (options every problem has) last."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    return [f for f in fields if not f.kw_only] + [f for f in fields if f.kw_only]


def build_options(cls: type[T], values: Mapping[str, Any], what: str) -> T:
    """Instantiate the dataclass ``cls`` from loosely typed ``values``; unknown keys are errors."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in option_fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"unknown {what} option {key!r}; choose from: {', '.join(names)}")
        kwargs[key] = coerce(value, hints[key], f"{what} option {key}=")  # message reads "... option m='abc'"
    return cls(**kwargs)


def non_defaults(options: Any) -> dict[str, Any]:
    """The fields of a dataclass instance that differ from their defaults (what a run id hashes)."""
    out = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        default = f.default if f.default is not dataclasses.MISSING else dataclasses.MISSING
        if value != default:
            out[f.name] = value
    return out
