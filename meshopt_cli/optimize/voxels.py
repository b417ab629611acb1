"""Voxel IoU of two closed meshes at 32³ (the paper's 3D metric), with our own inside test.

Both meshes are voxelized on one grid: ``resolution``³ cubic cells over the bounding cube of the two
meshes together (centred on them, 2% margin). A cell is inside a mesh when a ray from its centre
along +z crosses the mesh's surface an odd number of times (parity), which is exact for closed
(watertight) meshes. Rays are cast per grid column, shifted by a tiny irrational offset so that they
do not run through mesh edges or vertices of axis-aligned shapes.
"""

from __future__ import annotations

import numpy as np
import torch

from meshopt_cli.mesh.topology import is_closed_and_consistent, weld


def is_watertight(vertices, faces) -> bool:
    """True when the mesh, welded by position (1e-6), is closed: every edge has exactly two faces
    that run through it in opposite directions."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    if len(f) == 0:
        return False
    _, welded = weld(v, f, decimals=6)
    return len(welded) > 0 and is_closed_and_consistent(welded)


def grid_for(*meshes, resolution: int = 32, margin: float = 0.02):
    """Cell centres of a ``resolution``³ cubic grid around the meshes' vertices: ``(xs, ys, zs)``, each
    ``[resolution]`` (float64)."""
    points = np.concatenate([np.asarray(v, np.float64) for v, _ in meshes])
    lo, hi = points.min(0), points.max(0)
    centre = (lo + hi) / 2
    side = float((hi - lo).max()) * (1 + 2 * margin) or 1.0
    pitch = side / resolution
    axis = (np.arange(resolution) + 0.5) * pitch - side / 2
    return tuple(centre[k] + axis for k in range(3))


def voxelize(vertices, faces, grid, chunk: int = 4096, rule: str = "parity") -> np.ndarray:
    """Occupancy ``[X, Y, Z]`` bool of a closed mesh on ``grid`` (from :func:`grid_for`): by ray
    parity (``rule="parity"``), or where the winding number along the ray (crossings counted with
    the sign of the face's orientation) is not 0 (``"nonzero"``: the same for a simple closed mesh,
    and still inside where a consistently oriented mesh overlaps itself, as a predicted one may)."""
    if rule not in ("parity", "nonzero"):
        raise ValueError(f"rule must be 'parity' or 'nonzero', got {rule!r}")
    xs, ys, zs = (torch.as_tensor(a, dtype=torch.float64) for a in grid)
    # contiguous copies: faces may come reversed (faces[:, ::-1]), which torch cannot wrap
    corners = np.ascontiguousarray(faces, np.int64)
    tri = torch.as_tensor(np.ascontiguousarray(vertices, np.float64))[torch.as_tensor(corners)]  # [F, 3, 3]
    pitch = float(xs[1] - xs[0]) if len(xs) > 1 else 1.0
    # ray origins (x, y) per column, nudged off any symmetric position
    ox, oy = xs + pitch * 1.234567e-4, ys + pitch * 2.718281e-4
    rx = ox[:, None].expand(len(xs), len(ys)).reshape(-1)
    ry = oy[None, :].expand(len(xs), len(ys)).reshape(-1)
    counts = torch.zeros(len(rx), len(zs) + 1, dtype=torch.int32)
    rays, faces_of = _candidates(tri, ox, oy)
    for first in range(0, len(rays), chunk * 256):
        ray, face = rays[first : first + chunk * 256], faces_of[first : first + chunk * 256]
        t = tri[face]  # [P, 3, 3]
        x0, y0 = t[:, 0, 0], t[:, 0, 1]
        e1x, e1y = t[:, 1, 0] - x0, t[:, 1, 1] - y0
        e2x, e2y = t[:, 2, 0] - x0, t[:, 2, 1] - y0
        det = e1x * e2y - e1y * e2x  # [P]
        usable = det.abs() > 1e-15
        px, py = rx[ray] - x0, ry[ray] - y0
        inv = torch.where(usable, 1.0 / torch.where(usable, det, torch.ones_like(det)), torch.zeros_like(det))
        b1 = (px * e2y - py * e2x) * inv
        b2 = (e1x * py - e1y * px) * inv
        hit = usable & (b1 >= 0) & (b2 >= 0) & (b1 + b2 <= 1)
        if not bool(hit.any()):
            continue
        ray, t, b1, b2, det = ray[hit], t[hit], b1[hit], b2[hit], det[hit]
        z = t[:, 0, 2] + b1 * (t[:, 1, 2] - t[:, 0, 2]) + b2 * (t[:, 2, 2] - t[:, 0, 2])
        # a crossing at height z lies above the cells with centre below z: cells [0, k) with k = #{zs < z}
        k = torch.searchsorted(zs.contiguous(), z.contiguous())
        step = torch.ones_like(ray, dtype=torch.int32) if rule == "parity" else torch.sign(det).to(torch.int32)
        counts.index_put_((ray, torch.zeros_like(ray)), step, accumulate=True)
        counts.index_put_((ray, k), -step, accumulate=True)
    crossings_above = counts.cumsum(1)[:, :-1]  # [R, Z]: crossings (or their signed sum) above each cell centre
    inside = crossings_above % 2 == 1 if rule == "parity" else crossings_above != 0
    return inside.reshape(len(xs), len(ys), len(zs)).numpy()


def _candidates(tri: torch.Tensor, ox: torch.Tensor, oy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The (ray, face) pairs worth testing, ``[P]`` each: on evenly spaced ray columns those whose
    origin lies in the face's x-y bounding box (widened by a hair, so that no ray a dense test
    would count is missed), else every pair."""
    nx, ny = len(ox), len(oy)
    dx = (ox[1:] - ox[:-1]) if nx > 1 else torch.ones(1, dtype=ox.dtype)
    dy = (oy[1:] - oy[:-1]) if ny > 1 else torch.ones(1, dtype=oy.dtype)
    even = bool(torch.allclose(dx, dx[0], rtol=1e-9, atol=0)) and bool(torch.allclose(dy, dy[0], rtol=1e-9, atol=0))
    if not even or float(dx[0]) <= 0 or float(dy[0]) <= 0:
        ray = torch.arange(nx * ny).repeat_interleave(len(tri))
        return ray, torch.arange(len(tri)).repeat(nx * ny)
    spans = []
    for axis, origin, pitch, n in ((0, ox[0], float(dx[0]), nx), (1, oy[0], float(dy[0]), ny)):
        lo, hi = tri[:, :, axis].min(1).values, tri[:, :, axis].max(1).values
        margin = 1e-7 * pitch + 1e-12
        first = torch.ceil((lo - margin - origin) / pitch).clamp(0, n).long()
        last = torch.floor((hi + margin - origin) / pitch).clamp(-1, n - 1).long()
        spans.append((first, (last - first + 1).clamp(min=0)))
    (ix, cx), (iy, cy) = spans
    per_face = cx * cy
    face = torch.repeat_interleave(torch.arange(len(tri)), per_face)
    local = torch.arange(len(face)) - torch.repeat_interleave(torch.cumsum(per_face, 0) - per_face, per_face)
    column = ix[face] + local // cy[face].clamp(min=1)
    row = iy[face] + local % cy[face].clamp(min=1)
    return column * ny + row, face


