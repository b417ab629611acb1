"""Mesh-level helpers shared by the renderer: gathering face vertices, back-face filling."""

from __future__ import annotations

import torch


def vertices_to_faces(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Gather the corners of every face.

    Args:
        vertices: ``[B, V, C]`` (C = 3 for positions).
        faces: ``[B, F, 3]`` integer indices into V (int32 or int64).
    Returns:
        ``[B, F, 3, C]``; differentiable with respect to ``vertices``.
    """
    batch_size, num_vertices = vertices.shape[:2]
    offsets = torch.arange(batch_size, device=faces.device, dtype=torch.long)[:, None, None] * num_vertices
    flat_index = (faces.long() + offsets).reshape(-1)
    gathered = vertices.reshape(batch_size * num_vertices, -1)[flat_index]
    return gathered.reshape(batch_size, faces.shape[1], 3, -1)


def fill_back(faces: torch.Tensor, textures: torch.Tensor | None = None):
    """Append every face reversed (so it is seen from both sides), with its texture cube transposed.

    Args:
        faces: ``[B, F, 3]`` indices. textures: ``[B, F, T, T, T, 3]`` or None.
    Returns:
        ``(faces [B, 2F, 3], textures [B, 2F, T, T, T, 3] or None)``.
    """
    faces = torch.cat((faces, faces[:, :, [2, 1, 0]]), dim=1)
    if textures is not None:
        textures = torch.cat((textures, textures.permute(0, 1, 4, 3, 2, 5)), dim=1)
    return faces, textures
