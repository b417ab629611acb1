"""Procedural shape classes for training and testing reconstruction with no download.

Every shape is a closed genus-0 mesh (a sphere template cannot open holes): a fine icosphere
whose vertices are moved along their directions to the farthest point of a union of primitives
on that ray (a radial surface: the union itself where it is star-shaped around the origin, plus
the cone to the origin under a part that is not). Primitives are superquadrics ``|x/a|^p + |y/b|^p + |z/c|^p = 1`` centred
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


def inside_superquadric(points: np.ndarray, axes, power: float, centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Whether each point ``[..., 3]`` lies inside ``|x/a|^p + |y/b|^p + |z/c|^p <= 1`` around ``centre``."""
    a, t = np.asarray(axes, np.float64), np.asarray(centre, np.float64)
    return (np.abs((points - t) / a) ** power).sum(-1) <= 1.0


def union_radius(directions: np.ndarray, primitives: list[dict], samples: int = 96) -> np.ndarray:
    """Distance from the origin along each unit direction ``[N, 3]`` to the farthest point of the
    union of ``primitives`` on that ray (``[N]``): samples find the last inside point, bisection
    refines it. Where a primitive does not contain the origin, the shape also fills the cone
    between it and the origin (the mesh stays a radial, genus-0 surface)."""

    def inside(points):
        return np.any(
            [inside_superquadric(points, q["axes"], q["power"], q.get("centre", (0, 0, 0))) for q in primitives], axis=0
        )

    reach = max(float(np.linalg.norm(np.abs(q.get("centre", (0, 0, 0))) + np.asarray(q["axes"]))) for q in primitives) * 1.01
    t = np.linspace(0, reach, samples + 1)[1:]
    hits = inside(directions[:, None, :] * t[None, :, None])  # [N, samples]
    last = np.where(hits.any(1), samples - 1 - np.argmax(hits[:, ::-1], axis=1), 0)
    lo = t[last] * hits.any(1)
    hi = np.minimum(lo + reach / samples, reach)
    for _ in range(30):
        mid = (lo + hi) / 2
        ok = inside(directions * mid[:, None])
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    return np.maximum((lo + hi) / 2, 1e-3)


def _box(rng):
    return [dict(axes=rng.uniform([0.3, 0.2, 0.3], [1.0, 0.8, 1.0]), power=rng.uniform(5.0, 10.0))]


def _ellipsoid(rng):
    return [dict(axes=rng.uniform([0.2, 0.4, 0.2], [0.6, 1.0, 0.6]), power=2.0)]


def _spindle(rng):
    return [dict(axes=rng.uniform([0.3, 0.5, 0.3], [0.8, 1.0, 0.8]), power=rng.uniform(0.8, 1.2))]


def _table(rng):
    """A slab on a post: the slab sits high, off the origin (the cone under it is filled too)."""
    top = rng.uniform(0.2, 0.35)
    half = rng.uniform(0.35, 0.55)
    slab = dict(axes=[rng.uniform(0.6, 1.0), rng.uniform(0.06, 0.12), rng.uniform(0.4, 0.9)], power=8.0, centre=[0, top, 0])
    stem = rng.uniform(0.08, 0.2, 2)
    post = dict(axes=[stem[0], half, stem[1]], power=4.0, centre=[0, top - 0.02 - half, 0])
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
    radius = union_radius(directions, CLASSES[class_name](rng))
    return normalize_mesh(directions * radius[:, None]), np.asarray(faces, np.int64)
