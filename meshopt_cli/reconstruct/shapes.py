"""Procedural shape classes for training and testing reconstruction with no download.

Every shape is a closed genus-0 mesh (a sphere template cannot open holes): a fine icosphere
whose vertices are moved along their directions onto a star-shaped surface, the boundary of a
union of primitives that all contain the origin (``r(d) = max_i r_i(d)``, the radius of the union
along direction ``d``). Primitives are superquadrics ``|x/a|^p + |y/b|^p + |z/c|^p = 1`` centred
at ``t``. Shapes are axis-aligned like ShapeNet's objects and normalized as they are (bounding box
centred, diagonal 1). Each object's parameters come from its own seeded generator:
``(seed, class, index)`` always gives the same mesh.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from meshopt_cli.mesh.builtins import icosphere
from meshopt_cli.reconstruct.dataset import normalize_mesh

SUBDIVISIONS = 4  # 2562 vertices, 5120 faces


def superquadric_radius(directions: np.ndarray, axes, power: float, centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Distance from the origin along each unit direction ``[N, 3]`` to the surface of the
    superquadric with half-axes ``axes``, exponent ``power`` and ``centre`` (which must contain the
    origin), by bisection on the ray (``[N]``)."""
    a = np.asarray(axes, np.float64)
    t = np.asarray(centre, np.float64)

    def inside(points):
        return (np.abs((points - t) / a) ** power).sum(-1) <= 1.0

    lo = np.zeros(len(directions))
    hi = np.full(len(directions), float(np.linalg.norm(np.abs(t) + a)) * 1.01 + 1e-6)
    for _ in range(40):
        mid = (lo + hi) / 2
        ok = inside(directions * mid[:, None])
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    return (lo + hi) / 2


def _box(rng):
    return [dict(axes=rng.uniform([0.3, 0.2, 0.3], [1.0, 0.8, 1.0]), power=rng.uniform(5.0, 10.0))]


def _ellipsoid(rng):
    return [dict(axes=rng.uniform([0.2, 0.4, 0.2], [0.6, 1.0, 0.6]), power=2.0)]


def _spindle(rng):
    return [dict(axes=rng.uniform([0.3, 0.5, 0.3], [0.8, 1.0, 0.8]), power=rng.uniform(0.8, 1.2))]


def _table(rng):
    """A slab on a post: an asymmetric assembly (the slab sits high, the post reaches down)."""
    top = rng.uniform(0.15, 0.35)
    slab = dict(axes=[rng.uniform(0.6, 1.0), rng.uniform(0.06, 0.12), rng.uniform(0.4, 0.9)], power=8.0, centre=[0, top, 0])
    post = dict(axes=[rng.uniform(0.08, 0.2), rng.uniform(0.5, 0.8), rng.uniform(0.08, 0.2)], power=4.0, centre=[0, -0.1, 0])
    return [slab, post]


def _cross(rng):
    """Three bars along x, y and z through the origin, of random lengths and thicknesses."""
    bars = []
    for axis in range(3):
        half = np.full(3, rng.uniform(0.1, 0.22))
        half[axis] = rng.uniform(0.5, 1.0)
        bars.append(dict(axes=half, power=6.0))
    return bars


CLASSES: dict[str, Callable] = {"box": _box, "ellipsoid": _ellipsoid, "spindle": _spindle, "table": _table, "cross": _cross}


def class_names() -> list[str]:
    return list(CLASSES)


def generate(class_name: str, index: int, seed: int = 0, subdivisions: int = SUBDIVISIONS) -> tuple[np.ndarray, np.ndarray]:
    """Object ``index`` of ``class_name``: ``(vertices [V, 3] float64, faces [F, 3] int64)``,
    normalized (bounding box centred, diagonal 1)."""
    if class_name not in CLASSES:
        raise ValueError(f"unknown procedural class {class_name!r} (valid: {', '.join(CLASSES)})")
    rng = np.random.default_rng([seed, list(CLASSES).index(class_name), index])
    directions, faces = icosphere(subdivisions)
    directions = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    radius = np.zeros(len(directions))
    for primitive in CLASSES[class_name](rng):
        radius = np.maximum(
            radius, superquadric_radius(directions, primitive["axes"], primitive["power"], primitive.get("centre", (0, 0, 0)))
        )
    return normalize_mesh(directions * radius[:, None]), np.asarray(faces, np.int64)
