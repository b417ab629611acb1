"""Differentiable rasterization of screen-space faces: the autograd Function and its public API.

The forward pass is a z-buffer rasterizer; the backward pass is the approximate gradient of
the Neural 3D Mesh Renderer for rgb and alpha, the exact gradient for depth and the trilinear
gradient for textures. The work is done by a backend (``native`` kernels or the pure-PyTorch
``reference``), picked per device by :func:`get_backend`.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F

from meshopt_cli.render import native, reference
from meshopt_cli.render import uv as uv_shading

DEFAULT_IMAGE_SIZE = 256
DEFAULT_ANTI_ALIASING = True
DEFAULT_NEAR = 0.1
DEFAULT_FAR = 100
DEFAULT_EPS = 1e-4
DEFAULT_BACKGROUND_COLOR = (0, 0, 0)

ColorLike = Union[torch.Tensor, Sequence[float]]


def get_backend(device: torch.device):
    """The backend module for ``device``: ``native`` unless ``MESHOPT_BACKEND=reference`` or the
    kernels cannot be built (then ``reference``, with a one-line warning); a ValueError when
    MESHOPT_BACKEND is neither. ``native.backend_choice`` predicts it without building."""
    if native.requested_backend() == "reference":
        return reference
    return native.backend_for(device) or reference


class RasterizeFunction(torch.autograd.Function):
    """faces ``[B, F, 9]`` (+ textures, light) -> unflipped maps rgb ``[B, S, S, 3]``, alpha, depth ``[B, S, S]``.

    See ``reference.py`` for the contract, including ``light`` and ``fill_back``.
    """

    @staticmethod
    def forward(
        ctx, faces, textures, light, image_size, near, far, eps, background, fill_back, return_rgb, return_alpha, return_depth
    ):
        backend = get_backend(faces.device)
        face_index, weights, depth, rgb, alpha = backend.forward(
            faces,
            textures if return_rgb else None,
            image_size,
            near,
            far,
            eps,
            background,
            light if (return_rgb and light.numel()) else None,
            fill_back,
        )
        ctx.backend = backend
        ctx.set_materialize_grads(False)
        ctx.settings = (eps, fill_back, return_rgb, return_alpha, return_depth)
        ctx.save_for_backward(faces, textures, light, face_index, weights, depth, rgb, alpha)
        empty = faces.new_empty(0)
        return (rgb if return_rgb else empty, alpha if return_alpha else empty, depth if return_depth else empty)

    @staticmethod
    def backward(ctx, grad_rgb, grad_alpha, grad_depth):
        faces, textures, light, face_index, weights, depth, rgb, alpha = ctx.saved_tensors
        eps, fill_back, return_rgb, return_alpha, return_depth = ctx.settings
        backend = ctx.backend
        grad_faces = grad_textures = grad_light = None
        grad_rgb = grad_rgb if return_rgb else None
        grad_alpha = grad_alpha if return_alpha else None
        grad_depth = grad_depth if return_depth else None

        if ctx.needs_input_grad[0]:
            grad_faces = vertex_gradient(
                backend, faces, face_index, rgb, alpha, grad_rgb, grad_alpha, grad_depth, eps, return_rgb, return_alpha
            )

        if grad_rgb is not None and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            grad_textures, grad_light = backend.backward_textures(
                faces,
                face_index,
                weights,
                depth,
                grad_rgb.contiguous(),
                textures,
                light if light.numel() else None,
                fill_back,
                eps,
                need_textures=ctx.needs_input_grad[1],
            )
        if not ctx.needs_input_grad[1]:
            grad_textures = None
        if not ctx.needs_input_grad[2]:
            grad_light = None
        return grad_faces, grad_textures, grad_light, None, None, None, None, None, None, None, None, None


def vertex_gradient(backend, faces, face_index, rgb, alpha, grad_rgb, grad_alpha, grad_depth, eps, return_rgb, return_alpha):
    """The faces' gradient ``[B, F, 9]`` from the rendered maps: the approximate gradient
    (``backward_xy``) of the rendered channels, alpha first (docs/design.md, "Channels": one summed
    delta), plus the exact depth gradient. Shared by the cube path and the UV path
    (:class:`~meshopt_cli.render.uv.UVComposite`), which differ only in how ``rgb`` was shaded."""
    grad_faces = torch.zeros_like(faces)
    rendered = [(alpha[..., None], grad_alpha[..., None] if grad_alpha is not None else None)] if return_alpha else []
    if return_rgb:
        rendered.append((rgb, grad_rgb))
    if any(grad is not None for _, grad in rendered):
        image = torch.cat([channel for channel, _ in rendered], dim=-1).contiguous()
        grad_image = torch.cat(
            [grad if grad is not None else torch.zeros_like(channel) for channel, grad in rendered], dim=-1
        ).contiguous()
        grad_faces = grad_faces + backend.backward_xy(faces, face_index, image, grad_image, eps)
    if grad_depth is not None:
        grad_faces = grad_faces + backend.backward_depth(faces, face_index, grad_depth.contiguous())
    return grad_faces


# ----------------------------------------------------------------------------- validation


def check_image_size(image_size) -> int:
    """A positive int, or a square (h, w) pair; anything else is a ValueError."""
    if isinstance(image_size, (tuple, list)):
        if len(image_size) != 2 or image_size[0] != image_size[1]:
            raise ValueError(f"image_size must be one int (square images), got {tuple(image_size)}")
        image_size = image_size[0]
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    return image_size


def check_float_tensor(name: str, value, shape_text: str, ndim: int, last: Sequence[int] = ()) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape {shape_text}, got {type(value).__name__}")
    if value.ndim != ndim or tuple(value.shape[ndim - len(last) :]) != tuple(last):
        raise ValueError(f"{name} must have shape {shape_text}, got {list(value.shape)}")
    if value.dtype != torch.float32:
        raise ValueError(f"{name} must be float32, got {str(value.dtype).replace('torch.', '')} (call .float())")
    return value


def check_textures(textures: torch.Tensor, faces_shape, device) -> torch.Tensor:
    check_float_tensor("textures", textures, "[B, F, T, T, T, 3]", 6, (3,))
    T = textures.shape[2]
    if textures.shape[3] != T or textures.shape[4] != T:
        raise ValueError(f"textures must be cubes [B, F, T, T, T, 3], got {list(textures.shape)}")
    if tuple(textures.shape[:2]) != tuple(faces_shape[:2]):
        raise ValueError(
            f"textures must have one cube per face: expected [{faces_shape[0]}, {faces_shape[1]}, T, T, T, 3], got {list(textures.shape)}"
        )
    if textures.device != device:
        raise ValueError(f"textures is on {textures.device} but the faces are on {device}")
    return textures


def background_tensor(background_color: ColorLike, batch_size: int, like: torch.Tensor) -> torch.Tensor:
    """``[3]`` or ``[B, 3]`` colour -> ``[B, 3]`` on ``like``'s device."""
    color = torch.as_tensor(background_color, dtype=torch.float32, device=like.device).detach()
    if color.ndim == 1:
        color = color[None]
    if color.ndim != 2 or color.shape[1] != 3 or color.shape[0] not in (1, batch_size):
        raise ValueError(f"background_color must have shape [3] or [{batch_size}, 3], got {list(color.shape)}")
    return color.expand(batch_size, 3).contiguous()


