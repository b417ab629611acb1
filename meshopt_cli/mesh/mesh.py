"""``Mesh`` (what the CLI works with) and ``load_mesh`` (any supported file or ``builtin:NAME``)."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from meshopt_cli.mesh.bake import unpack_atlas
from meshopt_cli.mesh.builtins import BUILTIN_PREFIX, builtin_shape, parse_builtin
from meshopt_cli.mesh.cubes import canonical_wrapping, cube_weights, sample_cubes
from meshopt_cli.mesh.errors import MeshError
from meshopt_cli.mesh.material import Material, load_materials
from meshopt_cli.mesh.objparse import MAX_FACES, parse_obj

SUPPORTED_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")


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

    def to_torch(self, device=None):
        """(vertices [V, 3] float32, faces [F, 3] int64) torch tensors (copies)."""
        import torch

        return (torch.tensor(self.vertices, dtype=torch.float32, device=device),
                torch.tensor(self.faces, dtype=torch.int64, device=device))

    def texture_cubes(self, texture_size: int = 4, wrapping: str = "repeat",
                      bilinear: bool = True) -> np.ndarray:
        """Per-face texture cubes [F, T, T, T, 3] float32 in [0, 1] (see ``cubes``): the material's
        image through the face's UVs; its ``Kd`` colour without an image (or for faces without
        UVs); grey 0.5 without a material or when the image is missing; vertex/face colours
        where the file has them and no material says otherwise."""
        return texture_cubes(self, texture_size, wrapping, bilinear)


def texture_cubes(mesh: Mesh, texture_size: int = 4, wrapping: str = "repeat",
                  bilinear: bool = True, chunk: int = 65536) -> np.ndarray:
    """See ``Mesh.texture_cubes``."""
    t = int(texture_size)
    weights = cube_weights(t)
    wrapping = canonical_wrapping(wrapping)
    n = mesh.num_faces
    out = np.full((n, t ** 3, 3), 0.5, np.float32)
    if mesh.face_colors is not None:
        out[:] = np.asarray(mesh.face_colors, np.float32)[:, None, :]
    elif mesh.vertex_colors is not None:
        colours = np.asarray(mesh.vertex_colors, np.float32)
        for lo in range(0, n, chunk):
            corner = colours[mesh.faces[lo:lo + chunk]]  # [n, 3, 3]
            out[lo:lo + chunk] = np.einsum("sk,nkc->nsc", weights, corner)
    if mesh.face_material is None:
        return out.reshape(n, t, t, t, 3)
    has_uv = (np.all(np.isfinite(mesh.uvs), axis=(1, 2)) if mesh.uvs is not None
              else np.zeros(n, bool))
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
            out[ids[ok]] = cubes[ok].reshape(-1, t ** 3, 3)
            ids = ids[~ok]
        for lo in range(0, len(ids), chunk):
            part = ids[lo:lo + chunk]
            cubes = sample_cubes(material.image, mesh.uvs[part], t, wrapping, bilinear)
            out[part] = cubes.reshape(-1, t ** 3, 3)
    return out.reshape(n, t, t, t, 3)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_vertices(mesh: Mesh, source: str, lines: np.ndarray | None = None) -> None:
    finite = np.isfinite(mesh.vertices).all(axis=1)
    if not finite.all():
        k = int(np.flatnonzero(~finite)[0])
        where = f" (line {int(lines[k])})" if lines is not None else ""
        raise MeshError(source, f"vertex {k + 1}{where} has a NaN or infinite coordinate")
    if len(mesh.vertices):
        extent = np.ptp(np.asarray(mesh.vertices, np.float64), axis=0).max()
        if extent > FLOAT32_MAX / 4:  # centring, scaling and saving back must stay finite in float32
            raise MeshError(source, f"coordinates too large (the mesh spans {extent:.3g} units; meshopt works in "
                                    f"32-bit floats: scale it below {FLOAT32_MAX / 4:.3g})")


def _mesh_from_obj(path: Path, data: bytes, textures: bool, max_faces: int) -> Mesh:
    records = parse_obj(data, str(path), max_faces, uvs=textures)
    del data
    n = len(records.faces)
    uvs = None
    if len(records.uv_coords) and np.any(records.face_uv >= 0):
        complete = np.all(records.face_uv >= 0, axis=1)
        uvs = np.full((n, 3, 2), np.nan, np.float32)
        uvs[complete] = records.uv_coords[records.face_uv[complete]]
    if textures and records.bad_uv_refs:
        warnings.warn(f"{path}: {records.bad_uv_refs} face corners refer to texture coordinates "
                      f"that do not exist; those faces have no UVs", stacklevel=3)
    if textures:
        materials = load_materials(records.mtllibs, path.parent, records.material_names, str(path))
    else:
        materials = [Material(name=name) for name in records.material_names]
    mesh = Mesh(
        vertices=records.vertices.astype(np.float32),
        faces=records.faces,
        name=path.stem,
        source=str(path),
        uvs=uvs,
        materials=materials,
        face_material=records.face_material if records.material_names else None,
        vertex_colors=None if records.vertex_colors is None else records.vertex_colors.astype(np.float32),
    )
    _check_vertices(mesh, str(path), records.vertex_lines)
    return mesh


def load_mesh(source: str | os.PathLike, *, textures: bool = True, max_faces: int = MAX_FACES) -> Mesh:
    """Load a mesh file (.obj, .ply, .stl, .off, .glb, .gltf) or a built-in shape
    (``builtin:sphere``, ``builtin:teapot``, ``builtin:cube``, ``builtin:torus``, with optional
    ``:N`` parameters, see ``builtins``).

    OBJ files keep their vertices exactly (one per ``v`` record, in order, also across UV seams);
    other formats go through trimesh, with exactly coinciding vertices welded. ``textures=False``
    reads geometry only (for OBJ: no UVs, no MTL files, no images).

    Raises ``MeshError`` (a ValueError whose message is one line naming the file and the problem)
    for a missing file, a directory, an unreadable file, an unsupported or unparseable file, no
    faces, face indices out of range, NaN/infinite coordinates, more than ``max_faces`` faces and
    unknown built-in names.
    """
    text = os.fspath(source)
    if isinstance(text, str) and text.startswith(BUILTIN_PREFIX):
        try:
            name, _ = parse_builtin(text)
            vertices, faces = builtin_shape(text)
        except ValueError as exc:
            raise MeshError(text, str(exc)) from None
        return Mesh(vertices=vertices, faces=faces, name=name, source=text)
    path = Path(text).expanduser()
    if not path.exists():
        raise MeshError(path, "no such file" if not path.is_symlink() else "broken symbolic link")
    if path.is_dir():
        raise MeshError(path, "is a directory, not a mesh file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise MeshError(path, f"unsupported file type '{suffix or '(no extension)'}' "
                              f"(supported: {', '.join(SUPPORTED_SUFFIXES)})")
    try:
        if suffix == ".obj":
            data = path.read_bytes()
        else:
            with open(path, "rb") as handle:
                data = handle.read(1)
    except PermissionError:
        raise MeshError(path, "cannot be read (permission denied)") from None
    except OSError as exc:
        raise MeshError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not data:
        raise MeshError(path, "empty file, not a mesh")
    if suffix == ".obj":
        return _mesh_from_obj(path, data, textures, max_faces)
    from meshopt_cli.mesh.foreign import read_with_trimesh

    mesh = read_with_trimesh(path, max_faces)
    _check_vertices(mesh, str(path))
    return mesh
