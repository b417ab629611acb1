"""Carving: remove the faces of a fitted mesh that lie outside the target's silhouettes.

A genus-0 template cannot open a hole (a teapot's handle): the fit stretches a web across the
opening, which every view through the hole sees as foreground. Any part of the true surface
projects inside every training silhouette (the visual-hull rule), so a face whose centroid falls
clearly outside one of them (more than ``margin`` pixels beyond its border) is not part of the
target; removing those faces opens the hole, and the fit goes on with an open mesh (rendered
from both sides). A target that every face already fits (a convex shape) loses none.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from meshopt_cli.optimize.views import Views
from meshopt_cli.render.camera import projection

CARVE_IMAGE_SIZE = 256  # the masks the test reads (pixels; the margin is counted in these)


def faces_outside_silhouettes(
    vertices: torch.Tensor, faces: torch.Tensor, views: Views, masks: torch.Tensor, margin: int
) -> torch.Tensor:
    """``[F]`` bool: faces whose centroid projects more than ``margin`` pixels outside one of the
    binary ``masks [N, S, S]`` (row 0 at the top) of the N cameras ``views``.

    ``vertices [V, 3]``, ``faces [F, 3]``. A centroid behind a camera or beyond the image border
    counts as outside only when it lands on the image (points off the image are not judged).
    """
    count, size = masks.shape[0], masks.shape[-1]
    # the mask grown by `margin` pixels: outside it is "clearly outside"
    grown = F.max_pool2d(masks.float()[:, None], 2 * margin + 1, 1, margin)[:, 0] > 0 if margin > 0 else masks
    centroids = vertices.detach().float()[faces].mean(1)  # [F, 3]
    cameras = views.as_projection().to(centroids.device)
    ndc = projection(centroids[None].expand(count, -1, -1), cameras.K, cameras.R, cameras.t, cameras.dist, orig_size=1.0)
    # the renderer's pixel frame: column 0.5 (x S + S - 1), row 0 at y = +1 after its flip
    column = torch.round(0.5 * (ndc[..., 0] * size + size - 1)).long()
    row = torch.round(0.5 * (size - 1 - ndc[..., 1] * size)).long()
    on_image = (column >= 0) & (column < size) & (row >= 0) & (row < size) & (ndc[..., 2] > 0)
    index = torch.arange(count, device=masks.device)[:, None].expand_as(column)
    inside = grown[index, row.clamp(0, size - 1), column.clamp(0, size - 1)]
    return (on_image & ~inside).any(0)


def without_faces(vertices: torch.Tensor, faces: torch.Tensor, remove: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mesh ``vertices [V, 3]``, ``faces [F, 3]`` without the faces flagged in ``remove [F]``
    and without the vertices no remaining face uses: ``([V', 3], [F', 3])``, order kept."""
    kept = faces[~remove]
    used = torch.zeros(len(vertices), dtype=torch.bool, device=vertices.device)
    used[kept.reshape(-1)] = True
    renumber = torch.cumsum(used.long(), 0) - 1
    return vertices.detach()[used], renumber[kept]
