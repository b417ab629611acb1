"""The files a mesh file makes its loader read besides itself, for shipping a mesh to another machine
(:mod:`meshopt_cli.shipping`): an OBJ's MTL libraries and their texture images, a glTF's external
buffers and images. PLY, STL, OFF and GLB files hold everything themselves.

The lookup follows :func:`~meshopt_cli.mesh.material.load_materials` (an ``mtllib`` argument is one
file name, or several separated by spaces; a texture is looked for beside its MTL, then beside the
mesh). Files that do not exist are left out: the loader then warns about them where it runs, as it
would here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

from meshopt_cli.mesh.material import parse_mtl

_MTLLIB = re.compile(rb"^[ \t]*mtllib[ \t]+([^\r\n]+)", re.M)


def sidecar_files(path: str | Path) -> list[Path]:
    """The existing files besides ``path`` that loading it reads, in a stable order."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".obj":
            found = _obj_sidecars(path)
        elif suffix == ".gltf":
            found = _gltf_sidecars(path)
        else:
            return []
    except (OSError, ValueError):  # unreadable: the loader reports it with its own line
        return []
    unique: list[Path] = []
    for file in found:
        if file.is_file() and file not in unique and file != path:
            unique.append(file)
    return unique


def _obj_sidecars(path: Path) -> list[Path]:
    base = path.parent
    found: list[Path] = []
    for match in _MTLLIB.finditer(path.read_bytes()):
        lib = match.group(1).decode("utf-8", "surrogateescape").strip()
        for name in [lib] if (base / lib).is_file() else lib.split():
            mtl = base / name.replace("\\", "/")
            if not mtl.is_file():
                continue
            found.append(mtl)
            for material in parse_mtl(mtl.read_text(encoding="utf-8", errors="surrogateescape")).values():
                if material.map_kd:
                    found.extend([mtl.parent / material.map_kd, base / material.map_kd])
    return found


def _gltf_sidecars(path: Path) -> list[Path]:
    document = json.loads(path.read_text(encoding="utf-8"))
    uris = [item.get("uri") for key in ("buffers", "images") for item in document.get(key) or [] if isinstance(item, dict)]
    return [path.parent / unquote(uri) for uri in uris if isinstance(uri, str) and uri and not uri.startswith("data:")]
