"""Typed settings fields: a default with its checks, and the one validation of every settings dataclass.

A command's settings (and an optimization loop's) are a dataclass whose fields are made with
:func:`setting`: the field's type annotation says what a value may be (``int``, ``float``,
``bool``, ``str``, ``float | None``, or anything with a ``parse`` function), the metadata says its
range or choices. :func:`coerce` turns one raw value (from TOML or a flag) into the field's type,
:func:`validate` checks a whole instance against its metadata. Every problem is one line
(:class:`SettingsError`). This module knows nothing of presets, TOML or the command line
(:mod:`meshopt_cli.settings` resolves those), so the loops in ``optimize/`` may use it.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Callable


class SettingsError(ValueError):
    """A setting, a preset or a config file cannot be used; one line."""


def setting(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    choices: tuple | None = None,
    parse: Callable[[Any, str], Any] | None = None,
    check: Callable[[Any], None] | None = None,
    name: str | None = None,
    why: str | None = None,
):
    """A dataclass field with its checks.

    ``ge``/``gt``/``le``: bounds (numbers must also be finite); ``choices``: the allowed values;
    ``parse(value, where)``: reads a raw value of a type the annotation cannot describe (raises
    :class:`SettingsError`); ``check(value)``: raises ``ValueError`` with the reason when a value is
    unusable; ``name``: the flag spelled in messages (default: the field name with dashes);
    ``why``: appended to a range message in parentheses.
    """
    metadata = {
        key: value
        for key, value in dict(ge=ge, gt=gt, le=le, choices=choices, parse=parse, check=check, name=name, why=why).items()
        if value is not None
    }
    return dataclasses.field(default=default, metadata=metadata)


def field_types(cls) -> dict[str, Any]:
    """Field name -> its resolved type (``int``, ``float``, ``float | None``, ...)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _is_optional_float(kind) -> bool:
    return isinstance(kind, types.UnionType) and set(kind.__args__) == {float, type(None)}


_WANTED = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def coerce(cls, key: str, value, where: str):
    """``value`` read as field ``key`` of ``cls`` (ints are accepted for floats); ``where`` (a file,
    or ``command line``) starts every message."""
    spec = next(f for f in dataclasses.fields(cls) if f.name == key)
    if "parse" in spec.metadata:
        return spec.metadata["parse"](value, where)
    kind = field_types(cls)[key]
    if _is_optional_float(kind):
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        kind = float
    if kind not in _WANTED:
        raise SettingsError(f"{where}: setting '{key}' has a type meshopt cannot read ({kind})")
    ok = {
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        bool: isinstance(value, bool),
        str: isinstance(value, str),
    }[kind]
    if not ok:
        wanted = _WANTED[kind] + (' or "none"' if _is_optional_float(field_types(cls)[key]) else "")
        raise SettingsError(f"{where}: setting '{key}' must be {wanted}, got {value!r}")
    return float(value) if kind is float else value


def _number(x: float) -> str:
    return f"{x:g}"


def problems_of(settings) -> list[str]:
    """Every way ``settings`` breaks its fields' metadata, one phrase each."""
    found = []
    for spec in dataclasses.fields(settings):
        value, meta = getattr(settings, spec.name), spec.metadata
        label = meta.get("name", "--" + spec.name.replace("_", "-"))  # the flag (settings and flags share names)
        if isinstance(value, float) and not math.isfinite(value):
            found.append(f"{label} must be a finite number, got {value}")
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            ge, gt, le = meta.get("ge"), meta.get("gt"), meta.get("le")
            message = None
            if ge is not None and le is not None and not ge <= value <= le:
                message = f"{label} must be in [{_number(ge)}, {_number(le)}]"
            elif ge is not None and value < ge:
                message = f"{label} must not be negative" if ge == 0 else f"{label} must be at least {_number(ge)}"
            elif gt is not None and not value > gt:
                message = f"{label} must be positive" if gt == 0 else f"{label} must be greater than {_number(gt)}"
            elif le is not None and value > le:
                message = f"{label} must be at most {_number(le)}"
            if message:
                found.append(message + (f" ({meta['why']})" if "why" in meta else ""))
        if "choices" in meta and value not in meta["choices"]:
            found.append(f"{label} must be one of {', '.join(map(str, meta['choices']))}, got {value!r}")
        if "check" in meta:
            try:
                meta["check"](value)
            except ValueError as problem:
                found.append(f"{label}: {problem}")
    return found


def validate(settings) -> None:
    """Raise one :class:`SettingsError` listing every problem of ``settings``."""
    found = problems_of(settings)
    if found:
        raise SettingsError("; ".join(found))


def as_dict(settings) -> dict:
    """The settings as JSON-ready values (tuples as lists), the form metrics.json records."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(settings).items()}