# ----------------------------------------------------------------------------- public API


def rasterize_rgbad(
    faces: torch.Tensor,
    textures: torch.Tensor | None = None,
    image_size: int = DEFAULT_IMAGE_SIZE,
    anti_aliasing: bool = DEFAULT_ANTI_ALIASING,
    near: float = DEFAULT_NEAR,
    far: float = DEFAULT_FAR,
    eps: float = DEFAULT_EPS,
    background_color: ColorLike = DEFAULT_BACKGROUND_COLOR,
    return_rgb: bool = True,
    return_alpha: bool = True,
    return_depth: bool = True,
    face_light: torch.Tensor | None = None,
    fill_back: bool = False,
    _checked: bool = False,
    uvs: torch.Tensor | None = None,
    texture_image: torch.Tensor | None = None,
    texture_wrap: str = "repeat",
) -> dict:
    """Rasterize faces already in screen space.

    Args:
        faces: ``[B, F, 3, 3]`` float32; x, y in NDC ([-1, 1] spans the image, y up), z depth.
        textures: ``[B, F, T, T, T, 3]`` float32 (needed for rgb).
        image_size: output width = height in pixels (rendered at 2x with anti-aliasing).
        eps: the approximate gradient's epsilon (NDC units) and the texture-index margin.
        background_color: ``[3]`` or ``[B, 3]``.
        face_light: optional ``[B, F, 3]`` light multiplying each face's sampled colour (what
            :func:`~meshopt_cli.render.lighting` folds into the textures, without copying them).
        fill_back: faces ``[F/2, F)`` are reversed copies of faces ``[0, F/2)`` and ``textures``
            holds the ``F/2`` original cubes (the copies read them transposed); likewise ``uvs``
            holds the originals' corners (the copies read them reversed).
        uvs, texture_image: instead of ``textures``, a UV-mapped image (:mod:`~meshopt_cli.render.uv`):
            ``uvs [B or 1, F, 3, 2]`` per face corner (v up, row 0 of the image at v = 1) and
            ``texture_image [B or 1, H, W, 3]`` RGB, channels last; read with mipmaps and
            ``texture_wrap`` (``repeat``, ``mirrored_repeat``, ``clamp_to_edge``, ``clamp_to_border``).
    Returns:
        dict with ``rgb [B, 3, S, S]``, ``alpha [B, S, S]``, ``depth [B, S, S]`` (None when not
        asked for); row 0 is the top of the image.
    """
    image_size = check_image_size(image_size)
    num_faces = faces.shape[1] if isinstance(faces, torch.Tensor) and faces.ndim >= 2 else 0
    use_uv = return_rgb and (uvs is not None or texture_image is not None)
    if use_uv:
        texture_wrap = uv_shading.canonical_wrap(texture_wrap)
    if not _checked:
        check_float_tensor("faces", faces, "[B, F, 3, 3]", 4, (3, 3))
        if torch.isnan(faces).any():
            raise ValueError("faces contains NaN coordinates")
        if use_uv:
            uv_count = num_faces // 2 if fill_back else num_faces
            uv_shading.check_uv_inputs(uvs, texture_image, faces.shape[0], uv_count, faces.device)
        elif return_rgb:
            if textures is None:
                raise ValueError("textures [B, F, T, T, T, 3] are needed to render rgb")
            cube_count = num_faces // 2 if fill_back else num_faces
            check_textures(textures, (faces.shape[0], cube_count), faces.device)
    if not (0 < near < far):
        raise ValueError(f"near and far must satisfy 0 < near < far, got near={near}, far={far}")
    if not (return_rgb or return_alpha or return_depth):
        raise ValueError("nothing to render: return_rgb, return_alpha and return_depth are all False")

    batch_size, num_faces = faces.shape[:2]
    internal_size = image_size * 2 if anti_aliasing else image_size
    background = background_tensor(background_color, batch_size, faces)
    flat_faces = faces.reshape(batch_size, num_faces, 9).contiguous()
    light = face_light.contiguous() if (return_rgb and face_light is not None) else faces.new_empty(0)
    if use_uv:
        if fill_back:
            uvs = torch.cat((uvs, uvs[:, :, [2, 1, 0]]), dim=1)
        rgb, alpha, depth = _rasterize_uv(
            flat_faces,
            uvs,
            texture_image,
            texture_wrap,
            light,
            internal_size,
            near,
            far,
            eps,
            background,
            return_alpha,
            return_depth,
        )
    else:
        rgb, alpha, depth = _rasterize_cubes(
            flat_faces,
            textures,
            light,
            internal_size,
            near,
            far,
            eps,
            background,
            fill_back,
            return_rgb,
            return_alpha,
            return_depth,
        )
    return _to_images(rgb, alpha, depth, return_rgb, return_alpha, return_depth, anti_aliasing)


