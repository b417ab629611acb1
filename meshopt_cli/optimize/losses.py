"""Losses of silhouette fitting: image terms (silhouette 1 - IoU, MSE) and mesh regularizers.

Shapes: silhouettes ``[B, S, S]`` in [0, 1]; vertices ``[V, 3]`` (or ``[B, V, 3]`` where said);
the mesh's connectivity comes from a :class:`MeshTopology` built once from the faces.
Every loss returns a scalar tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------- image terms


def iou_loss(predicted: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The paper's silhouette loss: 1 - soft IoU, averaged over the batch.

    IoU = Σ p t / Σ (p + t - p t) per image, with p = ``predicted`` ``[B, S, S]`` (differentiable)
    and t = ``target`` ``[B, S, S]``, both in [0, 1]. Two empty images count as IoU 1."""
    dims = tuple(range(1, predicted.ndim))
    intersection = (predicted * target).sum(dims)
    union = (predicted + target - predicted * target).sum(dims)
    return 1.0 - ((intersection + eps) / (union + eps)).mean()


def mse_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of silhouettes ``[B, S, S]`` over all pixels."""
    return ((predicted - target) ** 2).mean()


IMAGE_LOSSES = {"iou": iou_loss, "mse": mse_loss}


def silhouette_iou(predicted: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Evaluation metric: IoU of the binary masks ``> threshold``, per image ``[B, S, S] -> [B]``
    (1 where both masks are empty)."""
    p = predicted > threshold
    t = target > threshold
    dims = tuple(range(1, p.ndim))
    intersection = (p & t).sum(dims).double()
    union = (p | t).sum(dims).double()
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union)).float()


# ----------------------------------------------------------------------------- connectivity


@dataclass
class MeshTopology:
    """Connectivity of a triangle mesh, computed once (numpy) and kept as tensors.

    edges:       ``[E, 2]`` unique undirected edges (i < j)
    edge_quads:  ``[P, 4]`` for every edge shared by exactly two faces: its ends (v0, v1) and the
                 third corners (v2, v3) of its two faces (the paper's smoothness-loss layout)
    face_pairs:  ``[P, 2]`` the two faces of each such edge
    faces:       ``[F, 3]``
    degree:      ``[V]`` number of distinct neighbours of each vertex (0 for unused vertices)
    """

    edges: torch.Tensor
    edge_quads: torch.Tensor
    face_pairs: torch.Tensor
    faces: torch.Tensor
    degree: torch.Tensor

    @staticmethod
    def from_faces(faces, num_vertices: int, device=None) -> "MeshTopology":
        f = np.asarray(faces.detach().cpu() if isinstance(faces, torch.Tensor) else faces, np.int64)
        nf = len(f)
        corner_edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])  # [3F, 2]
        third = np.concatenate([f[:, 2], f[:, 0], f[:, 1]])  # the corner opposite each edge
        face_of = np.tile(np.arange(nf), 3)
        key = np.sort(corner_edges, axis=1)
        edges, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        # edges with exactly two faces: pair their two occurrences
        order = np.argsort(inverse, kind="stable")
        sorted_edge = inverse[order]
        starts = np.searchsorted(sorted_edge, np.arange(len(edges)))
        shared = np.flatnonzero(counts == 2)
        first, second = order[starts[shared]], order[starts[shared] + 1]
        quads = np.stack([edges[shared, 0], edges[shared, 1], third[first], third[second]], axis=1)
        pairs = np.stack([face_of[first], face_of[second]], axis=1)
        degree = np.bincount(edges.reshape(-1), minlength=num_vertices)
        as_tensor = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.long, device=device)  # noqa: E731
        return MeshTopology(
            as_tensor(edges),
            as_tensor(quads),
            as_tensor(pairs),
            as_tensor(f),
            torch.as_tensor(degree, dtype=torch.float32, device=device),
        )


# ----------------------------------------------------------------------------- regularizers


