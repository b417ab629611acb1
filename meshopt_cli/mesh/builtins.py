"""Built-in shapes, usable wherever a mesh path is expected as ``builtin:NAME``.

``builtin:NAME[:N[:M]]`` passes integer parameters:

=================  ==============================================  ==========================
name               shape                                            default counts (V / F)
=================  ==============================================  ==========================
``sphere[:L]``     icosphere, L subdivisions (default 3; the paper's   642 / 1280
                   template), radius 1
``teapot[:N]``     Newell teapot, N x N quads per Bezier patch (8),  2081 / 4032
                   y up, spout towards +x, longest axis spans [-1, 1]
``cube[:N]``       cube, N x N quads per side (1), corners on the     8 / 12
                   unit sphere
``torus[:M[:N]]``  torus, M segments around (48), N around the tube   1152 / 2304
                   (24), radii 0.7 and 0.3
=================  ==============================================  ==========================

Every shape is welded (no duplicate vertices), consistently wound counter-clockwise seen from
outside (outward normals), centred at the origin, and deterministic (same counts and order every
time). Arrays: vertices [V, 3] float32, faces [F, 3] int64.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from meshopt_cli.mesh.normalize import normalize_box
from meshopt_cli.mesh.topology import orient_outward, subdivide_faces, weld

BUILTIN_PREFIX = "builtin:"
BUILTIN_NAMES = ("sphere", "teapot", "cube", "torus")


def icosphere(subdivisions: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Unit icosphere: 10 * 4**L + 2 vertices, 20 * 4**L faces (L = subdivisions)."""
    if subdivisions < 0 or subdivisions > 8:
        raise ValueError(f"sphere subdivisions must be in 0..8, got {subdivisions}")
    p = (1.0 + 5.0**0.5) / 2.0
    v = np.array(
        [
            [-1, p, 0],
            [1, p, 0],
            [-1, -p, 0],
            [1, -p, 0],
            [0, -1, p],
            [0, 1, p],
            [0, -1, -p],
            [0, 1, -p],
            [p, 0, -1],
            [p, 0, 1],
            [-p, 0, -1],
            [-p, 0, 1],
        ],
        np.float64,
    )
    f = np.array(
        [
            [0, 11, 5],
            [0, 5, 1],
            [0, 1, 7],
            [0, 7, 10],
            [0, 10, 11],
            [1, 5, 9],
            [5, 11, 4],
            [11, 10, 2],
            [10, 7, 6],
            [7, 1, 8],
            [3, 9, 4],
            [3, 4, 2],
            [3, 2, 6],
            [3, 6, 8],
            [3, 8, 9],
            [4, 9, 5],
            [2, 4, 11],
            [6, 2, 10],
            [8, 6, 7],
            [9, 8, 1],
        ],
        np.int64,
    )
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for _ in range(subdivisions):
        f, edges = subdivide_faces(f, len(v))
        mid = v[edges].mean(axis=1)
        v = np.concatenate([v, mid / np.linalg.norm(mid, axis=1, keepdims=True)])
    return v.astype(np.float32), f


