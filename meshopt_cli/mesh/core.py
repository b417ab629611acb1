"""``Mesh``, the triangle mesh the CLI works with, and its texture cubes.

A module of its own so that the loaders (``mesh`` for OBJ and built-ins, ``foreign`` for the
trimesh formats) both build a ``Mesh`` without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from meshopt_cli.mesh.bake import unpack_atlas
from meshopt_cli.mesh.cubes import SAMPLES_PER_CHUNK, canonical_wrapping, cube_weights, sample_cubes
from meshopt_cli.mesh.material import Material


@dataclass
class Mesh:
    """A triangle mesh with optional UV layout, materials and colours.

    vertices:       [V, 3] float32, as in the file (not normalised); one per OBJ ``v`` record
    faces:          [F, 3] int64, 0-based, counter-clockwise seen from the front
    name:           file stem or built-in name (for output file names)
    source:         the path or ``builtin:NAME`` it came from
    uvs:            [F, 3, 2] float32 per-corner texture coordinates (NaN for faces without), or None
    materials:      materials referenced by ``face_material``
    face_material:  [F] int32 index into ``materials`` (-1: none), or None
    vertex_colors:  [V, 3] float32 in [0, 1], or None
    face_colors:    [F, 3] float32 in [0, 1], or None
    """

    vertices: np.ndarray
    faces: np.ndarray
    name: str = "mesh"
    source: str = ""
    uvs: np.ndarray | None = None
    materials: list[Material] = field(default_factory=list)
    face_material: np.ndarray | None = None
    vertex_colors: np.ndarray | None = None
    face_colors: np.ndarray | None = None

    @property
    def num_vertices(self) -> int:
        return len(self.vertices)

    @property
    def num_faces(self) -> int:
        return len(self.faces)

    def _layout_material(self) -> Material | None:
        if self.uvs is None or self.face_material is None or not np.isfinite(self.uvs).all():
            return None
        textured = {i for i, m in enumerate(self.materials) if m.image is not None}
        if len(textured) != 1:
            return None
        (index,) = textured
        return self.materials[index] if np.all(self.face_material == index) else None

    @property
    def has_uv_layout(self) -> bool:
        """True when every face has UVs into one texture image (then ``save_mesh`` bakes optimized
        textures back into that layout instead of generating an atlas)."""
        return self._layout_material() is not None

    @property
    def texture(self) -> np.ndarray | None:
        """The texture image [H, W, 3] float32 (row 0 = top) of the mesh's own UV layout, or None."""
        material = self._layout_material()
        return None if material is None else material.image

    @property
    def uniform_faces(self) -> bool:
        """True when every face has one colour (no texture image is read, no vertex colours), so
        that texture cubes of any size T hold T³ copies of it and T = 1 renders the same images."""
        if self.vertex_colors is not None:
            return False
        if self.face_material is None:
            return True
        used = set(np.unique(self.face_material).tolist())
        return not any(m.image is not None for i, m in enumerate(self.materials) if i in used)

    def to_torch(self, device=None):
        """(vertices [V, 3] float32, faces [F, 3] int64) torch tensors (copies)."""
        import torch

        return (
            torch.tensor(self.vertices, dtype=torch.float32, device=device),
            torch.tensor(self.faces, dtype=torch.int64, device=device),
        )

    def texture_cubes(self, texture_size: int = 4, wrapping: str = "repeat", bilinear: bool = True) -> np.ndarray:
        """Per-face texture cubes [F, T, T, T, 3] float32 in [0, 1] (see ``cubes``): the material's
        image through the face's UVs; its ``Kd`` colour without an image (or for faces without
        UVs); grey 0.5 without a material or when the image is missing; vertex/face colours
        where the file has them and no material says otherwise."""
        return texture_cubes(self, texture_size, wrapping, bilinear)


def texture_cubes(
    mesh: Mesh, texture_size: int = 4, wrapping: str = "repeat", bilinear: bool = True, chunk: int | None = None
) -> np.ndarray:
    """See ``Mesh.texture_cubes``."""
    t = int(texture_size)
    weights = cube_weights(t)
    wrapping = canonical_wrapping(wrapping)
    n = mesh.num_faces
    chunk = chunk or max(1, SAMPLES_PER_CHUNK // t**3)  # faces per step: bounded scratch for any T
    out = np.full((n, t**3, 3), 0.5, np.float32)
    if mesh.face_colors is not None:
        out[:] = np.asarray(mesh.face_colors, np.float32)[:, None, :]
    elif mesh.vertex_colors is not None:
        colours = np.asarray(mesh.vertex_colors, np.float32)
        for lo in range(0, n, chunk):
            corner = colours[mesh.faces[lo : lo + chunk]]  # [n, 3, 3]
            out[lo : lo + chunk] = np.einsum("sk,nkc->nsc", weights, corner)
    if mesh.face_material is None:
        return out.reshape(n, t, t, t, 3)
    has_uv = np.all(np.isfinite(mesh.uvs), axis=(1, 2)) if mesh.uvs is not None else np.zeros(n, bool)
    for index, material in enumerate(mesh.materials):
        selected = mesh.face_material == index
        if not selected.any():
            continue
        if material.map_kd is not None and material.image is None:
            out[selected] = 0.5  # the image is missing (warned when loading): grey
            continue
        if material.kd is not None:
            out[selected] = material.kd
        if material.image is None:
            continue
        ids = np.flatnonzero(selected & has_uv)
        if material.atlas is not None and material.atlas[0] == t and len(ids):
            cubes, ok = unpack_atlas(material.image, mesh.uvs[ids], t, material.atlas[1])
            out[ids[ok]] = cubes[ok].reshape(-1, t**3, 3)
            ids = ids[~ok]
        for lo in range(0, len(ids), chunk):
            part = ids[lo : lo + chunk]
            cubes = sample_cubes(material.image, mesh.uvs[part], t, wrapping, bilinear)
            out[part] = cubes.reshape(-1, t**3, 3)
    return out.reshape(n, t, t, t, 3)
