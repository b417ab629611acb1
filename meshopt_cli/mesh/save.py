"""Writing meshes: OBJ (+ MTL + PNG texture) and GLB, atomically.

Vertices are written with 9 significant digits, which gives every float32 back exactly; faces
exactly; textures as 8-bit PNG (within 1/255 after loading back with the same texture size).
Textures go into the mesh's own UV layout when it has one (``uvs`` + ``image_size``), else into
a generated per-face atlas (see ``bake.AtlasLayout``). Files are written texture first, then MTL,
then OBJ, each through a temp file + ``os.replace``: no half-written file ever exists.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from meshopt_cli.mesh.atomic import atomic_write_bytes, atomic_write_text
from meshopt_cli.mesh.bake import bake_to_uv_layout, pack_atlas
from meshopt_cli.mesh.cubes import canonical_wrapping
from meshopt_cli.mesh.material import ATLAS_MARKER


def _numpy(x, dtype) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _unbatch(a: np.ndarray, ndim: int, what: str) -> np.ndarray:
    if a.ndim == ndim + 1 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != ndim:
        raise ValueError(f"{what} must have {ndim} dimensions (or a batch of 1), got shape {a.shape}")
    return a


def _prepare(vertices, faces, textures):
    v = _unbatch(_numpy(vertices, np.float32), 2, "vertices")
    f = _unbatch(_numpy(faces, np.int64), 2, "faces")
    if v.shape[1] != 3 or f.shape[1] != 3:
        raise ValueError(f"expected vertices [V, 3] and faces [F, 3], got {v.shape} and {f.shape}")
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"face indices must lie in [0, {len(v)}), got [{f.min()}, {f.max()}]")
    t = None
    if textures is not None:
        t = _unbatch(_numpy(textures, np.float32), 5, "textures")
        if t.shape[0] != len(f) or t.shape[4] != 3 or not (t.shape[1] == t.shape[2] == t.shape[3]):
            raise ValueError(f"textures must be [F, T, T, T, 3] with F = {len(f)}, got {t.shape}")
    return v, f, t


def _texture_image(faces, textures, uvs, image_size, base_image, wrapping):
    """(image [H, W, 3] float32 row 0 = top, face_uvs [F, 3, 2], atlas marker or None)."""
    if uvs is not None:
        uv = _unbatch(_numpy(uvs, np.float64), 3, "uvs")
        if uv.shape != (len(faces), 3, 2) or not np.isfinite(uv).all():
            raise ValueError(f"uvs must be finite [F, 3, 2] with F = {len(faces)}, got {uv.shape}")
        if image_size is None:
            if base_image is None:
                raise ValueError("uvs need image_size (H, W) or base_image")
            image_size = base_image.shape[:2]
        image = bake_to_uv_layout(textures, uv, image_size, base_image, wrapping)
        return image, _numpy(uvs, np.float32).reshape(len(faces), 3, 2), None
    image, face_uvs, layout = pack_atlas(textures)
    return image, face_uvs, (layout.texture_size, layout.scale)


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    data = np.clip(np.rint(np.asarray(image, np.float64) * 255.0), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(data, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def obj_text(
    vertices: np.ndarray,
    faces: np.ndarray,
    face_uvs: np.ndarray | None = None,
    mtllib: str | None = None,
    material: str | None = None,
) -> str:
    """OBJ text: ``v`` records (9 significant digits), ``vt`` records (deduplicated corner UVs) and
    1-based ``f v/vt`` records. Vertices [V, 3], faces [F, 3], face_uvs [F, 3, 2] or None."""
    parts = ["# written by meshopt\n"]
    if mtllib:
        parts.append(f"mtllib {mtllib}\n")
    v = np.asarray(vertices, np.float32).astype(np.float64)
    parts.append(("v %.9g %.9g %.9g\n" * len(v)) % tuple(v.ravel().tolist()))
    f = np.asarray(faces, np.int64) + 1
    if face_uvs is None:
        if material:
            parts.append(f"usemtl {material}\n")
        parts.append(("f %d %d %d\n" * len(f)) % tuple(f.ravel().tolist()))
    else:
        corner = np.asarray(face_uvs, np.float64).reshape(-1, 2)
        unique, inverse = np.unique(corner, axis=0, return_inverse=True)
        parts.append(("vt %.9g %.9g\n" * len(unique)) % tuple(unique.ravel().tolist()))
        if material:
            parts.append(f"usemtl {material}\n")
        vt = inverse.reshape(-1, 3) + 1
        both = np.stack([f, vt], axis=2).reshape(len(f), 6)
        parts.append(("f %d/%d %d/%d %d/%d\n" * len(f)) % tuple(both.ravel().tolist()))
    return "".join(parts)


def save_obj(
    path: str | os.PathLike,
    vertices,
    faces,
    textures=None,
    *,
    uvs=None,
    image_size: tuple[int, int] | None = None,
    base_image: np.ndarray | None = None,
    texture_wrapping: str = "repeat",
    material_name: str = "material_0",
) -> list[Path]:
    """Write an OBJ (``.glb``: a binary glTF through trimesh) and return the files written.

    vertices [V, 3] and faces [F, 3] (numpy or torch; a leading batch of 1 is accepted). With
    ``textures`` [F, T, T, T, 3] (colours clipped to [0, 1]) also ``<stem>.mtl`` and
    ``<stem>.png`` next to it: baked into the mesh's own layout when ``uvs`` [F, 3, 2] are given
    (image of ``image_size`` (H, W), or of ``base_image``'s size, whose pixels are kept outside the
    UV islands), otherwise a per-face atlas that ``load_obj(..., load_texture=True)`` with the same
    texture size reads back exactly (within 1/255). Every file is written atomically.
    """
    path = Path(path)
    if path.suffix.lower() == ".glb":
        return export_glb(
            path,
            vertices,
            faces,
            textures,
            uvs=uvs,
            image_size=image_size,
            base_image=base_image,
            texture_wrapping=texture_wrapping,
        )
    v, f, t = _prepare(vertices, faces, textures)
    if t is None:
        return [atomic_write_text(path, obj_text(v, f))]
    wrapping = canonical_wrapping(texture_wrapping)
    image, face_uvs, marker = _texture_image(f, t, uvs, image_size, base_image, wrapping)
    return _write_bundle(path, v, f, image, face_uvs, marker, material_name)


def _write_bundle(
    path: Path,
    v: np.ndarray,
    f: np.ndarray,
    image: np.ndarray,
    face_uvs: np.ndarray,
    marker: tuple[int, int] | None,
    material_name: str = "material_0",
) -> list[Path]:
    """Write ``<stem>.png`` (image [H, W, 3], row 0 = top), ``<stem>.mtl`` and the OBJ, in that
    order, each atomically; returns the three paths."""
    png_name, mtl_name = path.stem + ".png", path.stem + ".mtl"
    mtl = ["# written by meshopt\n", f"newmtl {material_name}\n"]
    if marker is not None:
        mtl.append(f"# {ATLAS_MARKER} texture_size {marker[0]} scale {marker[1]}\n")
    mtl += ["Ka 0 0 0\n", "Kd 1 1 1\n", "Ks 0 0 0\n", "d 1\n", "illum 1\n", f"map_Kd {png_name}\n"]
    return [
        atomic_write_bytes(path.with_name(png_name), _png_bytes(image)),
        atomic_write_text(path.with_name(mtl_name), "".join(mtl)),
        atomic_write_text(path, obj_text(v, f, face_uvs, mtl_name, material_name)),
    ]


def export_glb(
    path: str | os.PathLike,
    vertices,
    faces,
    textures=None,
    *,
    uvs=None,
    image_size: tuple[int, int] | None = None,
    base_image: np.ndarray | None = None,
    texture_wrapping: str = "repeat",
) -> list[Path]:
    """Write a binary glTF (through trimesh), textured like ``save_obj`` when ``textures`` are
    given (the texture is embedded). glTF keeps UVs per vertex, so vertices are split where one
    has several UVs (positions unchanged). Returns ``[path]``."""
    from meshopt_cli.mesh.foreign import glb_bytes

    v, f, t = _prepare(vertices, faces, textures)
    image = face_uvs = None
    if t is not None:
        wrapping = canonical_wrapping(texture_wrapping)
        image, face_uvs, _ = _texture_image(f, t, uvs, image_size, base_image, wrapping)
        image = np.clip(np.rint(image * 255.0), 0, 255) / 255.0
    return [atomic_write_bytes(Path(path), glb_bytes(v, f, image, face_uvs))]


def save_mesh(path: str | os.PathLike, mesh, textures=None, vertices=None) -> list[Path]:
    """Save ``mesh`` (a ``Mesh``) as OBJ (or ``.glb``) with optimized ``vertices`` (default: the
    mesh's) and ``textures`` [F, T, T, T, 3]. When the mesh has its own UV layout
    (``Mesh.has_uv_layout``), textures are baked into it at the input image's size, and without
    textures the input's UVs and image are written unchanged; otherwise textures go into a per-face
    atlas (and without textures only the geometry is written)."""
    verts = mesh.vertices if vertices is None else vertices
    if not mesh.has_uv_layout:
        return save_obj(path, verts, mesh.faces, textures)
    image = mesh.texture
    if textures is not None:
        return save_obj(path, verts, mesh.faces, textures, uvs=mesh.uvs, image_size=image.shape[:2], base_image=image)
    v, f, _ = _prepare(verts, mesh.faces, None)  # no new textures: keep the input's UVs and image
    path = Path(path)
    if path.suffix.lower() == ".glb":
        from meshopt_cli.mesh.foreign import glb_bytes

        return [atomic_write_bytes(path, glb_bytes(v, f, image, np.asarray(mesh.uvs, np.float64)))]
    return _write_bundle(path, v, f, image, np.asarray(mesh.uvs, np.float32), None)


def save_uv_mesh(path: str | os.PathLike, vertices, faces, uvs, image: np.ndarray) -> list[Path]:
    """Save a mesh with its UV layout ``uvs [F, 3, 2]`` and texture ``image [H, W, 3]`` in [0, 1]
    (row 0 = top) as they are: OBJ + MTL + PNG (nothing baked, nothing resampled), or a ``.glb``
    whose base colour texture is the image. Returns the files written."""
    v, f, _ = _prepare(vertices, faces, None)
    face_uvs = _unbatch(_numpy(uvs, np.float64), 3, "uvs")
    if face_uvs.shape != (len(f), 3, 2) or not np.isfinite(face_uvs).all():
        raise ValueError(f"uvs must be finite [F, 3, 2] with F = {len(f)}, got {face_uvs.shape}")
    image = np.clip(np.asarray(image, np.float64), 0.0, 1.0)
    path = Path(path)
    if path.suffix.lower() == ".glb":
        from meshopt_cli.mesh.foreign import glb_bytes

        return [atomic_write_bytes(path, glb_bytes(v, f, image, face_uvs))]
    return _write_bundle(path, v, f, image, face_uvs.astype(np.float32), None)
