"""Flat per-face lighting: ambient + one directional light, multiplied into the texture cubes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from meshopt_cli.render.camera import VectorLike, _batched_vector


def face_normals(faces: torch.Tensor) -> torch.Tensor:
    """Unit normals n = normalize((v0 - v1) x (v2 - v1)) of ``faces [B, F, 3, 3]`` -> ``[B, F, 3]``."""
    v10 = faces[:, :, 0] - faces[:, :, 1]
    v12 = faces[:, :, 2] - faces[:, :, 1]
    return F.normalize(torch.cross(v10, v12, dim=-1), dim=-1, eps=1e-5)


def face_light(
    faces: torch.Tensor,
    intensity_ambient: float = 0.5,
    intensity_directional: float = 0.5,
    color_ambient: VectorLike = (1, 1, 1),
    color_directional: VectorLike = (1, 1, 1),
    direction: VectorLike = (0, 1, 0),
) -> torch.Tensor:
    """Light of each face: I_amb c_amb + I_dir c_dir max(0, n . d).

    Args:
        faces: ``[B, F, 3, 3]`` world-space vertex positions of each face.
        color_ambient, color_directional, direction: ``[3]`` or ``[B, 3]``.
    Returns:
        ``[B, F, 3]`` RGB multipliers (differentiable with respect to ``faces``).
    """
    # without a directional light the normals are not read (only their shape): skip computing them
    normals = face_normals(faces) if intensity_directional != 0 else faces[:, :, 0]
    return light_of_normals(normals, intensity_ambient, intensity_directional, color_ambient, color_directional, direction)


def light_of_normals(
    normals: torch.Tensor,
    intensity_ambient: float = 0.5,
    intensity_directional: float = 0.5,
    color_ambient: VectorLike = (1, 1, 1),
    color_directional: VectorLike = (1, 1, 1),
    direction: VectorLike = (0, 1, 0),
) -> torch.Tensor:
    """:func:`face_light` from the unit face normals ``[B, F, 3]`` (for callers that light the same
    faces from several directions); ``[B, F, 3]``."""
    batch_size, num_faces = normals.shape[:2]
    ambient = intensity_ambient * _batched_vector(color_ambient, batch_size, normals, "light_color_ambient")  # [B, 3]
    if intensity_directional == 0:
        return ambient[:, None, :].expand(batch_size, num_faces, 3).clone()
    directional = intensity_directional * _batched_vector(color_directional, batch_size, normals, "light_color_directional")
    direction_t = _batched_vector(direction, batch_size, normals, "light_direction")
    cosine = torch.relu(torch.sum(normals * direction_t[:, None, :], dim=-1))  # [B, F]
    return torch.addcmul(ambient[:, None, :], cosine[:, :, None], directional[:, None, :])


def lighting(
    faces: torch.Tensor,
    textures: torch.Tensor,
    intensity_ambient: float = 0.5,
    intensity_directional: float = 0.5,
    color_ambient: VectorLike = (1, 1, 1),
    color_directional: VectorLike = (1, 1, 1),
    direction: VectorLike = (0, 1, 0),
) -> torch.Tensor:
    """Light per-face texture cubes (the reference implementation's function).

    Args:
        faces: ``[B, F, 3, 3]`` world-space vertex positions of each face.
        textures: ``[B, F, T, T, T, 3]`` colours in [0, 1].
    Returns:
        ``[B, F, T, T, T, 3]`` lit textures (a new tensor; the input is not modified). The
        renderer itself passes :func:`face_light` to the rasterizer instead of copying the cubes.
    """
    light = face_light(faces, intensity_ambient, intensity_directional, color_ambient, color_directional, direction)
    return textures * light[:, :, None, None, None, :]
