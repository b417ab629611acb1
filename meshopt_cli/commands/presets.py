"""``meshopt presets``: list the settings presets; ``meshopt presets show NAME``: print one as TOML."""

from __future__ import annotations

import sys

from meshopt_cli import console
from meshopt_cli.settings import SettingsError, commands_with_presets, find_preset, preset_names, preset_path, read_preset


def list_presets() -> int:
    try:
        for command in commands_with_presets():
            for name in preset_names(command):
                _, description = read_preset(preset_path(name, command))
                sys.stdout.write(f"{command}/{name}\t{description}\n")
    except SettingsError as problem:
        raise console.UsageError(str(problem)) from None
    return 0


def show_preset(spec: str) -> int:
    try:
        _, path = find_preset(spec)
        text = path.read_text(encoding="utf-8")
    except SettingsError as problem:
        raise console.UsageError(str(problem)) from None
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
