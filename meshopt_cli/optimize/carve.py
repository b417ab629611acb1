"""Carving: remove the faces of a fitted mesh that span the holes of the target's silhouettes.

A genus-0 template cannot open a hole (a teapot's handle): the fit stretches a web across the
opening, which every view through the hole sees as foreground. Any part of the true surface
projects inside every training silhouette (the visual-hull rule), so a face whose centroid falls
clearly (more than ``margin`` pixels) inside a hole of one of them is not part of the target;
removing those faces opens the hole, and the fit goes on with an open mesh (rendered from both
sides). Only holes count (background enclosed by the silhouette, :func:`enclosed_background`):
a fit that has not converged yet also sticks out into the background around a silhouette, and
there removing faces would leave holes in a surface the fit would otherwise pull in. A face is
also kept where removing it would uncover part of a training silhouette, or where no training
view sees it (:func:`faces_to_carve`). A target whose silhouettes have no holes loses no face.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from meshopt_cli.optimize.views import Views, render_in_batches, render_silhouettes
from meshopt_cli.render import Renderer
from meshopt_cli.render.camera import projection

CARVE_IMAGE_SIZE = 256  # the masks the test reads (pixels; the margin is counted in these)


def enclosed_background(masks: torch.Tensor) -> torch.Tensor:
    """``[N, S, S]`` bool: background pixels of ``masks [N, S, S]`` with silhouette pixels on all four
    sides along their row and column: the holes of a silhouette (a handle's opening), not the
    background around it, which reaches the image border in a straight line."""
    m = masks.to(torch.uint8)
    left = m.cummax(dim=2).values.bool()
    right = m.flip(2).cummax(dim=2).values.flip(2).bool()
    up = m.cummax(dim=1).values.bool()
    down = m.flip(1).cummax(dim=1).values.flip(1).bool()
    return ~masks & left & right & up & down


def faces_in_silhouette_holes(
    vertices: torch.Tensor, faces: torch.Tensor, views: Views, masks: torch.Tensor, margin: int
) -> torch.Tensor:
    """``[F]`` bool: faces whose centroid projects into a hole (:func:`enclosed_background`) of one
    of the binary ``masks [N, S, S]`` (row 0 at the top) of the N cameras ``views``, more than
    ``margin`` pixels from the silhouette. ``vertices [V, 3]``, ``faces [F, 3]``. Faces that stick
    out of a silhouette into the background around it are not flagged: the fit pulls those in."""
    count, size = masks.shape[0], masks.shape[-1]
    grown = F.max_pool2d(masks.float()[:, None], 2 * margin + 1, 1, margin)[:, 0] > 0 if margin > 0 else masks
    holes = enclosed_background(grown)
    centroids = vertices.detach().float()[faces].mean(1)  # [F, 3]
    cameras = views.as_projection().to(centroids.device)
    ndc = projection(centroids[None].expand(count, -1, -1), cameras.K, cameras.R, cameras.t, cameras.dist, orig_size=1.0)
    # the renderer's pixel frame: column 0.5 (x S + S - 1), row 0 at y = +1 after its flip
    column = torch.round(0.5 * (ndc[..., 0] * size + size - 1)).long()
    row = torch.round(0.5 * (size - 1 - ndc[..., 1] * size)).long()
    on_image = (column >= 0) & (column < size) & (row >= 0) & (row < size) & (ndc[..., 2] > 0)
    index = torch.arange(count, device=masks.device)[:, None].expand_as(column)
    in_hole = holes[index, row.clamp(0, size - 1), column.clamp(0, size - 1)]
    return (on_image & in_hole).any(0)


def visible_faces(
    vertices: torch.Tensor, faces: torch.Tensor, views: Views, size: int, batch_size: int = 16, fill_back: bool = True
) -> torch.Tensor:
    """``[N, S, S]`` long: the face seen at each pixel centre of each of the N cameras (-1: none),
    faces drawn from both sides (front faces only with ``fill_back=False``). Rendered as colours: each face's texture is its own index, unlit
    (ambient light 1), on a background of -1, so that the z-buffer's choice comes back exactly."""
    renderer = Renderer(
        image_size=size,
        anti_aliasing=False,
        fill_back=fill_back,
        light_intensity_ambient=1.0,
        light_intensity_directional=0.0,
        background_color=(-1.0, -1.0, -1.0),
    )
    index = torch.arange(len(faces), dtype=torch.float32, device=vertices.device)
    textures = index[:, None, None, None, None].expand(len(faces), 1, 1, 1, 3)
    return render_in_batches(renderer, vertices.detach().float(), faces, views, batch_size, textures)[:, 0].round().long()


def faces_to_carve(vertices: torch.Tensor, faces: torch.Tensor, views: Views, masks: torch.Tensor, margin: int) -> torch.Tensor:
    """``[F]`` bool: the faces :func:`faces_in_silhouette_holes` flags that some training view sees,
    except those whose removal would uncover a pixel inside a training silhouette (``masks
    [N, S, S]``), a guard for fits far from converged. A web across an opening is seen through the
    opening and covers nothing of the target that the surface behind it does not cover too."""
    remove = faces_in_silhouette_holes(vertices, faces, views, masks, margin)
    if not bool(remove.any()):
        return remove
    size = masks.shape[-1]
    before = visible_faces(vertices, faces, views, size)
    # drawn from both sides, as the fit draws the open mesh from then on. A face whose removal leaves
    # a hole one can look into through it is not guarded: its pixel still shows the inside of the
    # far side. A front-faces-only render would guard it, but the web across the teapot's handle is
    # such a face (the template's front and back sheets): that guard carved none of its 39 faces.
    if bool(remove.all()):
        after = torch.zeros(masks.shape, device=masks.device)
    else:
        after = render_silhouettes(vertices.detach().float(), faces[~remove], views, size, fill_back=True, anti_aliasing=False)
    seen = torch.zeros_like(remove)
    seen[torch.unique(before[before >= 0])] = True
    lost = (before >= 0) & masks & (after < 0.5)
    remove[torch.unique(before[lost])] = False
    return remove & seen


def without_faces(vertices: torch.Tensor, faces: torch.Tensor, remove: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mesh ``vertices [V, 3]``, ``faces [F, 3]`` without the faces flagged in ``remove [F]``
    and without the vertices no remaining face uses: ``([V', 3], [F', 3])``, order kept."""
    kept = faces[~remove]
    used = torch.zeros(len(vertices), dtype=torch.bool, device=vertices.device)
    used[kept.reshape(-1)] = True
    renumber = torch.cumsum(used.long(), 0) - 1
    return vertices.detach()[used], renumber[kept]