def surface_cells(vertices, faces, grid, spacing: float = 0.5) -> np.ndarray:
    """The cells ``[X, Y, Z]`` bool of ``grid`` (evenly spaced, from :func:`grid_for`) that the
    surface passes through, found by sampling every face on a barycentric lattice finer than
    ``spacing`` cells (so a cell the face crosses by more than a sliver holds a sample). With the
    inside cells of :func:`voxelize` this is the conservative occupancy of the paper's reference
    voxelizer, which counts every cell a triangle touches: thin parts then count at all."""
    axes = [np.asarray(a, np.float64) for a in grid]
    pitch = float(axes[0][1] - axes[0][0]) if len(axes[0]) > 1 else 1.0
    low = np.array([a[0] - pitch / 2 for a in axes])
    shape = tuple(len(a) for a in axes)
    tri = np.asarray(vertices, np.float64)[np.asarray(faces, np.int64)]  # [F, 3, 3]
    occupied = np.zeros(shape, bool)
    if len(tri) == 0:
        return occupied
    longest = np.linalg.norm(tri - tri[:, [1, 2, 0]], axis=-1).max(1)
    steps = np.clip(np.ceil(longest / (spacing * pitch)), 1, 64).astype(int)
    for n in np.unique(steps):
        i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
        keep = i + j <= n
        weights = np.stack([i[keep], j[keep], n - i[keep] - j[keep]], 1) / n  # [P, 3]
        points = np.einsum("pk,fkd->fpd", weights, tri[steps == n]).reshape(-1, 3)
        cells = np.floor((points - low) / pitch).astype(np.int64)
        inside = np.all((cells >= 0) & (cells < np.array(shape)), axis=1)
        cells = cells[inside]
        occupied[cells[:, 0], cells[:, 1], cells[:, 2]] = True
    return occupied


def voxel_iou(vertices_a, faces_a, vertices_b, faces_b, resolution: int = 32) -> float:
    """IoU of the occupancies of two closed meshes on a shared ``resolution``³ grid (see module)."""
    grid = grid_for((vertices_a, faces_a), (vertices_b, faces_b), resolution=resolution)
    a = voxelize(vertices_a, faces_a, grid)
    b = voxelize(vertices_b, faces_b, grid)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