def cube(segments: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Cube with corners on the unit sphere, ``segments`` x ``segments`` quads (2 triangles
    each) per side: 6 N^2 + 2 vertices, 12 N^2 faces."""
    n = int(segments)
    if n < 1 or n > 256:
        raise ValueError(f"cube segments must be in 1..256, got {segments}")
    g = np.linspace(-1.0, 1.0, n + 1)
    verts, faces = [], []
    # each side: a point on the face plane at (s, t) is origin + s*du + t*dv, normal du x dv outward
    sides = [
        (np.array([1, 0, 0]), np.array([0, 1, 0]), np.array([0, 0, 1])),
        (np.array([-1, 0, 0]), np.array([0, 0, 1]), np.array([0, 1, 0])),
        (np.array([0, 1, 0]), np.array([0, 0, 1]), np.array([1, 0, 0])),
        (np.array([0, -1, 0]), np.array([1, 0, 0]), np.array([0, 0, 1])),
        (np.array([0, 0, 1]), np.array([1, 0, 0]), np.array([0, 1, 0])),
        (np.array([0, 0, -1]), np.array([0, 1, 0]), np.array([1, 0, 0])),
    ]
    s, t = np.meshgrid(g, g, indexing="ij")
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    quad = np.stack([idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]], -1).reshape(-1, 4)
    offset = 0
    for normal, du, dv in sides:
        pts = normal[None] + s.reshape(-1, 1) * du[None] + t.reshape(-1, 1) * dv[None]
        verts.append(pts)
        faces.append(np.concatenate([quad[:, [0, 1, 2]], quad[:, [0, 2, 3]]]) + offset)
        offset += len(pts)
    v, f = weld(np.concatenate(verts), np.concatenate(faces), decimals=9)
    return (v / np.sqrt(3.0)).astype(np.float32), f.astype(np.int64)


def torus(
    major_segments: int = 48, minor_segments: int = 24, major_radius: float = 0.7, minor_radius: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """Torus around the y axis: M * N vertices, 2 M N faces."""
    m, n = int(major_segments), int(minor_segments)
    if m < 3 or n < 3 or m > 4096 or n > 4096:
        raise ValueError(f"torus segments must be in 3..4096, got {m} and {n}")
    u = 2 * np.pi * np.arange(m) / m
    w = 2 * np.pi * np.arange(n) / n
    uu, ww = np.meshgrid(u, w, indexing="ij")
    r = major_radius + minor_radius * np.cos(ww)
    v = np.stack([r * np.cos(uu), minor_radius * np.sin(ww), r * np.sin(uu)], -1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
    a = i * n + j
    b = ((i + 1) % m) * n + j
    c = ((i + 1) % m) * n + (j + 1) % n
    d = i * n + (j + 1) % n
    f = np.concatenate([np.stack([a, d, c], -1).reshape(-1, 3), np.stack([a, c, b], -1).reshape(-1, 3)])
    return v.astype(np.float32), f.astype(np.int64)


def _bernstein(t: np.ndarray) -> np.ndarray:
    s = 1.0 - t
    return np.stack([s**3, 3 * t * s**2, 3 * t**2 * s, t**3], axis=-1)


def teapot(segments: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The Newell teapot tessellated with ``segments`` x ``segments`` quads per Bezier patch,
    welded, degenerate pole triangles removed, oriented outward; y up, spout towards +x,
    centred, longest axis spanning [-1, 1]. The real teapot is open where the handle and spout
    meet the body, at the spout's tip and between lid and rim."""
    from meshopt_cli.mesh.teapot_data import CONTROL_POINTS, PATCHES

    n = int(segments)
    if n < 2 or n > 64:
        raise ValueError(f"teapot segments must be in 2..64, got {segments}")
    cp = np.asarray(CONTROL_POINTS, np.float64)
    basis = _bernstein(np.linspace(0.0, 1.0, n + 1))  # [n+1, 4]
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    quad = np.stack([idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]], -1).reshape(-1, 4)
    tris = np.concatenate([quad[:, [0, 1, 2]], quad[:, [0, 2, 3]]])
    verts, faces = [], []
    offset = 0
    for indices, copies in PATCHES:
        patch = cp[list(indices)].reshape(4, 4, 3)
        mirrors = [(1, 1), (1, -1), (-1, 1), (-1, -1)] if copies == 4 else [(1, 1), (1, -1)]
        for sx, sy in mirrors:
            ctrl = patch * np.array([sx, sy, 1.0])
            pts = np.einsum("ui,vj,ijc->uvc", basis, basis, ctrl).reshape(-1, 3)
            tri = tris if sx * sy > 0 else tris[:, [0, 2, 1]]  # a reflection flips the winding
            verts.append(pts)
            faces.append(tri + offset)
            offset += len(pts)
    v = np.concatenate(verts)
    v, f = weld(v, np.concatenate(faces), decimals=6)
    f = orient_outward(v, f)
    v = np.stack([v[:, 0], v[:, 2], -v[:, 1]], axis=1)  # z up -> y up (a rotation)
    return normalize_box(v).astype(np.float32), f.astype(np.int64)


_MAKERS = {"sphere": icosphere, "teapot": teapot, "cube": cube, "torus": torus}


def parse_builtin(spec: str) -> tuple[str, tuple[int, ...]]:
    """``"builtin:torus:32:16"`` (or ``"torus:32:16"``) -> ("torus", (32, 16)); ValueError with
    the valid names when the name is unknown or a parameter is not an integer."""
    body = spec[len(BUILTIN_PREFIX) :] if spec.startswith(BUILTIN_PREFIX) else spec
    name, *params = body.strip().split(":")
    name = name.strip().lower()
    if name not in _MAKERS:
        raise ValueError(f"unknown built-in shape '{name}' (valid: " + ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_NAMES) + ")")
    try:
        args = tuple(int(p) for p in params)
    except ValueError:
        raise ValueError(f"built-in shape parameters must be integers, got '{body}'") from None
    return name, args


@lru_cache(maxsize=16)
def _cached(name: str, args: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    v, f = _MAKERS[name](*args)
    v.setflags(write=False)
    f.setflags(write=False)
    return v, f


def builtin_shape(spec: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices [V, 3] float32 and faces [F, 3] int64 (fresh copies) of a built-in shape spec
    such as ``"builtin:teapot"``, ``"sphere:4"``. ValueError on an unknown name or bad parameters."""
    name, args = parse_builtin(spec)
    try:
        v, f = _cached(name, args)
    except TypeError:
        raise ValueError(f"too many parameters for built-in shape '{name}'") from None
    return v.copy(), f.copy()
