"""Small mesh-topology helpers: welding, consistent winding, orientation checks.

vertices: [V, 3] float arrays (``weld`` also takes [V, D]); faces: [F, 3] int arrays of vertex indices.
"""

from __future__ import annotations

from collections import deque

import numpy as np


def weld(
    vertices: np.ndarray, faces: np.ndarray, decimals: int | None = None, *, drop_degenerate: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices with equal rows (exactly, or after rounding to ``decimals``; -0.0 equals 0.0).

    vertices: ``[V, D]`` floats, usually positions (D = 3, mesh units); extra columns (e.g. colours,
              D = 6) must match too for two vertices to merge.
    faces:    ``[F, 3]`` ints, indices into ``vertices``.
    decimals: round the rows to this many decimal places before comparing (None: exact). The kept
              rows are the originals (the first of each group), not rounded.
    drop_degenerate: drop the faces that collapse (two equal corners); with False the faces stay
              aligned with the input's (for per-corner data such as UVs), collapsed ones included.

    Kept vertices stay in order of first occurrence; faces keep their order and are re-indexed.
    Returns ``(vertices [V', D], faces [F', 3] int64)``; welding the result again changes nothing.
    """
    v = np.asarray(vertices)
    key = np.round(v, decimals) + 0.0 if decimals is not None else v + 0.0  # +0.0: -0.0 -> 0.0
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(first, kind="stable")  # unique rows in first-occurrence order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    new_vertices = v[first[order]]
    new_faces = rank[inverse][np.asarray(faces)]
    if not drop_degenerate:
        return new_vertices, new_faces
    keep = (new_faces[:, 0] != new_faces[:, 1]) & (new_faces[:, 1] != new_faces[:, 2]) & (new_faces[:, 2] != new_faces[:, 0])
    return new_vertices, new_faces[keep]


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume enclosed by the faces (> 0 when a closed mesh's normals point outward)."""
    tri = np.asarray(vertices, np.float64)[np.asarray(faces)]
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


def directed_edges(faces: np.ndarray) -> np.ndarray:
    """[3F, 2] directed edges (a, b) of the faces, in face order."""
    f = np.asarray(faces)
    return np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], axis=0)


def subdivide_faces(faces: np.ndarray, num_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """One step of midpoint subdivision: every triangle (a, b, c) becomes four, with a new vertex on
    each edge, wound like their parent (a closed, consistently oriented mesh stays so).

    faces: ``[F, 3]`` ints; the mesh has ``num_vertices`` vertices. Returns ``(faces [4F, 3] int64,
    edges [E, 2] int64)``: new vertex ``num_vertices + k`` lies on ``edges[k]`` (unique undirected
    edges, i < j, sorted); the caller places it (the edge's midpoint, or projected onto a sphere).
    """
    f = np.asarray(faces, np.int64)
    key = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    edges, inverse = np.unique(key, axis=0, return_inverse=True)
    m = (num_vertices + inverse.reshape(3, -1)).T  # [F, 3]: the new vertices on edges 01, 12, 20
    a, b, c = f[:, 0], f[:, 1], f[:, 2]
    m01, m12, m20 = m[:, 0], m[:, 1], m[:, 2]
    new_faces = np.concatenate(
        [
            np.stack([a, m01, m20], 1),
            np.stack([b, m12, m01], 1),
            np.stack([c, m20, m12], 1),
            np.stack([m01, m12, m20], 1),
        ]
    )
    return new_faces, edges


def is_closed_and_consistent(faces: np.ndarray) -> bool:
    """True when every edge is shared by exactly two faces that traverse it in opposite
    directions (a closed, consistently wound 2-manifold edge structure)."""
    e = directed_edges(faces)
    undirected = np.sort(e, axis=1)
    _, counts = np.unique(undirected, axis=0, return_counts=True)
    if not np.all(counts == 2):
        return False
    _, dcounts = np.unique(e, axis=0, return_counts=True)
    return bool(np.all(dcounts == 1))


def is_consistently_wound(faces: np.ndarray) -> bool:
    """True when no directed edge occurs twice (neighbouring faces agree on orientation) and no
    edge has more than two faces; boundary edges are allowed."""
    e = directed_edges(faces)
    _, dcounts = np.unique(e, axis=0, return_counts=True)
    _, ucounts = np.unique(np.sort(e, axis=1), axis=0, return_counts=True)
    return bool(np.all(dcounts == 1) and np.all(ucounts <= 2))


def orient_outward(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Faces re-wound so that each connected component is consistently oriented with its normals
    pointing away from the component's centroid on average (outward for closed shapes and for
    open tubes and domes). Returns a new [F, 3] array."""
    f = np.array(faces, dtype=np.int64, copy=True)
    n = len(f)
    e = directed_edges(f)
    face_of = np.tile(np.arange(n), 3)
    key = np.sort(e, axis=1)
    order = np.lexsort((key[:, 1], key[:, 0]))
    ks = key[order]
    same = np.all(ks[1:] == ks[:-1], axis=1)
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for pos in np.flatnonzero(same):
        a, b = order[pos], order[pos + 1]
        fa, fb = int(face_of[a]), int(face_of[b])
        if fa != fb:
            neighbours[fa].append(fb)
            neighbours[fb].append(fa)

    def shares_same_direction(fa: int, fb: int) -> bool:
        ea = {(f[fa, i], f[fa, (i + 1) % 3]) for i in range(3)}
        return any((f[fb, i], f[fb, (i + 1) % 3]) in ea for i in range(3))

    seen = np.zeros(n, bool)
    v = np.asarray(vertices, np.float64)
    for seed in range(n):
        if seen[seed]:
            continue
        component = [seed]
        seen[seed] = True
        queue = deque([seed])
        while queue:
            cur = queue.popleft()
            for nb in neighbours[cur]:
                if not seen[nb]:
                    if shares_same_direction(cur, nb):
                        f[nb] = f[nb, [0, 2, 1]]
                    seen[nb] = True
                    component.append(nb)
                    queue.append(nb)
        comp = np.asarray(component)
        tri = v[f[comp]]
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # area-weighted
        centre = tri.reshape(-1, 3).mean(axis=0)
        if np.einsum("ij,ij->", normal, tri.mean(axis=1) - centre) < 0:
            f[comp] = f[comp][:, [0, 2, 1]]
    return f
