"""Config dataclasses: built from plain dicts with unknown keys, wrong types and impossible values reported by name.

Values are checked by type and by range before anything is built: every number must be finite and at most
`MAX_INT`; a number whose default is positive must stay positive (sizes, counts, channel multipliers), one whose
default is zero or more must not be negative; a list whose default is non-empty must not be empty. Semantic checks
that need several fields stay with their config (a family's ``__post_init__`` or the recipe's `validate`).
"""
from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Mapping, TypeVar

from .errors import ConfigError, did_you_mean

C = TypeVar("C")
MAX_INT = 2 ** 31 - 1


def config_from_dict(cls: type[C], values: Mapping[str, Any], *, where: str = "config") -> C:
    """Build the dataclass `cls` from `values`; unknown keys and values of the wrong type are errors."""
    if isinstance(values, cls):
        return values
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{where}: unknown key {key!r} for {cls.__name__}.{did_you_mean(key, fields)}")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}")
        _check_range(kwargs[key], _default(fields[key]), f"{where}.{key}")
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where}: {exc}") from None
    except (ValueError, AssertionError) as exc:  # a config's own __post_init__ checks
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{where}: {exc}") from None


_MISSING = object()


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return _MISSING


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_range(value: Any, default: Any, where: str) -> None:
    """Range rules read off the field's default (see the module docstring)."""
    if _is_number(value):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: must be a finite number, got {value}")
        if abs(value) > MAX_INT:
            raise ConfigError(f"{where}: {value} is out of range (at most {MAX_INT})")
        if _is_number(default):
            if default > 0 and isinstance(default, int) and value < 1:
                raise ConfigError(f"{where}: must be at least 1, got {value}")
            if default >= 0 and value < 0:
                raise ConfigError(f"{where}: must not be negative, got {value}")
        elif default is None and isinstance(value, int) and value < 0:
            raise ConfigError(f"{where}: must not be negative, got {value}")
    elif isinstance(value, (list, tuple)):
        sample = list(default) if isinstance(default, (list, tuple)) else []
        if sample and not value:
            raise ConfigError(f"{where}: must not be empty (default {list(default)})")
        item_default = sample[0] if sample and all(_is_number(d) for d in sample) else None
        if item_default is not None and min(sample) < item_default:
            item_default = min(sample)
        for i, item in enumerate(value):
            if _is_number(item):
                _check_range(item, item_default, f"{where}[{i}]")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return _jsonable(dataclasses.asdict(config))


def replace_config(config: C, **changes: Any) -> C:
    """A copy of `config` with `changes`, validated like `config_from_dict`."""
    merged = {**dataclasses.asdict(config), **changes}
    return config_from_dict(type(config), merged)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is Any or hint is object:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        return config_from_dict(hint, value, where=where)
    return value
