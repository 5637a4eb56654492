"""Build frozen config dataclasses from plain dicts (a TOML table, a state).

A config class validates its own values in ``__post_init__`` by calling
:func:`require`; this module adds what a dict brings on top: unknown keys,
wrong types, and the dotted path of the key at fault (``detect.rules.
traffic_spike.window``), so that a typo in a config file is reported as one
line that names it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin

from logweir.errors import ConfigError

T = TypeVar("T")


def require(condition: bool, key: str, message: str, value: object) -> None:
    """Raise :class:`ConfigError` ``"<key>: <message>, got <value>"`` unless true.

    Called from ``__post_init__`` so that a config built in code is checked
    as strictly as one read from a file.
    """
    if not condition:
        raise ConfigError(f"{key}: {message}, got {value!r}")


def build_config(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    """Build ``cls`` (a dataclass) from ``data``; errors name ``where.<key>``.

    Integers are accepted where a float is expected; nothing else is coerced.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a table, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{where}.{key}: unknown key (known keys: {known})")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}")
    try:
        return cls(**kwargs)
    except ConfigError as error:
        raise ConfigError(f"{where}.{error}") from None


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0])
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise ConfigError(f"{key}: expected one of {allowed}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = get_args(hint)[:1]
        return tuple(_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: cannot be set from a config file")


def config_to_dict(config: object) -> dict[str, Any]:
    """A config dataclass as a JSON-ready dict (tuples become lists)."""
    result: dict[str, Any] = {}
    for f in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, f.name)
        result[f.name] = list(value) if isinstance(value, tuple) else value
    return result