def _rasterize_uv(flat_faces, uvs, texture_image, wrap, light, size, near, far, eps, background, return_alpha, return_depth):
    """The UV path's unflipped maps: the backend rasterizes (no texture), :func:`uv.shade` colours,
    :class:`uv.UVComposite` gives the faces the cube path's gradient."""
    backend = get_backend(flat_faces.device)
    with torch.no_grad():
        face_index, weights, depth, _, alpha = backend.forward(
            flat_faces.detach(), None, size, float(near), float(far), float(eps), background, None, False
        )
    rgb = uv_shading.shade(
        flat_faces,
        face_index,
        weights,
        depth,
        uvs,
        texture_image,
        background,
        light if light.numel() else None,
        wrap,
        backend=backend,
    )
    return uv_shading.UVComposite.apply(
        flat_faces, rgb, face_index, alpha, depth, backend, float(eps), return_alpha, return_depth
    )


def _rasterize_cubes(
    flat_faces, textures, light, internal_size, near, far, eps, background, fill_back, return_rgb, return_alpha, return_depth
):
    batch_size, num_faces = flat_faces.shape[:2]
    faces = flat_faces
    if return_rgb:
        textures = textures.contiguous()
    else:
        textures = faces.new_zeros(batch_size, num_faces, 1, 1, 1, 3)
    return RasterizeFunction.apply(
        flat_faces,
        textures,
        light,
        internal_size,
        float(near),
        float(far),
        float(eps),
        background,
        bool(fill_back and return_rgb),
        return_rgb,
        return_alpha,
        return_depth,
    )


