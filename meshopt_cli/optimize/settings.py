"""Settings of ``meshopt fit``: a dataclass, TOML presets (``presets/fit/*.toml``) and overrides.

A preset is a flat TOML file whose keys are the field names of :class:`FitSettings` (plus an
optional ``description``); ``meshopt_cli.presets`` finds the files. Command-line flags override
preset values.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from meshopt_cli import presets

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


def preset_names(command: str = "fit") -> list[str]:
    return presets.preset_names(command)


def load_preset(name: str = "default", command: str = "fit") -> tuple[dict, str]:
    """The values of preset ``name`` (checked against :class:`FitSettings`) and its description."""
    path = presets.preset_path(name, command)
    data, description = presets.read_preset(path)
    for key, value in data.items():
        if key not in FIELDS:
            raise SettingsError(f"{path}: unknown setting '{key}' (valid: {', '.join(FIELDS)})")
        data[key] = _coerce(key, value, str(path))
    return data, description


def _coerce(key: str, value, where: str):
    kind = FIELDS[key].type
    ok = {"int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool),
          "bool": isinstance(value, bool), "str": isinstance(value, str)}[kind]
    if not ok:
        wanted = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}[kind]
        raise SettingsError(f"{where}: setting '{key}' must be {wanted}, got {value!r}")
    return float(value) if kind == "float" else value


def resolve(preset: str = "default", overrides: dict | None = None) -> FitSettings:
    """Preset values, then every override that is not None; validated."""
    values, _ = load_preset(preset)
    settings = FitSettings(**values)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in FIELDS:
            raise SettingsError(f"unknown setting '{key}'")
        setattr(settings, key, _coerce(key, value, "command line"))
    validate(settings)
    return settings


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
