"""Relaxing what the silhouettes do not hold: the last step of a fit.

A part of the surface no training camera sees (the bottom of a shape seen only from 30° above)
can sit anywhere inside the visual hull without changing a training pixel, and the fit leaves it
where the template's smooth bulge happened to put it. :func:`relax_unheld` moves those vertices to the
smallest surface spanning the rest: with the set H of *held* vertices fixed, the free ones solve

    (I + μ L)_ff x_f = x⁰_f + μ A_fh x_h

(L = D - A the uniform Laplacian of the edge graph, μ = :data:`STIFFNESS`: nearly the harmonic,
membrane-minimizing surface with the held vertices as its boundary). H starts as the vertices of
every face a training camera sees inside its silhouette (the z-buffer's nearest face, drawn from
both sides); what no camera sees is free. Then the move is checked by rendering: every training
pixel it made wrong (a target pixel uncovered, or a background pixel covered; pixel-centre
coverage at ``size`` px) holds the vertices of the face seen there before the move (uncovered)
or after it (covered), and the solve is repeated from the fitted positions until no training
pixel is worse than the fit's. A cube seen from 30° above gets a flat bottom instead of the
template's bulge, which every lower view showed below it; the contours, and so the training IoU,
stay as fitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from meshopt_cli.optimize.carve import CARVE_IMAGE_SIZE, visible_faces
from meshopt_cli.optimize.largesteps import laplacian_system
from meshopt_cli.optimize.losses import MeshTopology
from meshopt_cli.optimize.views import Views, render_silhouettes

RELAX_IMAGE_SIZE = CARVE_IMAGE_SIZE  # pixels of the training silhouettes the moves are checked on (the carve's)
STIFFNESS = 1000.0  # μ: the membrane's weight against staying at the fitted position
MAX_ROUNDS = 12  # solves before giving up (each holds at least one more vertex; one or two are typical)


@dataclass
class Relaxed:
    vertices: torch.Tensor  # [V, 3] relaxed (the input's when nothing could move)
    held: torch.Tensor  # [V] bool: the vertices the silhouettes hold (kept as fitted)
    rounds: int  # solves made
    moved: int  # vertices that moved (0 when the relaxation gave up or nothing was free)


def solve_free(vertices: torch.Tensor, edges: torch.Tensor, held: torch.Tensor, stiffness: float) -> torch.Tensor:
    """``[V, 3]``: ``vertices [V, 3]`` with the non-``held`` ones (``[V]`` bool) replaced by the
    solution of ``(I + μL)_ff x_f = x⁰_f + μ A_fh x_h`` (``edges [E, 2]``, each undirected edge once;
    sparse Cholesky of the free block, which is symmetric positive definite)."""
    from cholespy import CholeskySolverF, MatrixType

    free = ~held
    count = int(free.sum())
    if count == 0:
        return vertices.clone()
    rows, cols, values = laplacian_system(edges, len(vertices), stiffness)
    free_np = free.cpu().numpy()
    renumber = np.cumsum(free_np) - 1
    keep = free_np[rows] & free_np[cols]
    device = vertices.device
    solver = CholeskySolverF(
        count,
        torch.from_numpy(renumber[rows[keep]].astype(np.int32)).to(device),
        torch.from_numpy(renumber[cols[keep]].astype(np.int32)).to(device),
        torch.from_numpy(values[keep]).to(device),
        MatrixType.COO,
    )
    x = vertices.detach().float()
    i, j = edges[:, 0], edges[:, 1]
    # μ Σ of each free vertex's held neighbours
    pull = torch.zeros_like(x)
    pull.index_add_(0, i, x[j] * held[j, None]).index_add_(0, j, x[i] * held[i, None])
    rhs = (x + stiffness * pull)[free].contiguous()
    solution = torch.zeros_like(rhs)
    solver.solve(rhs, solution)
    out = x.clone()
    out[free] = solution
    return out


def relax_unheld(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    views: Views,
    masks: torch.Tensor,
    stiffness: float = STIFFNESS,
    max_rounds: int = MAX_ROUNDS,
    held: torch.Tensor | None = None,
) -> Relaxed:
    """Relax the vertices of ``vertices [V, 3]`` (faces ``[F, 3]``) that no training silhouette
    holds (see the module). ``masks``: ``[N, S, S]`` bool, the target's binary masks of the N
    cameras ``views`` at S px (:data:`RELAX_IMAGE_SIZE` in the fit). ``held``: ``[V]`` bool, the
    vertices held from the start (default: those of the faces a training camera sees; the renders
    add to them). The mesh is drawn from both sides, so that the face found at a pixel is the nearest
    one, what a camera sees (with ``fill_back=False`` the rasterizer draws, as the reference does,
    the faces whose counter-clockwise normal points away from the camera: the far side of a closed
    mesh; the fit draws one side only of closed meshes, whose silhouettes are the same either way).
    Returns the input unchanged (``moved`` 0, every vertex held) when ``max_rounds`` solves did not
    settle, or when a pixel got worse that no free vertex explains."""
    x0 = vertices.detach().float()
    size = masks.shape[-1]
    edges = MeshTopology.from_faces(faces, len(x0), x0.device).edges
    seen = visible_faces(x0, faces, views, size)
    if held is None:
        held = torch.zeros(len(x0), dtype=torch.bool, device=x0.device)
        held[faces[torch.unique(seen[masks & (seen >= 0)])].reshape(-1)] = True
    held = held.clone()
    fitted = render_silhouettes(x0, faces, views, size, anti_aliasing=False) > 0.5
    right = fitted == masks
    rounds = 0
    for rounds in range(1, max_rounds + 1):
        x = solve_free(x0, edges, held, stiffness)
        relaxed = render_silhouettes(x, faces, views, size, anti_aliasing=False) > 0.5
        worse = right & (relaxed != masks)
        if not bool(worse.any()):
            moved = int(((x - x0).abs().amax(1) > 1e-6).sum())
            return Relaxed(x, held, rounds, moved)
        seen_after = visible_faces(x, faces, views, size)
        culprits = torch.cat([seen[worse & fitted], seen_after[worse & relaxed]])
        culprits = torch.unique(culprits[culprits >= 0])
        newly = torch.zeros_like(held)
        newly[faces[culprits].reshape(-1)] = True
        newly &= ~held
        if not bool(newly.any()):  # a pixel no free vertex explains (z-fighting): keep the fit
            break
        held |= newly
    return Relaxed(x0.clone(), torch.ones_like(held), rounds, 0)