def _to_images(rgb, alpha, depth, return_rgb, return_alpha, return_depth, anti_aliasing):
    # unflipped frame (row 0 at y = -1) -> images (row 0 at the top)
    result = {"rgb": None, "alpha": None, "depth": None}
    if return_rgb:
        result["rgb"] = rgb.permute(0, 3, 1, 2).flip(2)
    if return_alpha:
        result["alpha"] = alpha.flip(1)
    if return_depth:
        result["depth"] = depth.flip(1)
    if anti_aliasing:
        if return_rgb:
            result["rgb"] = F.avg_pool2d(result["rgb"], kernel_size=2)
        for key in ("alpha", "depth"):
            if result[key] is not None:
                result[key] = F.avg_pool2d(result[key][:, None], kernel_size=2)[:, 0]
    return result


def rasterize(
    faces,
    textures,
    image_size=DEFAULT_IMAGE_SIZE,
    anti_aliasing=DEFAULT_ANTI_ALIASING,
    near=DEFAULT_NEAR,
    far=DEFAULT_FAR,
    eps=1e-3,
    background_color=DEFAULT_BACKGROUND_COLOR,
):
    """RGB images ``[B, 3, S, S]`` of screen-space faces (see :func:`rasterize_rgbad`)."""
    return rasterize_rgbad(faces, textures, image_size, anti_aliasing, near, far, eps, background_color, True, False, False)[
        "rgb"
    ]


def rasterize_silhouettes(
    faces, image_size=DEFAULT_IMAGE_SIZE, anti_aliasing=DEFAULT_ANTI_ALIASING, near=DEFAULT_NEAR, far=DEFAULT_FAR, eps=DEFAULT_EPS
):
    """Alpha masks ``[B, S, S]`` of screen-space faces (see :func:`rasterize_rgbad`)."""
    return rasterize_rgbad(faces, None, image_size, anti_aliasing, near, far, eps, DEFAULT_BACKGROUND_COLOR, False, True, False)[
        "alpha"
    ]


def rasterize_depth(
    faces, image_size=DEFAULT_IMAGE_SIZE, anti_aliasing=DEFAULT_ANTI_ALIASING, near=DEFAULT_NEAR, far=DEFAULT_FAR, eps=DEFAULT_EPS
):
    """Depth maps ``[B, S, S]`` of screen-space faces, ``far`` on background."""
    return rasterize_rgbad(faces, None, image_size, anti_aliasing, near, far, eps, DEFAULT_BACKGROUND_COLOR, False, False, True)[
        "depth"
    ]
