"""Formats other than OBJ, through trimesh: reading PLY / STL / OFF / GLB / glTF, writing GLB.

trimesh is imported lazily (it is slow to import and not needed for OBJ files).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from meshopt_cli.mesh.core import Mesh
from meshopt_cli.mesh.errors import MeshError
from meshopt_cli.mesh.material import Material, image_to_rgb
from meshopt_cli.mesh.topology import weld

FORMAT_NAMES = {".ply": "PLY", ".stl": "STL", ".off": "OFF", ".glb": "GLB", ".gltf": "glTF"}


def _reason(exc: Exception) -> str:
    """A short, user-facing reason for a trimesh loading failure."""
    text = str(exc).strip()
    if isinstance(exc, ImportError) or not text:  # e.g. encoding detection of binary garbage
        return "binary or corrupt data"
    if isinstance(exc, (KeyError, FileNotFoundError)):
        return f"corrupt or incomplete: cannot find {text}"
    return text.splitlines()[0][:160]


def read_with_trimesh(disk: Path, max_faces: int, path: Path | None = None):
    """Read a PLY / STL / OFF / GLB / glTF file into a ``Mesh`` (vertices welded where they
    coincide exactly, so an optimization cannot tear the surface at seams or between the
    triangles of an STL). Texture (UVs + base colour image), base colour factors and
    vertex/face colours are kept. Raises MeshError with one line naming the file: ``path``, the
    name the user gave (default ``disk``, where it is read; see :func:`meshopt_cli.shipping.local`)."""
    import trimesh

    path = path or disk

    suffix = path.suffix.lower()
    kind = FORMAT_NAMES.get(suffix, suffix.lstrip(".").upper())
    try:
        loaded = trimesh.load(str(disk), file_type=suffix.lstrip("."), force="mesh", process=False)
    except Exception as exc:  # trimesh raises many exception types for bad files
        raise MeshError(path, f"not a readable {kind} mesh ({_reason(exc)})") from None
    faces = getattr(loaded, "faces", None)
    vertices = getattr(loaded, "vertices", None)
    if vertices is None or faces is None or len(faces) == 0:
        raise MeshError(path, "mesh has no faces")
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    if len(faces) > max_faces:
        raise MeshError(path, f"too many faces ({len(faces):,} triangles; the limit is {max_faces:,})")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise MeshError(path, f"face index out of range (the file has {len(vertices)} vertices)")

    uvs = None
    materials: list[Material] = []
    face_material = None
    vertex_colors = None
    face_colors = None
    visual = getattr(loaded, "visual", None)
    if visual is not None and getattr(visual, "kind", None) == "texture":
        material = getattr(visual, "material", None)
        image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
        factor = getattr(material, "baseColorFactor", None)
        if factor is None:
            factor = getattr(material, "diffuse", None)
        kd = None
        if factor is not None:
            kd = np.asarray(factor, np.float32).reshape(-1)[:3]
            kd = kd / 255.0 if kd.max(initial=0) > 1.0 else kd
        rgb = image_to_rgb(image) if image is not None else None
        uv = getattr(visual, "uv", None)
        if rgb is not None and uv is not None and len(uv) == len(vertices):
            uvs = np.asarray(uv, np.float32)[faces]
        materials = [Material(name=getattr(material, "name", None) or "material_0", kd=kd, image=rgb)]
        face_material = np.zeros(len(faces), np.int32)
    elif visual is not None and getattr(visual, "kind", None) in ("vertex", "face"):
        if visual.kind == "vertex":
            vertex_colors = np.asarray(visual.vertex_colors, np.float32)[:, :3] / 255.0
        else:
            face_colors = np.asarray(visual.face_colors, np.float32)[:, :3] / 255.0

    # STL triangle soups and glTF vertices split at UV seams; collapsed faces stay (uvs are per face)
    if vertex_colors is None:
        vertices, faces = weld(vertices, faces, drop_degenerate=False)
    else:  # weld only where colours agree too
        combined = np.concatenate([vertices, vertex_colors], axis=1)
        combined, faces = weld(combined, faces, drop_degenerate=False)
        vertices, vertex_colors = combined[:, :3], combined[:, 3:].astype(np.float32)
    return Mesh(
        vertices=vertices.astype(np.float32),
        faces=faces,
        name=path.stem,
        source=str(path),
        uvs=uvs,
        materials=materials,
        face_material=face_material,
        vertex_colors=vertex_colors,
        face_colors=face_colors,
    )


def glb_bytes(
    vertices: np.ndarray, faces: np.ndarray, image: np.ndarray | None = None, face_uvs: np.ndarray | None = None
) -> bytes:
    """A binary glTF of the mesh; with ``image`` ([H, W, 3] in [0, 1], row 0 = top) and
    ``face_uvs`` [F, 3, 2], textured (glTF needs per-vertex UVs, so vertices are split where
    a vertex has several UVs; the file's positions are unchanged)."""
    import trimesh
    from PIL import Image

    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    if image is None or face_uvs is None:
        mesh = trimesh.Trimesh(vertices=v, faces=f, process=False)
    else:
        # one glTF vertex per distinct (vertex, uv) pair, ordered by the original vertex index
        corner_uv = np.asarray(face_uvs, np.float64).reshape(-1, 2)
        key = np.concatenate([f.reshape(-1, 1).astype(np.float64), corner_uv], axis=1)
        unique, inverse = np.unique(key, axis=0, return_inverse=True)
        positions = v[unique[:, 0].astype(np.int64)]
        pil = Image.fromarray(np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8), "RGB")
        visual = trimesh.visual.TextureVisuals(uv=unique[:, 1:], image=pil)
        mesh = trimesh.Trimesh(vertices=positions, faces=inverse.reshape(-1, 3), visual=visual, process=False)
    buffer = io.BytesIO()
    mesh.export(buffer, file_type="glb")
    return buffer.getvalue()
