"""The Renderer module: back-face filling -> lighting -> camera transform -> rasterization.

Drop-in familiar to users of the paper's reference implementation (``neural_renderer``):
same constructor arguments, same attributes, same images and gradients.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from meshopt_cli.render import camera
from meshopt_cli.render.geometry import vertices_to_faces
from meshopt_cli.render.lighting import face_light
from meshopt_cli.render.rasterize import (
    DEFAULT_EPS,
    check_float_tensor,
    check_image_size,
    check_textures,
    rasterize_rgbad,
)
from meshopt_cli.render.uv import canonical_wrap, check_uv_inputs

CAMERA_MODES = ("look_at", "look", "projection", "none")
RENDER_MODES = (None, "rgb", "silhouettes", "depth")


class Renderer(nn.Module):
    """Differentiable mesh renderer (Kato et al., CVPR 2018).

    Every constructor argument is also an attribute that may be changed later
    (``renderer.eye = ...``, ``renderer.image_size = 64``). ``eye`` (default (0, 0, -d) with
    d = 1 / tan(viewing_angle) + 1, 2.7320508 for 30 degrees, which ``DEFAULT_DISTANCE``
    rounds), ``background_color`` and ``light_direction`` may be ``[3]`` or one per batch item ``[B, 3]``.

    Textures: per-face cubes ``textures [B, F, T, T, T, 3]`` (the paper's), or a UV-mapped image:
    ``uvs [B, F, 3, 2]`` (one UV per face corner, v up) with ``texture_image [B, H, W, 3]`` (RGB
    channels last, row 0 the top of the image; B may be 1 for one image shared by the batch), read
    with mipmaps and ``texture_wrap`` (see :mod:`meshopt_cli.render.uv`). Same lighting, same
    anti-aliasing, the same approximate vertex gradient; the image's gradient is exact.
    """

    def __init__(
        self,
        image_size=256,
        anti_aliasing=True,
        background_color=(0, 0, 0),
        fill_back=True,
        camera_mode="look_at",
        K=None,
        R=None,
        t=None,
        dist_coeffs=None,
        orig_size=1024,
        perspective=True,
        viewing_angle=30,
        camera_direction=(0, 0, 1),
        near=0.1,
        far=100,
        light_intensity_ambient=0.5,
        light_intensity_directional=0.5,
        light_color_ambient=(1, 1, 1),
        light_color_directional=(1, 1, 1),
        light_direction=(0, 1, 0),
        texture_wrap="repeat",
    ):
        super().__init__()
        self.image_size = image_size
        self.anti_aliasing = anti_aliasing
        self.background_color = background_color
        self.fill_back = fill_back
        if camera_mode not in CAMERA_MODES:
            raise ValueError(f"camera_mode must be one of {', '.join(CAMERA_MODES)}; got {camera_mode!r}")
        self.camera_mode = camera_mode
        self.K, self.R, self.t, self.dist_coeffs, self.orig_size = K, R, t, dist_coeffs, orig_size
        self.perspective = perspective
        self.viewing_angle = viewing_angle
        self.eye = (0.0, 0.0, -(1.0 / math.tan(math.radians(viewing_angle)) + 1.0))
        self.camera_direction = camera_direction
        self.near, self.far = near, far
        self.light_intensity_ambient = light_intensity_ambient
        self.light_intensity_directional = light_intensity_directional
        self.light_color_ambient = light_color_ambient
        self.light_color_directional = light_color_directional
        self.light_direction = light_direction
        self.texture_wrap = texture_wrap  # of UV texture images: repeat, mirrored_repeat, clamp_to_edge, clamp_to_border
        self.rasterizer_eps = 1e-3  # rgb and rgb+alpha+depth; silhouettes and depth use 1e-4

    # ------------------------------------------------------------------ public

    def forward(
        self,
        vertices,
        faces,
        textures=None,
        mode=None,
        K=None,
        R=None,
        t=None,
        dist_coeffs=None,
        orig_size=None,
        uvs=None,
        texture_image=None,
    ):
        """Render; ``mode=None`` -> ``(rgb [B,3,S,S], depth [B,S,S], alpha [B,S,S])``, ``"rgb"`` -> rgb,
        ``"silhouettes"`` -> alpha, ``"depth"`` -> depth. ``uvs`` + ``texture_image`` instead of
        ``textures``: a UV-mapped image (silhouettes and depth do not read either)."""
        if mode not in RENDER_MODES:
            raise ValueError(f"mode must be one of None, 'rgb', 'silhouettes', 'depth'; got {mode!r}")
        method = {None: self.render, "rgb": self.render_rgb, "silhouettes": self.render_silhouettes, "depth": self.render_depth}[
            mode
        ]
        if mode in (None, "rgb"):
            return method(vertices, faces, textures, K, R, t, dist_coeffs, orig_size, uvs=uvs, texture_image=texture_image)
        return method(vertices, faces, K, R, t, dist_coeffs, orig_size)

    def render(
        self,
        vertices,
        faces,
        textures=None,
        K=None,
        R=None,
        t=None,
        dist_coeffs=None,
        orig_size=None,
        uvs=None,
        texture_image=None,
    ):
        """rgb ``[B, 3, S, S]``, depth ``[B, S, S]``, alpha ``[B, S, S]``."""
        images = self._render(
            vertices,
            faces,
            textures,
            (K, R, t, dist_coeffs, orig_size),
            rgb=True,
            alpha=True,
            depth=True,
            uv=(uvs, texture_image),
        )
        return images["rgb"], images["depth"], images["alpha"]

    def render_rgb(
        self,
        vertices,
        faces,
        textures=None,
        K=None,
        R=None,
        t=None,
        dist_coeffs=None,
        orig_size=None,
        uvs=None,
        texture_image=None,
    ):
        """rgb ``[B, 3, S, S]`` in [0, 1] (textures lit by the renderer's lights)."""
        return self._render(vertices, faces, textures, (K, R, t, dist_coeffs, orig_size), rgb=True, uv=(uvs, texture_image))[
            "rgb"
        ]

    def render_silhouettes(self, vertices, faces, K=None, R=None, t=None, dist_coeffs=None, orig_size=None):
        """alpha ``[B, S, S]`` (fractional at edges with anti-aliasing)."""
        return self._render(vertices, faces, None, (K, R, t, dist_coeffs, orig_size), alpha=True)["alpha"]

    def render_depth(self, vertices, faces, K=None, R=None, t=None, dist_coeffs=None, orig_size=None):
        """depth ``[B, S, S]``, ``far`` on background."""
        return self._render(vertices, faces, None, (K, R, t, dist_coeffs, orig_size), depth=True)["depth"]

    # ------------------------------------------------------------------ pipeline

    def _render(self, vertices, faces, textures, camera_args, rgb=False, alpha=False, depth=False, uv=(None, None)):
        vertices, faces = self._check_mesh(vertices, faces)
        image_size = check_image_size(self.image_size)
        uvs, texture_image = uv
        use_uv = rgb and (uvs is not None or texture_image is not None)
        wrap = self.texture_wrap
        if use_uv:
            wrap = canonical_wrap(wrap)
            if textures is not None:
                raise ValueError("textures (cubes) and uvs/texture_image were both given: pass one texture")
            check_uv_inputs(uvs, texture_image, vertices.shape[0], faces.shape[1], vertices.device)
        elif rgb:
            if textures is None:
                textures = vertices.new_ones(vertices.shape[0], faces.shape[1], 1, 1, 1, 3)
            check_textures(textures, (vertices.shape[0], faces.shape[1]), vertices.device)
        if self.fill_back:
            faces = torch.cat((faces, faces[:, :, [2, 1, 0]]), dim=1)  # the rasterizer reads the copies' cubes
        light = None
        if rgb:
            light = face_light(
                vertices_to_faces(vertices, faces),
                self.light_intensity_ambient,
                self.light_intensity_directional,
                self.light_color_ambient,
                self.light_color_directional,
                self.light_direction,
            )
        screen_faces = vertices_to_faces(self._to_screen(vertices, *camera_args), faces)
        eps = self.rasterizer_eps if rgb else DEFAULT_EPS
        return rasterize_rgbad(
            screen_faces,
            textures,
            image_size,
            self.anti_aliasing,
            self.near,
            self.far,
            eps,
            self.background_color,
            rgb,
            alpha,
            depth,
            face_light=light,
            fill_back=self.fill_back and rgb,
            _checked=True,
            uvs=uvs if use_uv else None,
            texture_image=texture_image if use_uv else None,
            texture_wrap=wrap,
        )

    def _to_screen(self, vertices, K, R, t, dist_coeffs, orig_size):
        """World ``[B, V, 3]`` -> screen (NDC x, y; depth z) ``[B, V, 3]``."""
        mode = self.camera_mode
        if mode in ("look_at", "look"):
            if mode == "look_at":
                vertices = camera.look_at(vertices, self.eye)
            else:
                vertices = camera.look(vertices, self.eye, self.camera_direction)
            if self.perspective:
                vertices = camera.perspective(vertices, angle=self.viewing_angle)
            return vertices
        if mode == "projection":
            K = self.K if K is None else K
            R = self.R if R is None else R
            t = self.t if t is None else t
            dist_coeffs = self.dist_coeffs if dist_coeffs is None else dist_coeffs
            orig_size = self.orig_size if orig_size is None else orig_size
            if K is None or R is None or t is None:
                raise ValueError("camera_mode='projection' needs K, R and t (as renderer attributes or call arguments)")
            return camera.projection(vertices, K, R, t, dist_coeffs, orig_size)
        if mode == "none":
            return vertices
        raise ValueError(f"camera_mode must be one of {', '.join(CAMERA_MODES)}; got {mode!r}")

    @staticmethod
    def _check_mesh(vertices, faces):
        """Validate ``vertices [B, V, 3]`` float32 and ``faces [B, F, 3]`` (or ``[F, 3]``) int32/int64."""
        check_float_tensor("vertices", vertices, "[B, V, 3]", 3, (3,))
        if not isinstance(faces, torch.Tensor):
            raise ValueError(f"faces must be a torch.Tensor of shape [B, F, 3], got {type(faces).__name__}")
        if faces.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"faces must be int32 or int64, got {str(faces.dtype).replace('torch.', '')}")
        if faces.ndim == 2:
            faces = faces[None]
        batch_size, num_vertices = vertices.shape[:2]
        if faces.ndim != 3 or faces.shape[-1] != 3 or faces.shape[0] not in (1, batch_size):
            raise ValueError(f"faces must have shape [B, F, 3] with B = {batch_size}, got {list(faces.shape)}")
        if faces.device != vertices.device:
            raise ValueError(f"faces is on {faces.device} but vertices is on {vertices.device}")
        if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= num_vertices):
            raise ValueError(
                f"faces index vertices out of range: indices span [{int(faces.min())}, {int(faces.max())}], "
                f"expected [0, {num_vertices - 1}]"
            )
        if not bool(torch.isfinite(vertices).all()):
            raise ValueError("vertices contains NaN or infinite coordinates")
        return vertices, faces.expand(batch_size, -1, -1)
