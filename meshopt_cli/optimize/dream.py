"""3D DeepDream (Kato et al. 2018, section 4.4): the loss.

``L = −mean(a²) + λ_length · Var(edge lengths) · F``

with ``a`` the activations of one GoogLeNet inception block (:class:`~meshopt_cli.optimize.backbones.GoogLeNetFeatures`,
default ``inception_4c``) over a batch of random views, and the triangle-evenness term of
:func:`~meshopt_cli.optimize.image_losses.edge_length_variance`. The command's settings are
:class:`meshopt_cli.commands.dream.DreamSettings`; its views are lit by ambient light only on one
random grey background per step.
"""

from __future__ import annotations

import torch

from meshopt_cli.optimize.image_losses import dream_loss, edge_length_variance, unique_edges
from meshopt_cli.optimize.textured import RenderedViews


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
