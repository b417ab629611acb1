"""Settings of ``meshopt fit``: a dataclass, TOML presets (``presets/fit/*.toml``) and overrides.

A preset is a flat TOML file whose keys are the field names of :class:`FitSettings` (plus an
optional ``description``); ``meshopt_cli.presets`` finds the files and :mod:`meshopt_cli.settings`
applies preset < ``--config`` file < command-line flags.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from meshopt_cli import presets
from meshopt_cli import settings as shared

# One error class for every bad preset or setting (one line each).
SettingsError = presets.PresetError


@dataclass
class FitSettings:
    # views
    views: int = 24  # training views: azimuths every 360/views degrees, elevation 30, distance 2.732
    heldout_views: int = 12  # evaluation views at other azimuths and elevations (mesh targets)
    batch_views: int = 8  # views rendered per iteration (sampled without replacement)
    # rendering
    image_size: int = 96  # silhouettes are rendered (and compared) at this size ...
    coarse_image_size: int = 0  # ... or at this size for the first coarse_fraction of iterations (0: off)
    coarse_fraction: float = 0.0
    eval_image_size: int = 128  # IoU figures are measured at this size
    # optimization
    iterations: int = 200  # Adam steps on the vertex offsets
    learning_rate: float = 0.01
    final_learning_rate: float = 0.001  # cosine decay from learning_rate to this
    affine_iterations: int = 40  # first stage: per-axis scale + translation only (0: skip)
    affine_learning_rate: float = 0.05
    loss: str = "iou"  # silhouette term: "iou" (1 - IoU, the paper's) or "mse"
    # regularizer weights
    laplacian: float = 0.0
    edge: float = 0.02
    normal: float = 0.0
    flatten: float = 0.0
    # template
    init: str = "builtin:sphere"
    init_scale: float = 1.0  # the template is centred and scaled into a ball of this radius
    fill_back: bool = False  # render the template's faces from both sides (on for open templates anyway)
    # outputs
    turntable_frames: int = 36
    turntable_size: int = 128
    seed: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(FitSettings)}
LOSSES = ("iou", "mse")
DEFAULT_PRESET = "default"


def preset_names(command: str = "fit") -> list[str]:
    return presets.preset_names(command)


def load_preset(name: str = DEFAULT_PRESET, command: str = "fit") -> tuple[dict, str]:
    """The values of preset ``name`` (checked against :class:`FitSettings`) and its description."""
    path = presets.preset_path(name, command)
    data, description = presets.read_preset(path)
    types = shared.field_types(FitSettings)
    for key, value in data.items():
        if key not in types:
            raise SettingsError(f"{path}: unknown setting '{key}' (valid: {', '.join(FIELDS)})")
        data[key] = shared.coerce(types[key], key, value, str(path))
    return data, description


def resolve_named(preset: str | None = None, overrides: dict | None = None, config=None) -> tuple[FitSettings, str]:
    """Preset < ``config`` file < every override that is not None; validated. Returns the settings
    and the name of the preset used."""
    settings, chosen = shared.resolve(FitSettings, "fit", preset, DEFAULT_PRESET, config, overrides)
    validate(settings)
    return settings, chosen


def resolve(preset: str | None = DEFAULT_PRESET, overrides: dict | None = None, config=None) -> FitSettings:
    """:func:`resolve_named` without the preset's name."""
    return resolve_named(preset, overrides, config)[0]


def validate(s: FitSettings) -> None:
    problems = []
    for key in ("views", "batch_views", "image_size", "eval_image_size", "turntable_frames", "turntable_size"):
        if getattr(s, key) < 1:
            problems.append(f"{key.replace('_', '-')} must be at least 1")
    for key in ("iterations", "affine_iterations", "heldout_views", "coarse_image_size"):
        if getattr(s, key) < 0:
            problems.append(f"{key.replace('_', '-')} must not be negative")
    for key in ("learning_rate", "final_learning_rate", "affine_learning_rate", "init_scale"):
        if not getattr(s, key) > 0:
            problems.append(f"{key.replace('_', '-')} must be positive")
    for key in ("laplacian", "edge", "normal", "flatten"):
        if getattr(s, key) < 0:
            problems.append(f"the {key} weight must not be negative")
    if not 0.0 <= s.coarse_fraction <= 1.0:
        problems.append("coarse-fraction must be in [0, 1]")
    if s.loss not in LOSSES:
        problems.append(f"loss must be one of {', '.join(LOSSES)}, got {s.loss!r}")
    if problems:
        raise SettingsError("; ".join(problems))
