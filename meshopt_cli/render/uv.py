"""UV-mapped texture images: the shading of the rasterizer's maps, in plain PyTorch.

The rasterizer (either backend) gives per pixel of the internal frame the visible face, its
screen-space barycentric weights and its perspective-correct depth. This module turns those into
colours of a texture image:

1. perspective-correct weights ``p_k = w_k z / z_k`` interpolate the face's corner UVs;
2. the level of detail is the UV footprint of one (internal) pixel, in texels of the full image:
   ``rho = max(|d(uv)/dx|, |d(uv)/dy|)`` (analytic per pixel, from the face's screen-space edge
   functions, so that no neighbouring pixel of another face is read), ``level = log2(rho)``
   clamped to the mip pyramid;
3. bilinear reads on the two nearest levels of a box-filtered mip pyramid, blended linearly
   (trilinear); texel ``(i, j)`` of a ``W x H`` level has its centre at ``u = (i + 0.5) / W``,
   ``v = 1 - (j + 0.5) / H`` (row 0 of the image is the top, v = 1, as in the file), so a texture
   seen at 1:1 is read at texel centres, unblurred;
4. the wrap mode applies to the integer texel index of each tap (``repeat``, ``mirrored_repeat``,
   ``clamp_to_edge``, or ``clamp_to_border``: black outside the image), as a GPU sampler does.

Everything is differentiable by autograd with respect to the texture image (exactly: the reads
are linear in it), the UVs and the light; the weights, depths and levels are constants, as the
cube path treats them. The vertex gradient is not taken here: :class:`UVComposite` passes the
shaded image through and gives its vertices the approximate gradient of the same ``backward_xy``
kernel the cube path uses (it reads only the rendered image and its gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from meshopt_cli.mesh.cubes import WRAPPINGS, canonical_wrapping
from meshopt_cli.render import reference

WRAPS = WRAPPINGS  # the mesh loader's wrap modes: one list, one alias table


def canonical_wrap(name: str) -> str:
    """``"repeat"``, ``"mirror"``, ``"clamp"``, ``"border"``, ... -> one of :data:`WRAPS` (a ValueError
    naming ``texture_wrap`` else)."""
    try:
        return canonical_wrapping(name)
    except ValueError:
        raise ValueError(f"texture_wrap must be one of {', '.join(WRAPS)}; got {name!r}") from None


# ----------------------------------------------------------------------------- validation


def check_uv_inputs(uvs, texture_image, batch_size: int, num_faces: int, device) -> None:
    """``uvs [B or 1, F, 3, 2]`` and ``texture_image [B or 1, H, W, 3]``, float32, finite UVs, on
    ``device``; a ValueError naming the argument otherwise."""
    if uvs is None and texture_image is None:
        return
    if uvs is None:
        raise ValueError("texture_image was given without uvs: pass uvs [B, F, 3, 2] (one UV per face corner)")
    if texture_image is None:
        raise ValueError("uvs were given without texture_image: pass texture_image [B, H, W, 3]")
    for name, value, shape, ndim in (("uvs", uvs, "[B, F, 3, 2]", 4), ("texture_image", texture_image, "[B, H, W, 3]", 4)):
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor of shape {shape}, got {type(value).__name__}")
        if value.dtype != torch.float32:
            raise ValueError(f"{name} must be float32, got {str(value.dtype).replace('torch.', '')} (call .float())")
        if value.device != device:
            raise ValueError(f"{name} is on {value.device} but the vertices are on {device}")
        if value.ndim != ndim or value.shape[0] not in (1, batch_size):
            raise ValueError(f"{name} must have shape {shape} with B = {batch_size} (or 1), got {list(value.shape)}")
    if tuple(uvs.shape[1:]) != (num_faces, 3, 2):
        raise ValueError(f"uvs must have shape [B, F, 3, 2] with F = {num_faces}, got {list(uvs.shape)}")
    if texture_image.shape[-1] != 3:
        raise ValueError(f"texture_image must have shape [B, H, W, 3] (RGB last), got {list(texture_image.shape)}")
    if texture_image.shape[1] == 0 or texture_image.shape[2] == 0:
        raise ValueError(f"texture_image has zero size: {list(texture_image.shape)}")
    if not bool(torch.isfinite(uvs).all()):
        raise ValueError("uvs contains NaN or infinite coordinates")


# ----------------------------------------------------------------------------- sampling


def mip_pyramid(image: torch.Tensor) -> list[torch.Tensor]:
    """``[B, H, W, 3]`` -> levels ``[B, h_l, w_l, 3]``, level 0 the image itself, each next one the
    2x2 box average of the previous (``ceil`` halves: an odd last row/column is averaged alone),
    down to 1 x 1. Differentiable."""
    levels = [image]
    current = image
    while current.shape[1] > 1 or current.shape[2] > 1:
        b, h, w, _ = current.shape
        kernel = (2 if h > 1 else 1, 2 if w > 1 else 1)
        pooled = F.avg_pool2d(current.permute(0, 3, 1, 2), kernel_size=kernel, stride=kernel, ceil_mode=True)
        current = pooled.permute(0, 2, 3, 1)
        levels.append(current)
    return levels


def mip_levels(height: int, width: int) -> list[tuple[int, int, int]]:
    """(height, width, offset) of each level of :func:`mip_pyramid` of an ``H x W`` image, packed
    one after another (offsets in texels), down to 1 x 1."""
    levels, offset = [(height, width, 0)], height * width
    while height > 1 or width > 1:
        height, width = (height + 1) // 2, (width + 1) // 2
        levels.append((height, width, offset))
        offset += height * width
    return levels


def _wrap_index(index: torch.Tensor, size: torch.Tensor, wrap: str):
    """Integer texel indices wrapped into [0, size) (``size`` per element); also the in-image mask
    for ``clamp_to_border`` (None otherwise)."""
    if wrap == "repeat":
        return torch.remainder(index, size), None
    if wrap == "mirrored_repeat":
        m = torch.remainder(index, 2 * size)
        return torch.where(m >= size, 2 * size - 1 - m, m), None
    inside = (index >= 0) & (index < size) if wrap == "clamp_to_border" else None
    return torch.minimum(index.clamp(min=0), size - 1), inside


class Pyramid:
    """A mip pyramid packed into one tensor ``[Bi Σ h_l w_l, 3]`` (one gather reads any level of any
    image; one scatter in the backward pass) and its ``table [L, 3]`` int64: height, width and
    offset of each level."""

    def __init__(self, image: torch.Tensor):
        levels = mip_pyramid(image)
        self.count = len(levels)
        self.packed = torch.cat([level.reshape(level.shape[0], -1, 3) for level in levels], dim=1).reshape(-1, 3)
        sizes = [level.shape[1] * level.shape[2] for level in levels]
        self.total = sum(sizes)
        self.table = torch.tensor(
            [[level.shape[1], level.shape[2], sum(sizes[:k])] for k, level in enumerate(levels)], device=image.device
        )

    def taps(self, image_batch: torch.Tensor, uv: torch.Tensor, level: torch.Tensor, wrap: str):
        """The bilinear read at ``uv [N, 2]`` on level ``level [N]`` (int64) of image ``image_batch [N]``:
        rows of :attr:`packed` ``[N, 4]`` and their weights ``[N, 4]`` (differentiable in ``uv``)."""
        h, w, offset = self.table[level].unbind(1)
        x = uv[:, 0] * w - 0.5
        y = (1 - uv[:, 1]) * h - 0.5
        x0 = torch.floor(x.detach())
        y0 = torch.floor(y.detach())
        fx, fy = x - x0, y - y0
        x0, y0 = x0.long(), y0.long()
        base = image_batch * self.total + offset
        columns = [(_wrap_index(x0 + dx, w, wrap), wx) for dx, wx in ((0, 1 - fx), (1, fx))]
        rows, weights = [], []
        for dy, wy in ((0, 1 - fy), (1, fy)):
            iy, in_y = _wrap_index(y0 + dy, h, wrap)
            row = base + iy * w
            for (ix, in_x), wx in columns:
                rows.append(row + ix)
                weight = wy * wx
                if in_x is not None:
                    weight = weight * (in_x & in_y).to(weight.dtype)
                weights.append(weight)
        return torch.stack(rows, dim=1), torch.stack(weights, dim=1)

    def trilinear(self, image_batch: torch.Tensor, uv: torch.Tensor, lod: torch.Tensor, wrap: str) -> torch.Tensor:
        """Colours ``[N, 3]``: bilinear reads on levels ``floor(lod)`` and the next, blended by the
        fraction of ``lod [N]`` (clamped to the pyramid here); only the first where no pixel is
        minified. One gather for all taps."""
        lod = lod.detach().clamp(0, self.count - 1)
        low = torch.floor(lod)
        frac = (lod - low)[:, None]
        low = low.long()
        rows, weights = self.taps(image_batch, uv, low, wrap)
        if self.count > 1 and bool((frac > 0).any()):
            high_rows, high_weights = self.taps(image_batch, uv, torch.clamp(low + 1, max=self.count - 1), wrap)
            rows = torch.cat((rows, high_rows), dim=1)
            weights = torch.cat((weights * (1 - frac), high_weights * frac), dim=1)
        return torch.einsum("nk,nkc->nc", weights, self.packed[rows])


# ----------------------------------------------------------------------------- shading the maps


def shade(
    faces: torch.Tensor,
    face_index: torch.Tensor,
    weights: torch.Tensor,
    depth: torch.Tensor,
    uvs: torch.Tensor,
    texture_image: torch.Tensor,
    background: torch.Tensor,
    light: torch.Tensor | None,
    wrap: str = "repeat",
    backend=None,
) -> torch.Tensor:
    """The rgb map ``[B, S, S, 3]`` (unflipped frame, internal size) of UV-textured faces.

    ``faces [B, F, 9]`` screen space as rasterized; ``face_index``, ``weights``, ``depth``: the
    backend's maps; ``uvs [B or 1, F, 3, 2]`` for those faces (the reversed copies' already
    reversed); ``texture_image [B or 1, H, W, 3]``; ``background [B, 3]``; ``light [B, F, 3]`` or None.
    ``backend``: one with ``shade_uv`` (the native kernels, rasterizer_math.h) shades every pixel in
    one pass (:class:`NativeShade`); otherwise (the reference backend) the PyTorch code below does,
    with autograd.
    """
    if getattr(backend, "shade_uv", None) is not None:
        fixed = (backend, faces.detach(), (face_index, weights, depth), background, wrap)
        return NativeShade.apply(texture_image, uvs, light, *fixed)
    B, S = face_index.shape[:2]
    inverse_z, footprint = face_footprints(faces.detach(), uvs.detach(), S, texture_image.shape[1:3])
    F_ = faces.shape[1]
    flat_face = face_index.reshape(-1).long()
    pixel = torch.nonzero(flat_face >= 0).squeeze(1)
    batch = pixel // (S * S)
    face_id = batch * F_ + flat_face[pixel]
    w = weights.reshape(-1, 3)[pixel]
    z = depth.reshape(-1)[pixel]
    corner_uv = uvs.expand(B, -1, -1, -1).reshape(-1, 3, 2)[face_id]  # [N, 3, 2]
    # perspective-correct weights w_k z / z_k (0/0, a vertex at depth 0, read as 0, as the cube path does)
    perspective = torch.nan_to_num(w * z[:, None] * inverse_z[face_id], nan=0.0)
    uv = (perspective[..., None] * corner_uv).sum(1)
    lod = level_of_detail(footprint[face_id], z, uv.detach(), texture_image.shape[1:3])
    image_batch = batch if texture_image.shape[0] > 1 else torch.zeros_like(batch)
    color = Pyramid(texture_image).trilinear(image_batch, uv, lod, wrap)
    if light is not None:
        color = color * light.reshape(-1, 3)[face_id]
    rgb = background.to(color.dtype)[:, None, :].expand(B, S * S, 3).reshape(-1, 3)
    rgb = rgb.index_put((pixel,), color)
    return rgb.reshape(B, S, S, 3)


def face_footprints(faces: torch.Tensor, uvs: torch.Tensor, image_size: int, image_hw) -> tuple[torch.Tensor, torch.Tensor]:
    """Per face (flat ``[B F]``): ``1 / z_k`` ``[BF, 3]`` and the coefficients ``[BF, 6]`` of
    :func:`level_of_detail` (per screen axis x, y: ``Σ_k c_k uv_k / z_k`` in texels, then ``Σ_k c_k / z_k``).

    The screen weights are linear in the pixel position q, ``dw_k/dq = c_k`` (from the edge
    functions, per face); with ``a_k = w_k / z_k`` and ``uv = Σ a_k uv_k / Σ a_k``,
    ``d(uv)/dq = depth · (Σ_k c_k uv_k / z_k − uv Σ_k c_k / z_k)``."""
    B = faces.shape[0]
    px, py, pz, _ = reference.pixel_coordinates(faces.reshape(-1, 9), image_size)
    area = reference.edge_function(px[:, 0], py[:, 0], px[:, 1], py[:, 1], px[:, 2], py[:, 2])
    nxt, prv = [1, 2, 0], [2, 0, 1]  # e_k = edge(vertex k+1 -> vertex k+2, q)
    inverse_z = 1 / pz
    cx = -(py[:, prv] - py[:, nxt]) / area[:, None] * inverse_z
    cy = (px[:, prv] - px[:, nxt]) / area[:, None] * inverse_z
    scale = torch.tensor([image_hw[1], image_hw[0]], dtype=faces.dtype, device=faces.device)
    texels = uvs.expand(B, -1, -1, -1).reshape(-1, 3, 2) * scale
    ax = (cx[..., None] * texels).sum(1)
    ay = (cy[..., None] * texels).sum(1)
    coefficients = torch.cat((ax, cx.sum(1, keepdim=True), ay, cy.sum(1, keepdim=True)), dim=1)
    return inverse_z, torch.nan_to_num(coefficients, nan=0.0, posinf=0.0, neginf=0.0)


def level_of_detail(coefficients: torch.Tensor, depth: torch.Tensor, uv: torch.Tensor, image_hw) -> torch.Tensor:
    """``log2`` of the UV footprint of one pixel in texels of level 0, ``[N]``: the longer of
    ``|d(uv)/dx|`` and ``|d(uv)/dy|`` (:func:`face_footprints`' ``coefficients [N, 6]`` of each
    pixel's face, its ``depth [N]`` and ``uv [N, 2]``)."""
    texel = uv * torch.tensor([image_hw[1], image_hw[0]], dtype=uv.dtype, device=uv.device)
    d_dx = depth[:, None] * (coefficients[:, 0:2] - texel * coefficients[:, 2:3])
    d_dy = depth[:, None] * (coefficients[:, 3:5] - texel * coefficients[:, 5:6])
    rho = torch.maximum(d_dx.square().sum(1), d_dy.square().sum(1))  # squared footprint
    rho = torch.nan_to_num(rho, nan=1.0, posinf=float(2**60))
    return 0.5 * torch.log2(rho.clamp(min=2**-60)) - 1e-4  # a hair below: 1:1 stays on level 0 despite rounding


class NativeShade(torch.autograd.Function):
    """:func:`shade` on a native backend: ``(texture_image [Bi, H, W, 3], uvs [Bu, F, 3, 2], light
    [B, F, 3] or None, backend, faces [B, F, 9], maps, background, wrap) -> rgb [B, S, S, 3]``. The
    kernels build the packed pyramid (``mip_pyramid``, the levels of :func:`mip_levels`) and shade
    every pixel (``shade_uv``: the steps of the PyTorch path, the face footprints included); the
    backward pass gives the image (through the pyramid), the UVs and the light the gradients
    autograd takes through the PyTorch path (the weights, depths and levels constant)."""

    @staticmethod
    def forward(ctx, texture_image, uvs, light, backend, faces, maps, background, wrap):
        levels = mip_levels(texture_image.shape[1], texture_image.shape[2])
        packed = backend.mip_pyramid(texture_image, levels)
        ctx.fixed = (backend, faces, maps, levels, background, wrap, texture_image.shape[0])
        ctx.save_for_backward(packed, uvs, light)
        return backend.shade_uv(faces, maps, uvs, packed, levels, light, background, wrap)

    @staticmethod
    def backward(ctx, grad_rgb):
        packed, uvs, light = ctx.saved_tensors
        backend, faces, maps, levels, background, wrap, images = ctx.fixed
        needs = ctx.needs_input_grad[:3]
        grad_packed, grad_uvs, grad_light = backend.shade_uv_backward(
            faces, maps, uvs, packed, levels, light, background, wrap, grad_rgb, needs
        )
        grad_image = backend.mip_pyramid_backward_(grad_packed, levels, images) if grad_packed is not None else None
        return grad_image, grad_uvs, grad_light, None, None, None, None, None


# ----------------------------------------------------------------------------- the autograd seam


class UVComposite(torch.autograd.Function):
    """Passes the shaded rgb map through; gives the faces the cube path's vertex gradient.

    forward(faces [B, F, 9], rgb [B, S, S, 3], face_index, alpha, depth, eps, return_alpha, return_depth)
    -> (rgb, alpha, depth) copies. backward: ``grad_rgb`` goes on to ``rgb`` unchanged (and from
    there by autograd to the texture image, the UVs and the light); the faces get
    ``backward_xy`` of the rendered channels (alpha first, as :class:`RasterizeFunction` stacks
    them) and ``backward_depth``, exactly as in the cube path.
    """

    @staticmethod
    def forward(ctx, faces, rgb, face_index, alpha, depth, backend, eps, return_alpha, return_depth):
        ctx.backend = backend
        ctx.settings = (eps, return_alpha, return_depth)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(faces, face_index, rgb.detach(), alpha)
        return rgb.clone(), alpha.clone(), depth.clone()

    @staticmethod
    def backward(ctx, grad_rgb, grad_alpha, grad_depth):
        from meshopt_cli.render.rasterize import vertex_gradient

        faces, face_index, rgb, alpha = ctx.saved_tensors
        eps, return_alpha, return_depth = ctx.settings
        grad_faces = None
        if ctx.needs_input_grad[0]:
            grad_faces = vertex_gradient(
                ctx.backend,
                faces,
                face_index,
                rgb,
                alpha,
                grad_rgb,
                grad_alpha if return_alpha else None,
                grad_depth if return_depth else None,
                eps,
                return_rgb=True,
                return_alpha=return_alpha,
            )
        return grad_faces, grad_rgb, None, None, None, None, None, None, None
