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


# Richer classes, closer to ShapeNet's: 8-14 continuous parameters each (instead of 3-6), and,
# like ShapeNet's aligned objects, a front and a back (the parts sit off-centre along x in one
# direction), so that a view and the view 90 degrees round it are not the same picture of two
# objects with their x and z sizes swapped, as they are for every class above.


def _car(rng):
    """A body and a cabin set towards the back (-x), with random sizes, roundness and offset."""
    length, height, width = rng.uniform(0.75, 1.0), rng.uniform(0.15, 0.3), rng.uniform(0.3, 0.5)
    body = dict(axes=[length, height, width], power=rng.uniform(3.0, 10.0), centre=[0, -0.05, 0])
    cabin_height = rng.uniform(0.12, 0.28)
    cabin = dict(
        axes=[rng.uniform(0.25, 0.55), cabin_height, width * rng.uniform(0.7, 0.95)],
        power=rng.uniform(2.5, 6.0),
        centre=[-rng.uniform(0.05, 0.35), -0.05 + height + cabin_height * rng.uniform(0.0, 0.5), 0],
    )
    return [body, cabin]


def _airplane(rng):
    """A fuselage along x, wings across z set forward of the middle, a fin and a tailplane at the back."""
    length, radius = rng.uniform(0.8, 1.0), rng.uniform(0.08, 0.16)
    fuselage = dict(axes=[length, radius, radius], power=rng.uniform(2.0, 3.0))
    wings = dict(
        axes=[rng.uniform(0.12, 0.3), rng.uniform(0.04, 0.07), rng.uniform(0.5, 0.95)],
        power=rng.uniform(2.5, 6.0),
        centre=[rng.uniform(0.0, 0.3), rng.uniform(-0.05, 0.03), 0],
    )
    tail_x = -length * rng.uniform(0.75, 0.9)
    fin_height = rng.uniform(0.12, 0.3)
    fin = dict(axes=[rng.uniform(0.08, 0.16), fin_height, 0.05], power=3.0, centre=[tail_x, radius * 0.5 + fin_height * 0.6, 0])
    tailplane = dict(
        axes=[rng.uniform(0.06, 0.12), 0.045, rng.uniform(0.15, 0.35)], power=3.0, centre=[tail_x, rng.uniform(0.0, 0.1), 0]
    )
    return [fuselage, wings, fin, tailplane]


def _chair(rng):
    """A seat on a post with a backrest rising at the back (-x); the cones under the seat and the
    back are filled (a radial surface)."""
    seat_depth, seat_width = rng.uniform(0.35, 0.6), rng.uniform(0.35, 0.6)
    seat_y, seat_thick = rng.uniform(-0.15, 0.05), rng.uniform(0.05, 0.1)
    seat = dict(axes=[seat_depth, seat_thick, seat_width], power=rng.uniform(4.0, 10.0), centre=[0, seat_y, 0])
    back_height, back_thick = rng.uniform(0.3, 0.6), rng.uniform(0.05, 0.1)
    back = dict(
        axes=[back_thick, back_height, seat_width * rng.uniform(0.8, 1.0)],
        power=rng.uniform(4.0, 10.0),
        centre=[-seat_depth + back_thick, seat_y + back_height * rng.uniform(0.8, 1.0), 0],
    )
    leg = rng.uniform(0.25, 0.5)
    post = dict(axes=[rng.uniform(0.06, 0.15), leg, rng.uniform(0.06, 0.15)], power=4.0, centre=[0, seat_y - leg, 0])
    return [seat, back, post]


def _vase(rng):
    """A round body (the same width in x and z) with a neck and a lip, of random proportions."""
    radius, height = rng.uniform(0.25, 0.55), rng.uniform(0.3, 0.7)
    body = dict(axes=[radius, height, radius], power=rng.uniform(2.0, 4.0), centre=[0, -rng.uniform(0.0, 0.2), 0])
    neck_radius, neck_height = radius * rng.uniform(0.25, 0.6), rng.uniform(0.15, 0.4)
    top = body["centre"][1] + height
    neck = dict(axes=[neck_radius, neck_height, neck_radius], power=rng.uniform(3.0, 8.0), centre=[0, top, 0])
    lip_radius = neck_radius * rng.uniform(1.1, 1.6)
    lip = dict(axes=[lip_radius, rng.uniform(0.03, 0.07), lip_radius], power=4.0, centre=[0, top + neck_height, 0])
    return [body, neck, lip]


# Varied classes, for the comparison with retrieval (docs/design.md, "Procedural classes"): every
# object draws its number of parts and each part's size, roundness and place, 10-30 parameters of
# which most change the voxels a lot, so 210 training objects cannot cover a class as they cover
# the few-parameter classes above, where nearest-image retrieval is close to a lookup table.


def _assembly(rng):
    """Two to four superquadric parts of any size (half-axes 0.12-0.55), roundness (exponent 2-8)
    and place (centres in a cube of half-side 0.45)."""
    return [
        dict(axes=rng.uniform(0.12, 0.55, 3), power=rng.uniform(2.0, 8.0), centre=rng.uniform(-0.45, 0.45, 3))
        for _ in range(rng.integers(2, 5))
    ]


def _pebble(rng):
    """An ellipsoid (half-axes 0.3-0.8) with two to five round lumps in random directions."""
    parts = [dict(axes=rng.uniform(0.3, 0.8, 3), power=2.0)]
    for _ in range(rng.integers(2, 6)):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        parts.append(dict(axes=np.full(3, rng.uniform(0.12, 0.35)), power=2.0, centre=direction * rng.uniform(0.3, 0.6)))
    return parts


def _stack(rng):
    """Two to four rounded boxes stacked along y, each of its own width, depth, height and
    sideways offset."""
    parts, y = [], -0.6
    for _ in range(rng.integers(2, 5)):
        half = rng.uniform([0.15, 0.08, 0.15], [0.6, 0.3, 0.6])
        y += half[1]
        parts.append(dict(axes=half, power=rng.uniform(4.0, 10.0), centre=[rng.uniform(-0.2, 0.2), y, rng.uniform(-0.2, 0.2)]))
        y += half[1]
    return parts


CLASSES: dict[str, Callable] = {"box": _box, "ellipsoid": _ellipsoid, "spindle": _spindle, "table": _table, "cross": _cross}
CLASSES.update(car=_car, airplane=_airplane, chair=_chair, vase=_vase)  # after the first five: their seeds stay
CLASSES.update(assembly=_assembly, pebble=_pebble, stack=_stack)  # after the rest: their seeds stay


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
