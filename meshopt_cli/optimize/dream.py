"""3D DeepDream (Kato et al. 2018, section 4.4): settings and the loss.

``L = −mean(a²) + λ_length · Var(edge lengths) · F``

with ``a`` the activations of one GoogLeNet inception block (:class:`~meshopt_cli.optimize.backbones.GoogLeNetFeatures`,
default ``inception_4c``) over a batch of random views, and the triangle-evenness term of
:func:`~meshopt_cli.optimize.image_losses.edge_length_variance`. Settings are :class:`DreamSettings`,
read from ``presets/dream/<name>.toml`` (keys = field names, plus ``description``). The views are
lit by ambient light only (``ambient``, ``directional``) on one random grey background per step.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from meshopt_cli import presets
from meshopt_cli import settings as shared
from meshopt_cli.optimize.backbones import GOOGLENET_DEFAULT_LAYER, GOOGLENET_LAYERS, _googlenet_attr
from meshopt_cli.optimize.image_losses import dream_loss, edge_length_variance, unique_edges
from meshopt_cli.optimize.textured import RenderedViews, TexturedSettings

SettingsError = presets.PresetError


@dataclass
class DreamSettings(TexturedSettings):
    iterations: int = 1000
    batch_views: int = 4
    image_size: int = 224
    distance: float = 2.5
    distance_noise: float = 0.1
    elevation_min: float = -10.0
    elevation_max: float = 30.0
    light_angle: float | None = None
    vertex_lr: float = 0.0001  # the paper: 0.01 * 0.01
    texture_lr: float = 0.01  # the paper: 0.01 * 1.0
    layer: str = GOOGLENET_DEFAULT_LAYER
    length_weight: float = 6.15e-9  # the paper's 1e-4 for Caffe's input scale (see presets/dream/paper.toml)
    ambient: float = 1.0
    directional: float = 0.0
    random_background: bool = True
    init_bias: tuple = (0.0, 0.0, 0.0)
    texture_size: int = 4
    turntable_frames: int = 36
    turntable_size: int = 128
    sheet_size: int = 128

    def as_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["init_bias"] = list(values["init_bias"])
        return values

    def loop_settings(self) -> TexturedSettings:
        return TexturedSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(TexturedSettings)})


FIELDS = {f.name: f for f in dataclasses.fields(DreamSettings)}
DEFAULT_PRESET = "fast"


def parse_bias(value, where: str = "command line") -> tuple:
    """``"0,0.5,0.5"`` or ``[0, 0.5, 0.5]`` -> ``(0.0, 0.5, 0.5)`` (RGB added to the initial textures)."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        bias = tuple(float(x) for x in items)
        if isinstance(value, (list, tuple)) and any(isinstance(x, bool) for x in value):
            raise ValueError
    except (TypeError, ValueError):
        bias = ()
    if len(bias) != 3:
        raise SettingsError(f"{where}: init-bias must be three numbers R,G,B (e.g. 0,0.5,0.5), got {value!r}")
    return bias


def check_layer(layer: str) -> str:
    """The paper spelling of ``layer`` (``inception_4c``); a one-line SettingsError listing the valid ones."""
    try:
        return _googlenet_attr(layer).replace("inception", "inception_")
    except ValueError:
        raise SettingsError(f"unknown layer {layer!r} (valid: {', '.join(GOOGLENET_LAYERS)})") from None


def resolve_named(preset: str | None = None, overrides: dict | None = None, config=None) -> tuple[DreamSettings, str]:
    """Preset ``presets/dream/<preset>.toml`` (or a .toml path) < ``config`` file < every override
    that is not None; validated. Returns the settings and the name of the preset used."""
    settings, chosen = shared.resolve(DreamSettings, "dream", preset, DEFAULT_PRESET, config, overrides,
                                      special={"init_bias": parse_bias, "layer": _layer_text})
    validate(settings)
    return settings, chosen


def resolve_settings(preset: str | None = DEFAULT_PRESET, overrides: dict | None = None, config=None) -> DreamSettings:
    """:func:`resolve_named` without the preset's name."""
    return resolve_named(preset, overrides, config)[0]


def _layer_text(value, where: str) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"{where}: setting 'layer' must be a string, got {value!r}")
    return value


def validate(settings: DreamSettings) -> None:
    settings.layer = check_layer(settings.layer)
    problems = [f"{k.replace('_', '-')} must be at least 1" for k in
                ("batch_views", "image_size", "texture_size", "turntable_frames", "turntable_size", "sheet_size")
                if getattr(settings, k) < 1]
    problems += [f"{k.replace('_', '-')} must not be negative" for k in
                 ("iterations", "distance_noise", "length_weight", "vertex_lr", "texture_lr", "ambient", "directional")
                 if getattr(settings, k) < 0]
    if settings.image_size < 32:
        problems.append("image-size must be at least 32 (GoogLeNet downsamples 16 times before inception_4*)")
    if problems:
        raise SettingsError("; ".join(problems))


def initial_textures(textures: torch.Tensor, bias) -> torch.Tensor:
    """``textures [F, T, T, T, 3]`` + the RGB ``bias``, clipped to [0, 1] (the optional colour bias)."""
    return (textures + torch.tensor(bias, dtype=textures.dtype, device=textures.device)).clamp(0.0, 1.0)


class DreamLoss:
    """Callable loss for :func:`~meshopt_cli.optimize.textured.optimize_textured`.

    ``network``: ``[B, 3, S, S] -> [B, C, H, W]`` (GoogLeNetFeatures); ``faces``: ``[F, 3]``.
    Terms: ``dream`` (−mean a²), ``activation`` (mean a², what rises), ``edge_variance``
    (Var(edge lengths) × F, unweighted)."""

    def __init__(self, network, faces: torch.Tensor, length_weight: float):
        self.network = network
        self.faces = faces
        self.edges = unique_edges(faces)
        self.length_weight = float(length_weight)

    def __call__(self, views: RenderedViews, vertices: torch.Tensor):
        d = dream_loss(self.network(views.rgb))
        e = edge_length_variance(vertices, self.faces, self.edges)
        loss = d + self.length_weight * e
        return loss, {"dream": float(d.item()), "activation": -float(d.item()), "edge_variance": float(e.item())}
