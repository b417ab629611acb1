"""Settings of every command, resolved in one order: preset < ``--config FILE.toml`` < flags.

A command's settings are a dataclass made of :func:`meshopt_cli.fields.setting` fields. Presets are
``presets/<command>/<name>.toml`` (flat TOML whose keys are the field names, plus an optional
``description``), looked up in the repository's ``presets/`` folder first, else in the installed
package's ``_presets/`` copy; a path to a ``.toml`` file is accepted wherever a preset name is.
A config file has the same keys, may name its base preset (``preset = "paper"``, used when
``--preset`` is not given) and may hold one table per command (``[style]``, ``[dream]`` ...), so
that one file serves several commands; a file with such tables gives each command only its own.

:func:`resolve` builds a new instance from the merged values and validates it (field types and
metadata, :mod:`meshopt_cli.fields`). Every problem is one line (:class:`SettingsError`) naming
the file (or "command line") and the key.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import TypeVar

import tomllib

from meshopt_cli.fields import SettingsError, as_dict, coerce, validate

__all__ = [
    "SettingsError",
    "as_dict",
    "resolve",
    "read_config",
    "read_preset",
    "preset_path",
    "preset_names",
    "commands_with_presets",
    "find_preset",
]

S = TypeVar("S")

_PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
_CANDIDATE_ROOTS = (_PACKAGE_DIR.parent / "presets", _PACKAGE_DIR / "_presets")


# ---------------------------------------------------------------- preset files


def preset_root() -> pathlib.Path:
    for candidate in _CANDIDATE_ROOTS:
        if candidate.is_dir():
            return candidate
    raise SettingsError("meshopt presets not found (looked in " + ", ".join(map(str, _CANDIDATE_ROOTS)) + ")")


def commands_with_presets() -> list[str]:
    return sorted(p.name for p in preset_root().iterdir() if p.is_dir() and any(p.glob("*.toml")))


def preset_dir(command: str) -> pathlib.Path:
    """The folder of ``command``'s presets."""
    folder = preset_root() / command
    if not folder.is_dir():
        raise SettingsError(f"no presets for '{command}' (commands with presets: {', '.join(commands_with_presets())})")
    return folder


def preset_names(command: str) -> list[str]:
    return sorted(p.stem for p in preset_dir(command).glob("*.toml"))


def preset_path(name: str, command: str) -> pathlib.Path:
    """The file of preset ``name`` of ``command`` (or ``name`` itself when it is a ``.toml`` path)."""
    if name.endswith(".toml"):
        path = pathlib.Path(name).expanduser()
        if not path.is_file():
            raise SettingsError(f"--preset {name}: no such file")
        return path
    path = preset_dir(command) / f"{name}.toml"
    if not path.is_file():
        raise SettingsError(f"unknown preset '{name}' for {command} (valid: {', '.join(preset_names(command))})")
    return path


def read_preset(path: pathlib.Path) -> tuple[dict, str]:
    """The values of a preset (or config) file and its description."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot be read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML ({exc})") from None
    return data, str(data.pop("description", ""))


def find_preset(spec: str) -> tuple[str, pathlib.Path]:
    """``command/name`` or a ``name`` that only one command has -> (command, file)."""
    if "/" in spec:
        command, name = spec.split("/", 1)
        return command, preset_path(name, command)
    owners = [c for c in commands_with_presets() if (preset_dir(c) / f"{spec}.toml").is_file()]
    if len(owners) == 1:
        return owners[0], preset_dir(owners[0]) / f"{spec}.toml"
    every = [f"{c}/{n}" for c in commands_with_presets() for n in preset_names(c)]
    if not owners:
        raise SettingsError(f"unknown preset '{spec}' (valid: {', '.join(every)})")
    raise SettingsError(f"'{spec}' is a preset of several commands; say which: {', '.join(f'{c}/{spec}' for c in owners)}")


# ---------------------------------------------------------------- config files and resolution


def read_config(path: str | pathlib.Path, command: str) -> tuple[dict, str | None]:
    """The setting values of a ``--config`` file for ``command`` and the preset it names (or None)."""
    path = pathlib.Path(path).expanduser()
    if path.is_dir():
        raise SettingsError(f"--config {path}: is a folder, not a TOML file")
    if not path.is_file():
        raise SettingsError(f"--config {path}: no such file")
    data, _ = read_preset(path)
    tables = {k for k, v in data.items() if isinstance(v, dict)}
    if tables:
        values = dict(data.get(command, {}))
        others = {k: v for k, v in data.items() if k not in tables}
        if set(others) - {"preset"}:
            raise SettingsError(
                f"{path}: with command tables ([{'], ['.join(sorted(tables))}]) every setting goes in a table; "
                f"found {', '.join(sorted(set(others) - {'preset'}))} outside"
            )
        if "preset" in others:
            values.setdefault("preset", others["preset"])
    else:
        values = data
    preset = values.pop("preset", None)
    if preset is not None and not isinstance(preset, str):
        raise SettingsError(f"{path}: 'preset' must be a preset name or a .toml path, got {preset!r}")
    return values, preset


def resolve(
    cls: type[S],
    command: str,
    default_preset: str,
    preset: str | None = None,
    config: str | pathlib.Path | None = None,
    overrides: dict | None = None,
) -> tuple[S, str]:
    """A validated instance of ``cls``: its defaults, then the preset's values, then the config
    file's, then every override that is not None. Returns ``(settings, name of the preset used)``."""
    known = [f.name for f in dataclasses.fields(cls)]
    config_values, config_preset = read_config(config, command) if config is not None else ({}, None)
    chosen = preset or config_preset or default_preset
    path = preset_path(chosen, command)
    preset_values, _ = read_preset(path)
    values: dict = {}
    for source, where in (
        (preset_values, str(path)),
        (config_values, str(config)),
        ({k: v for k, v in (overrides or {}).items() if v is not None}, "command line"),
    ):
        for key, value in source.items():
            if key not in known:
                raise SettingsError(f"{where}: unknown setting '{key}' for {command} (valid: {', '.join(known)})")
            values[key] = coerce(cls, key, value, where)
    settings = cls(**values)
    validate(settings)
    return settings, chosen
