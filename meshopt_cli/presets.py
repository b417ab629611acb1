"""Preset files: ``presets/<command>/<name>.toml``, flat TOML with an optional ``description``.

They are looked up in the repository's ``presets/`` folder first, else in the installed package's
``_presets/`` copy (as ``render/native.py`` finds ``kernels/``). A path to a ``.toml`` file is
accepted wherever a preset name is.
"""
from __future__ import annotations

import pathlib
import tomllib

_PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
_CANDIDATE_ROOTS = (_PACKAGE_DIR.parent / "presets", _PACKAGE_DIR / "_presets")


class PresetError(ValueError):
    """A preset (or a setting in it) cannot be used; one line."""


def preset_root() -> pathlib.Path:
    for candidate in _CANDIDATE_ROOTS:
        if candidate.is_dir():
            return candidate
    raise PresetError("meshopt presets not found (looked in " + ", ".join(map(str, _CANDIDATE_ROOTS)) + ")")


def commands_with_presets() -> list[str]:
    return sorted(p.name for p in preset_root().iterdir() if p.is_dir() and any(p.glob("*.toml")))


def preset_dir(command: str) -> pathlib.Path:
    """The folder of ``command``'s presets."""
    folder = preset_root() / command
    if not folder.is_dir():
        raise PresetError(f"no presets for '{command}' (commands with presets: {', '.join(commands_with_presets())})")
    return folder


def preset_names(command: str) -> list[str]:
    return sorted(p.stem for p in preset_dir(command).glob("*.toml"))


def preset_path(name: str, command: str) -> pathlib.Path:
    """The file of preset ``name`` of ``command`` (or ``name`` itself when it is a ``.toml`` path)."""
    if name.endswith(".toml"):
        path = pathlib.Path(name).expanduser()
        if not path.is_file():
            raise PresetError(f"--preset {name}: no such file")
        return path
    path = preset_dir(command) / f"{name}.toml"
    if not path.is_file():
        raise PresetError(f"unknown preset '{name}' for {command} (valid: {', '.join(preset_names(command))})")
    return path


def read_preset(path: pathlib.Path) -> tuple[dict, str]:
    """The values of a preset file and its description."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"{path}: cannot be read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{path}: not valid TOML ({exc})") from None
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
        raise PresetError(f"unknown preset '{spec}' (valid: {', '.join(every)})")
    raise PresetError(f"'{spec}' is a preset of several commands; say which: {', '.join(f'{c}/{spec}' for c in owners)}")
