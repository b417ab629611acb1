"""Settings of every command, resolved in one order: preset < ``--config FILE.toml`` < flags.

A command's settings are a dataclass; presets (``presets/<command>/<name>.toml``, found by
:mod:`meshopt_cli.presets`) and config files are flat TOML whose keys are the dataclass's field
names. A config file may also name its base preset (``preset = "paper"``, used when ``--preset`` is
not given) and may hold one table per command (``[style]``, ``[dream]`` ...), so that one file
serves several commands; a file with such tables gives each command only its own table.

Values are checked against the field's annotation (``int``, ``float``, ``bool``, ``str``,
``float | None``); a command passes ``special`` coercions for anything else. Every problem is one
line (:class:`SettingsError`) naming the file (or "command line") and the key.
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

from meshopt_cli import presets

SettingsError = presets.PresetError

Coercion = Callable[[object, str], object]  # (value, where) -> value, or raise SettingsError

_WANTED = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
           "float | None": "a number or \"none\""}


def field_types(cls) -> dict[str, str]:
    """Field name -> its annotation as written (``"int"``, ``"float | None"``, ...)."""
    return {f.name: str(f.type) for f in dataclasses.fields(cls)}


def coerce(kind: str, key: str, value, where: str):
    """``value`` checked against annotation ``kind`` (ints are accepted for floats)."""
    if kind == "float | None" and (value is None or (isinstance(value, str) and value.lower() == "none")):
        return None
    base = "float" if kind == "float | None" else kind
    ok = {"int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool),
          "bool": isinstance(value, bool), "str": isinstance(value, str)}.get(base)
    if ok is None:
        raise SettingsError(f"{where}: setting '{key}' has a type meshopt cannot read from TOML ({kind})")
    if not ok:
        raise SettingsError(f"{where}: setting '{key}' must be {_WANTED[kind]}, got {value!r}")
    return float(value) if base == "float" else value


def read_config(path: str | pathlib.Path, command: str) -> tuple[dict, str | None]:
    """The setting values of a ``--config`` file for ``command`` and the preset it names (or None)."""
    path = pathlib.Path(path).expanduser()
    if path.is_dir():
        raise SettingsError(f"--config {path}: is a folder, not a TOML file")
    if not path.is_file():
        raise SettingsError(f"--config {path}: no such file")
    data, _ = presets.read_preset(path)
    tables = {k for k, v in data.items() if isinstance(v, dict)}
    if tables:
        values = dict(data.get(command, {}))
        others = {k: v for k, v in data.items() if k not in tables}
        if set(others) - {"preset"}:
            raise SettingsError(f"{path}: with command tables ([{'], ['.join(sorted(tables))}]) every setting goes in a table; "
                                f"found {', '.join(sorted(set(others) - {'preset'}))} outside")
        if "preset" in others:
            values.setdefault("preset", others["preset"])
    else:
        values = data
    preset = values.pop("preset", None)
    if preset is not None and not isinstance(preset, str):
        raise SettingsError(f"{path}: 'preset' must be a preset name or a .toml path, got {preset!r}")
    return values, preset


def resolve(cls, command: str, preset: str | None, default_preset: str, config: str | pathlib.Path | None = None,
            overrides: dict | None = None, special: dict[str, Coercion] | None = None):
    """An instance of ``cls``: its defaults, then the preset's values, then the config file's, then
    every override that is not None. Returns ``(settings, preset name actually used)``; not validated
    beyond types (each command checks ranges)."""
    types = field_types(cls)
    special = special or {}

    def apply(settings, values: dict, where: str) -> None:
        for key, value in values.items():
            if key not in types:
                raise SettingsError(f"{where}: unknown setting '{key}' for {command} (valid: {', '.join(types)})")
            setattr(settings, key, special[key](value, where) if key in special else coerce(types[key], key, value, where))

    config_values, config_preset = read_config(config, command) if config is not None else ({}, None)
    chosen = preset or config_preset or default_preset
    path = presets.preset_path(chosen, command)
    preset_values, _ = presets.read_preset(path)
    settings = cls()
    apply(settings, preset_values, str(path))
    apply(settings, config_values, str(config))
    apply(settings, {k: v for k, v in (overrides or {}).items() if v is not None}, "command line")
    return settings, chosen
