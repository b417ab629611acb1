"""``load_obj``: the reference implementation's loader (tensors in, tensors out)."""

from __future__ import annotations

import os

import numpy as np

from meshopt_cli.mesh.cubes import canonical_wrapping
from meshopt_cli.mesh.mesh import load_mesh
from meshopt_cli.mesh.normalize import normalize_vertices


def load_obj(
    filename_obj: str | os.PathLike,
    normalization: bool = True,
    texture_size: int = 4,
    load_texture: bool = False,
    texture_wrapping: str = "repeat",
    use_bilinear: bool = True,
):
    """Load a Wavefront OBJ (or any ``load_mesh`` source, e.g. ``builtin:teapot``) like the paper's
    reference implementation.

    Returns ``(vertices [V, 3] float32, faces [F, 3] int64)`` CPU tensors, or with
    ``load_texture=True`` ``(vertices, faces, textures [F, T, T, T, 3] float32)``, T =
    ``texture_size``, colours in [0, 1] (see ``cubes`` for the sampling rule). Vertices and faces
    are in the file's order; polygons are fan-triangulated; all objects/groups form one mesh.
    ``texture_wrapping``: ``"repeat"``, ``"mirrored_repeat"``, ``"clamp_to_edge"`` or
    ``"clamp_to_border"`` (case-insensitive, as in the reference's ``'REPEAT'``).

    Unlike the reference, a file without ``mtllib`` gives grey textures instead of raising, and a
    missing MTL/image is a warning (grey) instead of a crash. Bad files raise ``MeshError``.
    """
    import torch

    wrapping = canonical_wrapping(texture_wrapping)
    mesh = load_mesh(filename_obj, textures=load_texture)
    vertices = torch.from_numpy(np.array(mesh.vertices, np.float32))
    faces = torch.from_numpy(np.array(mesh.faces, np.int64))
    textures = None
    if load_texture:
        textures = torch.from_numpy(mesh.texture_cubes(texture_size, wrapping, use_bilinear))
    if normalization:
        vertices = normalize_vertices(vertices)
    if load_texture:
        return vertices, faces, textures
    return vertices, faces
