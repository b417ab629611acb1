"""``load_mesh`` (any supported file or ``builtin:NAME``) into a ``Mesh`` (defined in ``core``)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from meshopt_cli.mesh.builtins import BUILTIN_PREFIX, builtin_shape, parse_builtin
from meshopt_cli.mesh.core import Mesh
from meshopt_cli.mesh.errors import MeshError
from meshopt_cli.mesh.foreign import read_with_trimesh
from meshopt_cli.mesh.material import Material, load_materials
from meshopt_cli.mesh.objparse import MAX_FACES, parse_obj
from meshopt_cli.mesh.shipped import local

SUPPORTED_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_vertices(mesh: Mesh, source: str, lines: np.ndarray | None = None, raw: np.ndarray | None = None) -> None:
    """Refuse coordinates that are not finite (in ``raw``, the file's own numbers, when given, so
    that 1e39 is called too large rather than infinite), too far apart for float32, and meshes
    without a surface (every face of zero area: all vertices on one point or one line)."""
    values = np.asarray(raw if raw is not None else mesh.vertices, np.float64)
    finite = np.isfinite(values).all(axis=1)
    where = lambda k: f" (line {int(lines[k])})" if lines is not None else ""  # noqa: E731
    if not finite.all():
        k = int(np.flatnonzero(~finite)[0])
        raise MeshError(source, f"vertex {k + 1}{where(k)} has a NaN or infinite coordinate")
    beyond = (np.abs(values) > FLOAT32_MAX).any(axis=1)
    if beyond.any():
        k = int(np.flatnonzero(beyond)[0])
        raise MeshError(
            source,
            f"vertex {k + 1}{where(k)} has a coordinate of {np.abs(values[k]).max():.3g}, beyond the 32-bit floats meshopt "
            f"works in (at most {FLOAT32_MAX:.3g}): scale the mesh down",
        )
    if len(mesh.vertices):
        extent = np.ptp(values, axis=0).max()
        if extent > FLOAT32_MAX / 4:  # centring, scaling and saving back must stay finite in float32
            raise MeshError(
                source,
                f"coordinates too large (the mesh spans {extent:.3g} units; meshopt works in "
                f"32-bit floats: scale it below {FLOAT32_MAX / 4:.3g})",
            )
    if len(mesh.faces) and not _has_surface(np.asarray(mesh.vertices, np.float64), mesh.faces):
        raise MeshError(
            source,
            f"has no surface: all {len(mesh.faces)} faces have zero area (its vertices coincide or lie on one line)",
        )


def _has_surface(vertices: np.ndarray, faces: np.ndarray) -> bool:
    """Whether some face is a triangle: two edges not parallel beyond rounding (the sine of their
    angle above 1e-9, whatever the mesh's scale)."""
    for start in range(0, len(faces), 1 << 16):  # in chunks: the first one settles almost every mesh
        corners = vertices[faces[start : start + (1 << 16)]]  # [f, 3, 3]
        e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
        twice_area = np.linalg.norm(np.cross(e1, e2), axis=-1)
        if (twice_area > 1e-9 * np.linalg.norm(e1, axis=-1) * np.linalg.norm(e2, axis=-1)).any():
            return True
    return False


def _mesh_from_obj(path: Path, data: bytes, textures: bool, max_faces: int, base_dir: Path | None = None) -> Mesh:
    records = parse_obj(data, str(path), max_faces, uvs=textures)
    del data
    n = len(records.faces)
    uvs = None
    if len(records.uv_coords) and np.any(records.face_uv >= 0):
        complete = np.all(records.face_uv >= 0, axis=1)
        uvs = np.full((n, 3, 2), np.nan, np.float32)
        uvs[complete] = records.uv_coords[records.face_uv[complete]]
    if textures and records.bad_uv_refs:
        warnings.warn(
            f"{path}: {records.bad_uv_refs} face corners refer to texture coordinates that do not exist; those faces have no UVs",
            stacklevel=3,
        )
    if textures:
        materials = load_materials(records.mtllibs, base_dir or path.parent, records.material_names, str(path))
    else:
        materials = [Material(name=name) for name in records.material_names]
    with np.errstate(over="ignore"):  # out-of-range values are refused below, by their own value
        vertices = records.vertices.astype(np.float32)
    mesh = Mesh(
        vertices=vertices,
        faces=records.faces,
        name=path.stem,
        source=str(path),
        uvs=uvs,
        materials=materials,
        face_material=records.face_material if records.material_names else None,
        vertex_colors=None if records.vertex_colors is None else records.vertex_colors.astype(np.float32),
    )
    _check_vertices(mesh, str(path), records.vertex_lines, records.vertices)
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
    disk = local(path)  # where the file is read: itself, or its copy in a job shipped to this machine
    if not disk.exists():
        raise MeshError(path, "no such file" if not disk.is_symlink() else "broken symbolic link")
    if disk.is_dir():
        raise MeshError(path, "is a directory, not a mesh file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise MeshError(
            path, f"unsupported file type '{suffix or '(no extension)'}' (supported: {', '.join(SUPPORTED_SUFFIXES)})"
        )
    try:
        if suffix == ".obj":
            data = disk.read_bytes()
        else:
            with open(disk, "rb") as handle:
                data = handle.read(1)
    except PermissionError:
        raise MeshError(path, "cannot be read (permission denied)") from None
    except OSError as exc:
        raise MeshError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not data:
        raise MeshError(path, "empty file, not a mesh")
    if suffix == ".obj":
        return _mesh_from_obj(path, data, textures, max_faces, disk.parent)
    mesh = read_with_trimesh(disk, max_faces, path)
    _check_vertices(mesh, str(path))
    return mesh