def uniform_laplacian(vertices: torch.Tensor, topology: MeshTopology) -> torch.Tensor:
    """``[V, 3]``: each vertex minus the mean of its neighbours (0 for isolated vertices)."""
    i, j = topology.edges[:, 0], topology.edges[:, 1]
    neighbour_sum = torch.zeros_like(vertices).index_add_(0, i, vertices[j]).index_add_(0, j, vertices[i])
    degree = topology.degree.clamp(min=1)[:, None]
    lap = vertices - neighbour_sum / degree
    return torch.where(topology.degree[:, None] > 0, lap, torch.zeros_like(lap))


def laplacian_loss(vertices: torch.Tensor, topology: MeshTopology) -> torch.Tensor:
    """Uniform Laplacian smoothing: mean over vertices of |v - mean(neighbours)|², ``[V, 3] -> []``."""
    return uniform_laplacian(vertices, topology).pow(2).sum(-1).mean()


def edge_length_loss(vertices: torch.Tensor, topology: MeshTopology) -> torch.Tensor:
    """Edge length: Σ over edges of their squared length, ``[V, 3] -> []``.

    A membrane (Dirichlet) energy: for an evenly meshed surface it is proportional to the area,
    whatever the resolution, so it pulls the parts of the surface that no silhouette holds (the
    bottom of a shape seen only from above, a hole's opening) to the smallest surface spanning them,
    and keeps edges short and even."""
    e = topology.edges
    return (vertices[e[:, 0]] - vertices[e[:, 1]]).pow(2).sum()


def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit normals ``[F, 3]`` of faces ``[F, 3]`` (counter-clockwise = outward)."""
    v0, v1, v2 = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    return F.normalize(torch.cross(v1 - v0, v2 - v0, dim=-1), dim=-1, eps=1e-12)


def normal_consistency_loss(vertices: torch.Tensor, topology: MeshTopology) -> torch.Tensor:
    """Normal consistency: mean over interior edges of 1 - cos(angle between the normals of the two
    faces), ``[V, 3] -> []`` (0 on a plane, 2 on a folded-back edge)."""
    if topology.face_pairs.numel() == 0:
        return vertices.sum() * 0
    n = face_normals(vertices, topology.faces)
    return (1.0 - (n[topology.face_pairs[:, 0]] * n[topology.face_pairs[:, 1]]).sum(-1)).mean()


def flatten_loss(vertices: torch.Tensor, topology: MeshTopology, eps: float = 1e-6) -> torch.Tensor:
    """The paper's smoothness term ("flatten loss", Kato et al. 2018, eq. 5): for every edge (v0, v1)
    shared by faces (v0, v1, v2) and (v0, v1, v3), θ is the angle between the perpendiculars dropped
    from v2 and from v3 onto the edge line, and the loss is Σ (cos θ + 1)² — **summed** over edges as
    in the paper, so that its weight (0.001 in the paper) means the same. 0 for a flat pair.

    ``vertices``: ``[V, 3]`` or ``[B, V, 3]`` (then averaged over the batch) -> ``[]``."""
    batched = vertices if vertices.ndim == 3 else vertices[None]
    if topology.edge_quads.numel() == 0:
        return batched.sum() * 0
    q = topology.edge_quads
    v0, v1, v2, v3 = (batched[:, q[:, k]] for k in range(4))
    a = v1 - v0
    a_len2 = (a * a).sum(-1)

    def perpendicular(b):
        b_len = torch.sqrt((b * b).sum(-1) + eps)
        ab = (a * b).sum(-1)
        cos = ab / (torch.sqrt(a_len2 + eps) * b_len + eps)
        sin = torch.sqrt(1 - cos**2 + eps)
        return b - a * (ab / (a_len2 + eps))[..., None], b_len * sin

    c1, l1 = perpendicular(v2 - v0)
    c2, l2 = perpendicular(v3 - v0)
    cos = (c1 * c2).sum(-1) / (l1 * l2 + eps)
    return ((cos + 1) ** 2).sum() / batched.shape[0]


REGULARIZERS = {
    "laplacian": laplacian_loss,
    "edge": edge_length_loss,
    "normal": normal_consistency_loss,
    "flatten": flatten_loss,
}
