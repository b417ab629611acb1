"""2D-to-3D style transfer (Kato et al. 2018, section 4.3): the style image and the loss.

``L = λ_style · mean_b Σ_l a_l ‖G_l(render_b ⊙ mask_b) − G_l(style)‖² + λ_content · Σ_v ‖v − v₀‖²
      + λ_tv · TV(render inside the silhouette)
      + λ_colour · mean_b (‖μ(render_b) − μ(style)‖² + ‖Σ(render_b) − Σ(style)‖²_F)``

with ``a_l = 1 / ‖G_l(style)‖²`` (``style_normalization = "target"``, the default: the style term
is relative to the painting's own Gram matrices, so λ_style means the same with any weights file)
or ``a_l = 1`` (``"none"``: the paper's absolute Gram error, whose scale follows the network's
feature magnitude; the paper preset, calibrated for ImageNet weights).

with Gram matrices of VGG16 ReLU features after conv1_2, conv2_2, conv3_3, conv4_3
(:mod:`~meshopt_cli.optimize.image_losses`), and μ, Σ the mean and covariance of the RGB colours
inside the silhouette (the whole style image): the colour term, which measures pixels, not a
network (λ_colour = 0 is the paper's loss; the Gram terms alone do not move the mean colour toward
the painting's, see :func:`~meshopt_cli.optimize.image_losses.colour_loss`). The command's settings are
:class:`meshopt_cli.commands.style.StyleSettings`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from meshopt_cli.images import ImageReadError, read_image
from meshopt_cli.mesh.shipped import local
from meshopt_cli.optimize.image_losses import (
    colour_loss,
    colour_statistics,
    content_loss,
    gram_matrices,
    style_loss,
    target_normalization,
    total_variation,
)
from meshopt_cli.optimize.textured import RenderedViews

MAX_STYLE_SIDE = 1024  # style images are downscaled to at most this many pixels per side on load
MIN_STYLE_SIDE = 16  # a smaller image has no strokes to transfer (and is most likely a mistake)
STYLE_NORMALIZATIONS = ("target", "none")


class StyleImageError(ValueError):
    """The style image cannot be used; one line naming the file."""


def load_style_image(path: str | Path) -> np.ndarray:
    """The style image as ``[H, W, 3]`` float32 RGB in [0, 1] (any mode meshopt_cli.images reads),
    transparency composited over white, downscaled to at most :data:`MAX_STYLE_SIDE` per side."""
    path = Path(path)
    try:
        data = read_image(local(path), max_side=MAX_STYLE_SIDE)  # local: where it is read (mesh/shipped.py)
    except ImageReadError as problem:
        raise StyleImageError(f"{path}: {problem}") from None
    rgb = data.rgb if data.alpha is None else data.rgb * data.alpha[..., None] + (1.0 - data.alpha[..., None])
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_STYLE_SIDE:
        size = f"{data.original[0]}x{data.original[1]} pixels"
        if data.reduced:
            size += f", {width}x{height} once downscaled to {MAX_STYLE_SIDE} per side"
        raise StyleImageError(f"{path}: image too small ({size}; a style image needs at least {MIN_STYLE_SIDE}x{MIN_STYLE_SIDE})")
    return np.ascontiguousarray(rgb, dtype=np.float32)


def style_tensor(image: np.ndarray, size: int, device) -> torch.Tensor:
    """``[H, W, 3]`` -> ``[1, 3, size, size]`` (bilinear, antialiased), the size of rendered views."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    antialias = x.shape[-1] > size or x.shape[-2] > size
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias)
    return x.clamp(0, 1).to(device)


class StyleLoss:
    """Callable loss for :func:`~meshopt_cli.optimize.textured.optimize_textured`.

    ``network``: a feature extractor ``[B, 3, S, S] -> {layer: [B, C, H, W]}`` (VGG16Features);
    ``style``: ``[1, 3, S, S]``; ``initial_vertices``: ``[V, 3]``; ``weights``: (λ_style, λ_content, λ_tv);
    ``normalization``: ``"target"`` (per-layer ``1 / ‖G_l(style)‖²``) or ``"none"``;
    ``colour_weight``: λ_colour of the colour-statistics term (0: the paper's loss). The terms it
    reports: style, content, tv and colour (unweighted)."""

    def __init__(
        self,
        network,
        style: torch.Tensor,
        initial_vertices: torch.Tensor,
        weights: tuple[float, float, float],
        normalization: str = "target",
        colour_weight: float = 0.0,
    ):
        if normalization not in STYLE_NORMALIZATIONS:
            raise ValueError(f"style normalization must be one of {', '.join(STYLE_NORMALIZATIONS)}; got {normalization!r}")
        self.network = network
        with torch.no_grad():
            self.grams = [g.detach() for g in gram_matrices(network(style))]
        self.layer_weights = target_normalization(self.grams) if normalization == "target" else None
        self.initial = initial_vertices.detach()
        self.weights = tuple(float(w) for w in weights)
        self.colour_weight = float(colour_weight)
        with torch.no_grad():
            mean, covariance = colour_statistics(style.float())
        self.colour_mean, self.colour_covariance = mean[0].detach(), covariance[0].detach()

    def __call__(self, views: RenderedViews, vertices: torch.Tensor):
        ws, wc, wt = self.weights
        s = style_loss(self.network(views.rgb), self.grams, views.alpha, self.layer_weights, self.layer_weights is not None)
        c = content_loss(vertices, self.initial)
        t = total_variation(views.rgb, views.alpha)
        k = colour_loss(views.rgb, self.colour_mean, self.colour_covariance, views.alpha)
        loss = ws * s + wc * c + wt * t
        if self.colour_weight:
            loss = loss + self.colour_weight * k
        return loss, {"style": float(s.item()), "content": float(c.item()), "tv": float(t.item()), "colour": float(k.item())}
