"""2D-to-3D style transfer (Kato et al. 2018, section 4.3): settings, the style image, the loss.

``L = λ_style · mean_b Σ_l ‖G_l(render_b ⊙ mask_b) − G_l(style)‖² + λ_content · Σ_v ‖v − v₀‖²
      + λ_tv · TV(render inside the silhouette)``

with Gram matrices of VGG16 ReLU features after conv1_2, conv2_2, conv3_3, conv4_3
(:mod:`~meshopt_cli.optimize.image_losses`). Settings are :class:`StyleSettings`, read from
``presets/style/<name>.toml`` (keys = field names, plus ``description``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from meshopt_cli import presets
from meshopt_cli import settings as shared
from meshopt_cli.optimize.image_losses import content_loss, gram_matrices, style_loss, total_variation
from meshopt_cli.optimize.textured import RenderedViews, TexturedSettings

SettingsError = presets.PresetError
MAX_STYLE_SIDE = 1024  # style images are downscaled to at most this many pixels per side on load
MAX_STYLE_PIXELS = 500_000_000  # refuse decompression bombs beyond this
MIN_STYLE_SIDE = 16  # a smaller image has no strokes to transfer (and is most likely a mistake)


@dataclass
class StyleSettings(TexturedSettings):
    style_weight: float = 1.0
    content_weight: float = 182.0  # the paper's 2e9 for Caffe VGG (see presets/style/paper.toml)
    tv_weight: float = 0.91  # the paper's 1e7
    texture_size: int = 4
    turntable_frames: int = 36
    turntable_size: int = 128
    sheet_size: int = 128

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def loop_settings(self) -> TexturedSettings:
        return TexturedSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(TexturedSettings)})


FIELDS = {f.name: f for f in dataclasses.fields(StyleSettings)}
DEFAULT_PRESET = "fast"


def resolve_named(preset: str | None = None, overrides: dict | None = None, config=None) -> tuple[StyleSettings, str]:
    """Preset ``presets/style/<preset>.toml`` (or a .toml path) < ``config`` file < every override
    that is not None; validated. Returns the settings and the name of the preset used."""
    settings, chosen = shared.resolve(StyleSettings, "style", preset, DEFAULT_PRESET, config, overrides)
    validate(settings)
    return settings, chosen


def resolve_settings(preset: str | None = DEFAULT_PRESET, overrides: dict | None = None, config=None) -> StyleSettings:
    """:func:`resolve_named` without the preset's name."""
    return resolve_named(preset, overrides, config)[0]


def validate(settings: StyleSettings) -> None:
    problems = [f"{k.replace('_', '-')} must be at least 1" for k in
                ("batch_views", "image_size", "texture_size", "turntable_frames", "turntable_size", "sheet_size")
                if getattr(settings, k) < 1]
    problems += [f"{k.replace('_', '-')} must not be negative" for k in
                 ("iterations", "distance_noise", "style_weight", "content_weight", "tv_weight", "vertex_lr", "texture_lr")
                 if getattr(settings, k) < 0]
    if settings.image_size < 16:
        problems.append("image-size must be at least 16 (VGG pools 3 times)")
    if problems:
        raise SettingsError("; ".join(problems))


class StyleImageError(ValueError):
    """The style image cannot be used; one line naming the file."""


def load_style_image(path: str | Path) -> np.ndarray:
    """The style image as ``[H, W, 3]`` float32 RGB in [0, 1]: grey and palette images converted,
    transparency composited over white, downscaled to at most :data:`MAX_STYLE_SIDE` per side."""
    from PIL import Image

    path = Path(path)
    if not path.exists():
        raise StyleImageError(f"{path}: no such file")
    if path.is_dir():
        raise StyleImageError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise StyleImageError(f"{path}: empty file, not an image")
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = MAX_STYLE_PIXELS
    try:
        with Image.open(path) as image:
            image.draft("RGB", (MAX_STYLE_SIDE, MAX_STYLE_SIDE))  # JPEG: decode at a reduced size
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                image = Image.alpha_composite(white, rgba)
            rgb = image.convert("RGB")
            rgb.thumbnail((MAX_STYLE_SIDE, MAX_STYLE_SIDE), Image.LANCZOS)
            array = np.asarray(rgb, dtype=np.float32) / 255.0
    except Image.DecompressionBombError:
        raise StyleImageError(f"{path}: image too large (more than {MAX_STYLE_PIXELS} pixels)") from None
    except (OSError, SyntaxError, ValueError) as problem:
        raise StyleImageError(f"{path}: not a readable image ({problem})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    if min(array.shape[:2]) < MIN_STYLE_SIDE:
        raise StyleImageError(f"{path}: image too small ({array.shape[1]}x{array.shape[0]} pixels; "
                              f"a style image needs at least {MIN_STYLE_SIDE}x{MIN_STYLE_SIDE})")
    return array


def style_tensor(image: np.ndarray, size: int, device) -> torch.Tensor:
    """``[H, W, 3]`` -> ``[1, 3, size, size]`` (bilinear, antialiased), the size of rendered views."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    antialias = x.shape[-1] > size or x.shape[-2] > size
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias)
    return x.clamp(0, 1).to(device)


class StyleLoss:
    """Callable loss for :func:`~meshopt_cli.optimize.textured.optimize_textured`.

    ``network``: a feature extractor ``[B, 3, S, S] -> {layer: [B, C, H, W]}`` (VGG16Features);
    ``style``: ``[1, 3, S, S]``; ``initial_vertices``: ``[V, 3]``."""

    def __init__(self, network, style: torch.Tensor, initial_vertices: torch.Tensor, settings: StyleSettings):
        self.network = network
        with torch.no_grad():
            self.grams = [g.detach() for g in gram_matrices(network(style))]
        self.initial = initial_vertices.detach()
        self.weights = (settings.style_weight, settings.content_weight, settings.tv_weight)

    def __call__(self, views: RenderedViews, vertices: torch.Tensor):
        ws, wc, wt = self.weights
        s = style_loss(self.network(views.rgb), self.grams, views.alpha)
        c = content_loss(vertices, self.initial)
        t = total_variation(views.rgb, views.alpha)
        loss = ws * s + wc * c + wt * t
        return loss, {"style": float(s.item()), "content": float(c.item()), "tv": float(t.item())}
