"""Turntables: N views around a mesh, written as an animated GIF, PNG frames or a contact sheet."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from meshopt_cli.mesh.atomic import atomic_write_bytes
from meshopt_cli.render import Renderer, get_points_from_angles

COLORS = {
    "white": (1.0, 1.0, 1.0),
    "black": (0.0, 0.0, 0.0),
    "grey": (0.5, 0.5, 0.5),
    "gray": (0.5, 0.5, 0.5),
}


def parse_color(text: str) -> tuple[float, float, float]:
    """``white``/``black``/``grey``, ``#rrggbb`` or ``r,g,b`` in [0, 1] -> an RGB triple in [0, 1]."""
    value = text.strip().lower()
    if value in COLORS:
        return COLORS[value]
    if value.startswith("#") and len(value) == 7:
        try:
            return tuple(int(value[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]
        except ValueError:
            pass
    parts = value.split(",")
    if len(parts) == 3:
        try:
            rgb = tuple(float(p) for p in parts)
        except ValueError:
            rgb = ()
        if len(rgb) == 3 and all(0.0 <= c <= 1.0 for c in rgb):
            return rgb  # type: ignore[return-value]
    raise ValueError(f"unknown colour {text!r}: use white, black, grey, #rrggbb or r,g,b with values in [0, 1]")


# The turntable's camera sees a cone of half-angle VIEWING_ANGLE (the renderer's default); framed,
# the mesh's bounding sphere about the origin fills it with this much margin.
VIEWING_ANGLE = 30.0
FRAME_MARGIN = 1.05


def framing_distance(vertices: torch.Tensor, viewing_angle: float = VIEWING_ANGLE) -> float:
    """The camera distance at which the bounding sphere about the origin of ``vertices [V, 3]``
    fits in view from every direction: r / sin(angle), with a small margin. A unit sphere gets 2.1
    (the paper's 2.732 leaves more room), the [-1, 1] cube 3.6 (2.732 clips its corners)."""
    radius = float(torch.linalg.vector_norm(vertices.detach().float(), dim=-1).max()) if vertices.numel() else 1.0
    return FRAME_MARGIN * max(radius, 1e-6) / math.sin(math.radians(viewing_angle))


def camera_light(eyes: torch.Tensor) -> torch.Tensor:
    """The turntable light for cameras at ``eyes [N, 3]``: a directional light that turns with the
    camera, from halfway between the camera and straight above (``normalize(eye / |eye| + up)``).
    Faces towards the camera get cos 0.5 at the default elevation of 30 degrees, the top 0.87, so
    vertical faces are shaded instead of one flat grey (a light from straight above gives them 0)."""
    up = torch.tensor([0.0, 1.0, 0.0], dtype=eyes.dtype, device=eyes.device)
    return torch.nn.functional.normalize(torch.nn.functional.normalize(eyes, dim=-1) + up, dim=-1)


def render_views(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    textures: torch.Tensor | None = None,
    frames: int = 90,
    elevation: float = 30.0,
    distance: float | None = None,
    start_azimuth: float = 0.0,
    image_size: int = 256,
    background: Sequence[float] = (1.0, 1.0, 1.0),
    light_intensity_ambient: float = 0.5,
    light_intensity_directional: float = 0.5,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
    uvs: torch.Tensor | None = None,
    texture_image: torch.Tensor | None = None,
) -> np.ndarray:
    """Render ``frames`` views evenly spaced in azimuth (degrees) around the origin, lit by
    :func:`camera_light`. ``distance`` None frames the mesh (:func:`framing_distance`).

    The images are those of :class:`~meshopt_cli.render.Renderer` (``render_rgb``) with the eye at
    each azimuth and ``light_direction = camera_light(eye)``, whatever ``batch_size`` (frames rendered at once): one frame at a time renders
    from ``textures`` itself, a batch of ``n`` needs ``n`` contiguous copies of it
    (:func:`meshopt_cli.memory.frames_per_chunk` picks ``n`` for a memory budget).

    Args:
        vertices: ``[V, 3]`` float32. faces: ``[F, 3]``. textures: ``[F, T, T, T, 3]`` or None (grey).
        uvs, texture_image: ``[F, 3, 2]`` and ``[H, W, 3]`` instead of ``textures``: a UV-mapped
            image (:mod:`meshopt_cli.render.uv`), shared by every frame without copies.
    Returns:
        ``[frames, S, S, 3]`` uint8 images, row 0 at the top.
    """
    from meshopt_cli.render.camera import look_at, perspective
    from meshopt_cli.render.lighting import face_normals, light_of_normals
    from meshopt_cli.render.rasterize import rasterize_rgbad

    if distance is None:
        distance = framing_distance(vertices)
    device = vertices.device
    use_uv = uvs is not None
    if textures is None and not use_uv:
        textures = torch.full((faces.shape[0], 1, 1, 1, 3), 0.7, device=device)
    if use_uv:
        from meshopt_cli.render.uv import check_uv_inputs

        uvs, texture_image = uvs[None], texture_image[None]
        check_uv_inputs(uvs, texture_image, 1, faces.shape[0], device)
    renderer = Renderer(
        image_size=image_size,
        background_color=tuple(background),
        light_intensity_ambient=light_intensity_ambient,
        light_intensity_directional=light_intensity_directional,
    )
    out = np.empty((frames, image_size, image_size, 3), dtype=np.uint8)
    azimuths = [start_azimuth + 360.0 * k / frames for k in range(frames)]
    batch_size = max(1, int(batch_size))
    with torch.no_grad():
        # What Renderer.render_rgb does per call, with the view-independent part done once: the
        # checks, the back faces, the (world-space) normals and the corner index of every face.
        world, face_list = renderer._check_mesh(vertices[None], faces[None])
        face_list = torch.cat((face_list, face_list[:, :, [2, 1, 0]]), dim=1)
        corners = face_list[0].reshape(-1)
        normals = face_normals(world[0].index_select(0, corners).reshape(1, -1, 3, 3))  # lit per frame: camera_light
        cubes = None if use_uv else textures[None]
        for first in range(0, frames, batch_size):
            chunk = azimuths[first : first + batch_size]
            n = len(chunk)
            eye = get_points_from_angles(
                torch.full((n,), float(distance)), torch.full((n,), float(elevation)), torch.tensor(chunk)
            ).to(device)
            screen = perspective(look_at(world.expand(n, -1, -1), eye), angle=renderer.viewing_angle)
            screen_faces = screen.index_select(1, corners).reshape(n, -1, 3, 3)
            light = light_of_normals(
                normals.expand(n, -1, -1),
                renderer.light_intensity_ambient,
                renderer.light_intensity_directional,
                renderer.light_color_ambient,
                renderer.light_color_directional,
                camera_light(eye),
            )
            rgb = rasterize_rgbad(
                screen_faces,
                None
                if use_uv
                else cubes.expand(n, *textures.shape),  # one frame renders from the cubes themselves; more copy them
                image_size,
                renderer.anti_aliasing,
                renderer.near,
                renderer.far,
                renderer.rasterizer_eps,
                renderer.background_color,
                True,
                False,
                False,
                face_light=light,
                fill_back=True,
                _checked=True,
                uvs=uvs,
                texture_image=texture_image,
            )["rgb"]
            del screen, screen_faces, light
            images = (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            out[first : first + n] = images
            if progress is not None:
                progress(n)
    return out


def gif_bytes(frames: np.ndarray, fps: float = 12.0) -> bytes:
    """An endlessly looping animated GIF of ``frames [N, H, W, 3]`` uint8."""
    images = [Image.fromarray(frame) for frame in frames]
    buffer = io.BytesIO()
    duration = max(int(round(1000.0 / fps)), 20)
    images[0].save(
        buffer, format="GIF", save_all=True, append_images=images[1:], loop=0, duration=duration, optimize=False, disposal=2
    )
    return buffer.getvalue()


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def contact_sheet(frames: np.ndarray, views: int = 8, columns: int = 4) -> np.ndarray:
    """A grid of ``views`` frames picked evenly from ``frames`` -> ``[rows * H, columns * W, 3]``."""
    views = max(1, min(views, len(frames)))
    picks = [round(k * len(frames) / views) % len(frames) for k in range(views)]
    columns = min(columns, views)
    rows = math.ceil(views / columns)
    h, w = frames.shape[1:3]
    sheet = np.full((rows * h, columns * w, 3), 255, dtype=np.uint8)
    for slot, index in enumerate(picks):
        r, c = divmod(slot, columns)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = frames[index]
    return sheet


def write_gif(path: str | Path, frames: np.ndarray, fps: float = 12.0) -> Path:
    return atomic_write_bytes(path, gif_bytes(frames, fps))


def write_png(path: str | Path, image: np.ndarray) -> Path:
    return atomic_write_bytes(path, png_bytes(image))
