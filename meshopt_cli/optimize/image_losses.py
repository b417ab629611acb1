"""Image-space losses of ``style`` (Gram-matrix style, content, total variation) and ``dream``
(DeepDream activation, edge-length regularizer).

Shapes: features ``[B, C, H, W]`` (one per backbone layer, e.g. from
:class:`~meshopt_cli.optimize.backbones.VGG16Features`), images ``[B, 3, S, S]``, silhouettes /
masks ``[B, S, S]`` or ``[B, 1, S, S]`` in [0, 1], vertices ``[V, 3]`` or ``[B, V, 3]``, faces
``[F, 3]`` (integer). Every loss returns a scalar tensor. Batch convention: style, TV and edge terms
are **means over the batch** (views) so that their weights do not depend on the number of views;
the content term is a plain sum (it has no batch of views).
"""

from __future__ import annotations

from typing import Mapping, Sequence, Union

import torch
import torch.nn.functional as F

Features = Union[Sequence[torch.Tensor], Mapping[str, torch.Tensor]]


def _as_list(features: Features) -> list[torch.Tensor]:
    return list(features.values()) if isinstance(features, Mapping) else list(features)


def pool_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A silhouette ``[B, H, W]`` or ``[B, 1, H, W]`` -> ``[B, 1, h, w]`` by area (average)
    pooling: each feature cell gets the fraction of its image area that is covered. Differentiable
    in the mask."""
    if mask.ndim == 3:
        mask = mask[:, None]
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"expected a mask [B, H, W] or [B, 1, H, W], got {tuple(mask.shape)}")
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.interpolate(mask, size=size, mode="area")


def gram_matrix(features: torch.Tensor, mask: torch.Tensor | None = None, by_area: bool = False) -> torch.Tensor:
    """Gram matrices ``[B, C, C]`` of features ``[B, C, H, W]``:
    ``G[b, i, j] = Σ_{y,x} f[b, i, y, x] · f[b, j, y, x] / (C · H · W)`` — normalised by
    C·H·W of the feature map (not by the covered area), with ``f`` the features multiplied by the
    silhouette ``mask`` area-pooled to H×W (:func:`pool_mask`) when one is given. ``by_area``:
    divided by ``C · Σ m²`` instead (m the pooled mask): the mean over the silhouette only, so that
    the background's zeros do not ask the render for stronger features than the painting's."""
    if features.ndim != 4:
        raise ValueError(f"expected features [B, C, H, W], got {tuple(features.shape)}")
    b, c, h, w = features.shape
    area = None
    if mask is not None:
        pooled = pool_mask(mask.to(features.dtype), (h, w))
        features = features * pooled
        if by_area:
            area = (pooled.square().flatten(1).sum(1) / (h * w)).clamp_min(1e-6)[:, None, None]  # [B, 1, 1]
    if features.is_contiguous(memory_format=torch.channels_last) and not features.is_contiguous():
        # channels-last features (the bf16 backbones): [B, H·W, C] is a view, and the gradient
        # comes back in the backbone's own layout instead of being converted at every layer
        flat = features.permute(0, 2, 3, 1).reshape(b, h * w, c)
        gram = _SymmetricGram.apply(flat.transpose(1, 2), 1.0 / (c * h * w))
    else:
        gram = _SymmetricGram.apply(features.reshape(b, c, h * w), 1.0 / (c * h * w))
    return gram if area is None else gram / area.to(gram.dtype)


class _SymmetricGram(torch.autograd.Function):
    """``G = scale · X Xᵀ`` for ``X [B, C, N]``, with the backward of a symmetric product:
    ``dX = scale · (dG + dGᵀ) X``, one batched product where autograd's ``bmm`` backward takes two
    (one per operand), and in the layout of ``X`` (a channels-last feature map's gradient stays
    channels-last, so the mask product, the ReLU backward and the sum with the next layer's gradient
    do not mix layouts). The Gram products are the largest fp32 cost of a style step."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.scale = scale
        return torch.baddbmm(x.new_empty(()), x, x.transpose(1, 2), beta=0.0, alpha=scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        symmetric = grad + grad.transpose(1, 2)
        if x.transpose(1, 2).is_contiguous():  # channels-last features: dX in their layout, (Xᵀ S)ᵀ = S X
            return torch.baddbmm(x.new_empty(()), x.transpose(1, 2), symmetric, beta=0.0, alpha=ctx.scale).transpose(1, 2), None
        return torch.baddbmm(x.new_empty(()), symmetric, x, beta=0.0, alpha=ctx.scale), None


def gram_matrices(features: Features, mask: torch.Tensor | None = None) -> list[torch.Tensor]:
    """:func:`gram_matrix` of every layer (a list, or a dict's values in order)."""
    return [gram_matrix(f, mask) for f in _as_list(features)]


def style_loss(
    features: Features,
    style_grams: Sequence[torch.Tensor],
    mask: torch.Tensor | None = None,
    layer_weights: Sequence[float] | None = None,
    by_area: bool = False,
) -> torch.Tensor:
    """Style loss of rendered views against a style image:

    ``L = mean_b Σ_layers a_l ‖G_l(render_b · mask_b) − G_l(style)‖²_F``

    with ``a_l = layer_weights[l]`` (1 when None; :func:`target_normalization` makes each layer's
    term independent of the network's feature scale) and ``by_area`` the render's Gram matrices
    over the silhouette only (:func:`gram_matrix`).

    ``features``: per layer ``[B, C_l, H_l, W_l]`` of the rendered views; ``style_grams``: per
    layer ``[C_l, C_l]``, ``[1, C_l, C_l]`` or ``[B, C_l, C_l]`` (the style image's, from
    :func:`gram_matrices`, unmasked); ``mask``: the rendered silhouettes ``[B, S, S]`` /
    ``[B, 1, S, S]``, pooled to each layer's size (gradient flows through it)."""
    feats = _as_list(features)
    if len(feats) != len(style_grams):
        raise ValueError(f"{len(feats)} feature layers but {len(style_grams)} style Gram matrices")
    weights = [1.0] * len(feats) if layer_weights is None else list(layer_weights)
    total = None
    for f, target, weight in zip(feats, style_grams, weights):
        g = gram_matrix(f, mask, by_area)
        target = target.to(g.dtype)
        if target.ndim == 2:
            target = target[None]
        term = ((g - target) ** 2).sum(dim=(1, 2)).mean() * weight
        total = term if total is None else total + term
    return total


def target_normalization(style_grams: Sequence[torch.Tensor]) -> list[float]:
    """Per-layer weights ``1 / ‖G_l(style)‖²_F``: each layer's style term then reads "squared Gram
    error relative to the painting's own Gram matrix", 1 for an all-black render, whatever the
    magnitude of the network's features (ImageNet or random weights, any input scaling). A Gram
    matrix scales with the square of the features, its squared error with the fourth power, so
    without this the balance against content and TV hinges on the weights file (about 5e-4 of the
    TV term with random weights on the sphere)."""
    return [1.0 / max(float((g.double() ** 2).sum()), 1e-30) for g in style_grams]


def colour_statistics(images: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``[B, 3]`` and covariance ``[B, 3, 3]`` (population, i.e. divided by the weight sum) of
    the pixel colours of ``images`` ``[B, 3, H, W]``, each pixel weighted by the silhouette ``mask``
    ``[B, H, W]`` / ``[B, 1, H, W]`` at the image's size (all ones if None; gradient flows through it)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images [B, 3, H, W], got {tuple(images.shape)}")
    x = images.flatten(2)  # [B, 3, N]
    if mask is None:
        w = torch.ones_like(x[:, 0])
    else:
        m = mask if mask.ndim == 3 else mask[:, 0]
        if tuple(m.shape[-2:]) != tuple(images.shape[-2:]):
            raise ValueError(f"mask {tuple(mask.shape)} does not match images {tuple(images.shape)}")
        w = m.to(images.dtype).flatten(1)
    w = w / w.sum(1, keepdim=True).clamp_min(1e-6)  # [B, N]
    mean = (x * w[:, None]).sum(2)
    centred = x - mean[:, :, None]
    covariance = torch.einsum("bin,bjn,bn->bij", centred, centred, w)
    return mean, covariance


def colour_loss(
    images: torch.Tensor, target_mean: torch.Tensor, target_covariance: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Colour-statistics term of ``style``: ``mean_b ‖μ_b − μ‖² + ‖Σ_b − Σ‖²_F``, the mean and
    covariance of the colours inside each view's silhouette (:func:`colour_statistics`) against the
    style image's (``target_mean [3]``, ``target_covariance [3, 3]``), in [0, 1] RGB units.

    It measures the image, not a network, so its scale is the same with any weights file. It is
    needed because the Gram matrices do not pull the mean colour toward the painting's: a Gram
    matrix of ReLU features is an uncentred second moment, and for a painting with two or more
    dominant colours a texture that takes one of them (a single mode) is a local minimum of the
    Gram loss, whatever the mean colour (docs/design.md, "Style colour")."""
    mean, covariance = colour_statistics(images, mask)
    m = ((mean - target_mean.to(mean.dtype).reshape(1, 3)) ** 2).sum(1)
    c = ((covariance - target_covariance.to(covariance.dtype).reshape(1, 3, 3)) ** 2).sum((1, 2))
    return (m + c).mean()


def content_loss(vertices: torch.Tensor, initial_vertices: torch.Tensor) -> torch.Tensor:
    """Sum of squared vertex displacements ``Σ ‖v − v₀‖²`` (any matching shapes, e.g.
    ``[V, 3]``); ``initial_vertices`` is treated as a constant."""
    return ((vertices - initial_vertices.detach()) ** 2).sum()


def total_variation(images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Squared total variation inside the silhouette, mean over the batch:

    ``TV = mean_b Σ_{c,y,x} m(y,x)·m(y+1,x)·(I[c,y+1,x] − I[c,y,x])²
                          + m(y,x)·m(y,x+1)·(I[c,y,x+1] − I[c,y,x])²``

    for images ``[B, C, H, W]`` and a silhouette ``mask`` ``[B, H, W]`` / ``[B, 1, H, W]`` at the
    image's size (all ones if None). A difference counts only where both pixels are inside, so the
    silhouette's border against the background costs nothing. The mask is detached: TV smooths the
    colours, it must not shrink the silhouette."""
    if images.ndim != 4:
        raise ValueError(f"expected images [B, C, H, W], got {tuple(images.shape)}")
    dy = (images[:, :, 1:, :] - images[:, :, :-1, :]) ** 2
    dx = (images[:, :, :, 1:] - images[:, :, :, :-1]) ** 2
    if mask is not None:
        m = mask.detach().to(images.dtype)
        if m.ndim == 3:
            m = m[:, None]
        if tuple(m.shape[-2:]) != tuple(images.shape[-2:]):
            raise ValueError(f"mask {tuple(mask.shape)} does not match images {tuple(images.shape)}")
        dy = dy * (m[:, :, 1:, :] * m[:, :, :-1, :])
        dx = dx * (m[:, :, :, 1:] * m[:, :, :, :-1])
    return (dy.flatten(1).sum(1) + dx.flatten(1).sum(1)).mean()


def dream_loss(activation: torch.Tensor) -> torch.Tensor:
    """DeepDream loss ``−mean(activation²)`` over all elements of ``activation`` ``[B, C, H, W]``
    (minimising it makes the layer's activations grow)."""
    return -(activation**2).mean()


def unique_edges(faces: torch.Tensor) -> torch.Tensor:
    """Undirected edges ``[E, 2]`` (i < j, each once) of triangles ``faces`` ``[F, 3]``."""
    f = faces.long()
    pairs = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], dim=0)
    return torch.unique(torch.sort(pairs, dim=1).values, dim=0)


def edge_length_variance(vertices: torch.Tensor, faces: torch.Tensor, edges: torch.Tensor | None = None) -> torch.Tensor:
    """The dream's triangle-evenness term: ``Var(edge lengths) × F``.

    Lengths ``‖v_i − v_j‖`` over the unique undirected edges of ``faces`` ``[F, 3]`` (pass
    ``edges`` ``[E, 2]`` from :func:`unique_edges` to compute them once); population variance
    (divided by E); multiplied by the number of faces F. ``vertices`` ``[V, 3]`` or
    ``[B, V, 3]`` (then the mean over the batch)."""
    if edges is None:
        edges = unique_edges(faces)
    v = vertices if vertices.ndim == 3 else vertices[None]
    # sqrt of a clamped square: a zero-length edge gives a finite gradient, not NaN
    lengths = ((v[:, edges[:, 0]] - v[:, edges[:, 1]]) ** 2).sum(-1).clamp_min(1e-20).sqrt()  # [B, E]
    variance = lengths.var(dim=1, unbiased=False)
    return variance.mean() * faces.shape[-2]
