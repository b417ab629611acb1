"""Materials: MTL parsing (``newmtl``, ``Kd``, ``map_Kd``) and texture image loading.

A missing or unreadable MTL file or texture image is a ``warnings.warn`` and the affected faces
come out grey; it never raises.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from meshopt_cli.images import pil_to_arrays, read_image

ATLAS_MARKER = "meshopt-atlas"
"""Comment written by ``save_obj`` into the MTL of a generated per-face atlas:
``# meshopt-atlas texture_size T scale S``. It lets ``load_obj`` read the cubes back exactly."""

# map_Kd options and how many arguments each takes (-o/-s/-t take 1 to 3 numbers).
_MAP_OPTIONS = {
    "-blendu": 1,
    "-blendv": 1,
    "-bm": 1,
    "-boost": 1,
    "-cc": 1,
    "-clamp": 1,
    "-imfchan": 1,
    "-mm": 2,
    "-texres": 1,
    "-type": 1,
    "-o": 3,
    "-s": 3,
    "-t": 3,
}


@dataclass
class Material:
    """One material of a mesh.

    kd:         [3] float32 diffuse colour in [0, 1], or None when the MTL gives no ``Kd``
    map_kd:     the ``map_Kd`` file name as written in the MTL (None without one)
    image_path: where that image was looked for (resolved path), or None
    image:      [H, W, 3] float32 RGB in [0, 1], row 0 = top row of the image file; None when
                there is no image or it could not be read
    atlas:      (texture_size, scale) when the MTL carries the ``meshopt-atlas`` marker, else None
    """

    name: str
    kd: np.ndarray | None = None
    map_kd: str | None = None
    image_path: Path | None = None
    image: np.ndarray | None = None
    atlas: tuple[int, int] | None = None


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def _map_filename(args: list[str]) -> str | None:
    """The file name of a ``map_Kd [options] file`` statement (options skipped; spaces kept)."""
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] in _MAP_OPTIONS:
        n = _MAP_OPTIONS[args[i]]
        i += 1
        if n == 3:  # 1..3 numbers
            taken = 0
            while taken < 3 and i < len(args) - 1 and _is_number(args[i]):
                i += 1
                taken += 1
        else:
            i += n
    rest = " ".join(args[i:]).strip()
    return rest.replace("\\", "/") if rest else None


def parse_mtl(text: str) -> dict[str, Material]:
    """Materials defined in the text of an MTL file, by name (later definitions win)."""
    materials: dict[str, Material] = {}
    current: Material | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line[1:].split()
            if current is not None and len(parts) >= 5 and parts[0] == ATLAS_MARKER:
                try:
                    current.atlas = (int(parts[2]), int(parts[4]))
                except ValueError:
                    pass
            continue
        parts = line.split()
        tag, args = parts[0].lower(), parts[1:]
        if tag == "newmtl":
            current = Material(name=line[len("newmtl") :].strip())
            materials[current.name] = current
        elif current is None:
            continue
        elif tag == "kd" and len(args) >= 3:
            try:
                current.kd = np.clip(np.array([float(a) for a in args[:3]], np.float32), 0.0, 1.0)
            except ValueError:
                pass
        elif tag == "map_kd":
            current.map_kd = _map_filename(args)
    return materials


# Texture images are read at full resolution up to this many pixels per side; larger ones are
# downscaled on load with one warning (a 16384^2 texture would take 3 GiB as float32, and the
# per-face cubes it is sampled into hold at most a few dozen texels per face).
MAX_TEXTURE_SIDE = 4096


def image_to_rgb(img) -> np.ndarray:
    """A loaded PIL image -> ``[H, W, 3]`` float32 RGB in [0, 1] (alpha dropped): meshopt_cli.images's rule."""
    return pil_to_arrays(img)[0]


def load_image(path: str | os.PathLike, source: str = "") -> np.ndarray:
    """Read a texture image as ``[H, W, 3]`` float32 RGB in [0, 1] (row 0 = top), downscaled to at
    most :data:`MAX_TEXTURE_SIDE` per side with a warning. Raises ImageReadError (a ValueError)
    when the file is missing, not an image or too large to read."""
    data = read_image(path, max_side=MAX_TEXTURE_SIDE)
    if data.reduced:
        width, height = data.original
        warnings.warn(
            f"{source or path}: texture image {path} is {width}x{height}; using it downscaled to "
            f"{data.rgb.shape[1]}x{data.rgb.shape[0]} (at most {MAX_TEXTURE_SIDE} pixels per side)",
            stacklevel=3,
        )
    return data.rgb


def load_materials(mtllibs: list[str], base_dir: Path, names: list[str], source: str, load_images: bool = True) -> list[Material]:
    """The materials called ``names`` (in that order), read from the MTL files ``mtllibs``
    (relative to ``base_dir``), with their texture images. Problems are warnings, never errors:
    a missing MTL or image, an image that cannot be read, a material no MTL defines."""
    defined: dict[str, Material] = {}
    read_any = False
    for lib in mtllibs:
        candidates = [lib] if (base_dir / lib).is_file() else lib.split()
        for name in candidates:
            mtl_path = base_dir / name.replace("\\", "/")
            try:
                text = mtl_path.read_text(encoding="utf-8", errors="surrogateescape")
            except OSError as exc:
                warnings.warn(
                    f"{source}: cannot read material library {mtl_path} ({exc.strerror or exc}); its faces will be grey",
                    stacklevel=3,
                )
                continue
            read_any = True
            for material in parse_mtl(text).values():
                if material.map_kd:
                    local = mtl_path.parent / material.map_kd
                    fallback = base_dir / material.map_kd
                    material.image_path = local if local.exists() or not fallback.exists() else fallback
                defined[material.name] = material
    cache: dict[Path, np.ndarray | None] = {}
    out = []
    for name in names:
        material = defined.get(name)
        if material is None:
            if read_any:
                warnings.warn(f"{source}: material '{name}' is not defined in the MTL; its faces will be grey", stacklevel=3)
            material = Material(name=name)
        elif load_images and material.image_path is not None and material.image is None:
            path = material.image_path
            if path not in cache:
                try:
                    cache[path] = load_image(path, source)
                except (OSError, ValueError) as exc:
                    reason = "missing" if not path.exists() else f"unusable: {exc}"
                    warnings.warn(
                        f"{source}: texture image {path} of material '{name}' is {reason}; its faces will be grey", stacklevel=3
                    )
                    cache[path] = None
            material.image = cache[path]
        out.append(material)
    return out
