"""Camera view sets: the fixed training views, the held-out views, and cameras given per image.

A :class:`Views` holds N cameras of one of two kinds, matching the renderer's camera modes:

- ``look_at``: an eye position ``[N, 3]`` looking at the origin (up = +y), with a viewing half-angle
  ``[N]`` in degrees (the renderer's ``viewing_angle``, 30 by default);
- ``projection``: pinhole cameras ``K [N, 3, 3]``, ``R [N, 3, 3]``, ``t [N, 3]``, ``dist [N, 5]``,
  with K expressed for an image of size 1 (``orig_size = 1``: K divided by the image size), so that
  cameras for images of different sizes can share a batch.

Views of the two kinds are merged by converting ``look_at`` cameras to ``projection`` ones
(:func:`look_at_to_projection`), which renders the same image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from meshopt_cli.render import DEFAULT_DISTANCE, Renderer, get_points_from_angles

DISTANCE = DEFAULT_DISTANCE  # the paper's camera distance (the renderer's default eye, rounded)
ELEVATION = 30.0  # the paper's training elevation
VIEWING_ANGLE = 30.0  # the renderer's default half viewing angle
# Held-out views: azimuths between the training ones, and elevations other than the training
# elevation, above and below it.
HELDOUT_COUNT = 12
HELDOUT_ELEVATIONS = (15.0, 45.0, 20.0, 55.0, 10.0, 40.0)


@dataclass
class Views:
    """N cameras (see the module docstring). ``labels``: one short text per camera (for sheets)."""

    eyes: torch.Tensor | None = None  # [N, 3] (look_at)
    angles: torch.Tensor | None = None  # [N] degrees (look_at)
    K: torch.Tensor | None = None  # [N, 3, 3] for orig_size 1 (projection)
    R: torch.Tensor | None = None  # [N, 3, 3]
    t: torch.Tensor | None = None  # [N, 3]
    dist: torch.Tensor | None = None  # [N, 5]
    labels: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "look_at" if self.eyes is not None else "projection"

    def __len__(self) -> int:
        return int((self.eyes if self.eyes is not None else self.K).shape[0])

    def subset(self, index) -> "Views":
        """The cameras at ``index`` (a list or a LongTensor of positions)."""
        index = torch.as_tensor(index, dtype=torch.long)
        pick = lambda x: None if x is None else x[index.to(x.device)]  # noqa: E731
        return Views(
            pick(self.eyes),
            pick(self.angles),
            pick(self.K),
            pick(self.R),
            pick(self.t),
            pick(self.dist),
            [self.labels[i] for i in index.tolist()] if self.labels else [],
        )

    def to(self, device) -> "Views":
        move = lambda x: None if x is None else x.to(device)  # noqa: E731
        return Views(
            move(self.eyes), move(self.angles), move(self.K), move(self.R), move(self.t), move(self.dist), list(self.labels)
        )

    def as_projection(self) -> "Views":
        if self.kind == "projection":
            return self
        K, R, t = look_at_to_projection(self.eyes, self.angles)
        return Views(K=K, R=R, t=t, dist=torch.zeros(len(self), 5, dtype=K.dtype, device=K.device), labels=list(self.labels))

    @staticmethod
    def concat(views: list["Views"]) -> "Views":
        """One view set of several (converted to ``projection`` cameras when the kinds differ)."""
        if all(v.kind == "look_at" for v in views):
            return Views(
                eyes=torch.cat([v.eyes for v in views]),
                angles=torch.cat([v.angles for v in views]),
                labels=sum((v.labels for v in views), []),
            )
        views = [v.as_projection() for v in views]
        return Views(
            K=torch.cat([v.K for v in views]),
            R=torch.cat([v.R for v in views]),
            t=torch.cat([v.t for v in views]),
            dist=torch.cat([v.dist for v in views]),
            labels=sum((v.labels for v in views), []),
        )


def angle_views(azimuths, elevations, distances, viewing_angle: float = VIEWING_ANGLE, labels=None) -> Views:
    """``look_at`` cameras on spheres around the origin (degrees; lists or ``[N]`` tensors)."""
    az = torch.as_tensor(azimuths, dtype=torch.float32).reshape(-1)
    el = torch.as_tensor(elevations, dtype=torch.float32).reshape(-1)
    d = torch.as_tensor(distances, dtype=torch.float32).reshape(-1)
    az, el, d = torch.broadcast_tensors(az, el, d)
    eyes = get_points_from_angles(d, el, az)
    angles = torch.as_tensor(viewing_angle, dtype=torch.float32).reshape(-1).expand(len(az)).clone()
    if labels is None:
        labels = [f"az{a:g} el{e:g}" for a, e in zip(az.tolist(), el.tolist())]
    return Views(eyes=eyes, angles=angles, labels=list(labels))


def training_views(count: int = 24, elevation: float = ELEVATION, distance: float = DISTANCE) -> Views:
    """The paper's views: ``count`` azimuths every 360/count degrees from 0, at one elevation."""
    azimuths = [360.0 * k / count for k in range(count)]
    return angle_views(azimuths, elevation, distance)


def heldout_views(
    train_count: int = 24, count: int = HELDOUT_COUNT, distance: float = DISTANCE, elevations=HELDOUT_ELEVATIONS
) -> Views:
    """Views for evaluation only: ``count`` azimuths every 360/count degrees, shifted by half a
    training step (so, for the default 24 and 12, half-way between two training azimuths), at
    elevations cycling through ``elevations`` (none is the training elevation)."""
    step = 360.0 / max(train_count, 1)
    azimuths = [(360.0 * k / count + step / 2) % 360.0 for k in range(count)]
    elevation = [elevations[k % len(elevations)] for k in range(count)]
    return angle_views(azimuths, elevation, distance)


def look_at_to_projection(eyes: torch.Tensor, angles: torch.Tensor):
    """``look_at`` cameras -> ``(K [N,3,3], R [N,3,3], t [N,3])`` for ``orig_size = 1`` that give the
    same screen coordinates through ``camera.projection`` (up to its 1e-9 in the division).

    R's rows are the look_at frame's x, y, z axes and t = -R eye; K has focal 1/(2 tan(angle)) and the
    principal point at the image centre, with a negative y focal because ``projection`` flips image
    rows (OpenCV's v grows downwards) while look_at keeps y up."""
    z = torch.nn.functional.normalize(-eyes, dim=-1, eps=1e-5)
    up = torch.tensor([0.0, 1.0, 0.0], dtype=eyes.dtype, device=eyes.device).expand_as(eyes)
    x = torch.nn.functional.normalize(torch.cross(up, z, dim=-1), dim=-1, eps=1e-5)
    y = torch.nn.functional.normalize(torch.cross(z, x, dim=-1), dim=-1, eps=1e-5)
    R = torch.stack((x, y, z), dim=1)
    t = -(R @ eyes[:, :, None])[:, :, 0]
    focal = 1.0 / (2.0 * torch.tan(angles * (math.pi / 180.0)))
    K = torch.zeros(len(eyes), 3, 3, dtype=eyes.dtype, device=eyes.device)
    K[:, 0, 0] = focal
    K[:, 1, 1] = -focal
    K[:, 0, 2] = 0.5
    K[:, 1, 2] = 0.5
    K[:, 2, 2] = 1.0
    return K, R, t


def silhouette_renderer(
    image_size: int, fill_back: bool = True, views: Views | None = None, anti_aliasing: bool = True
) -> Renderer:
    """A renderer for silhouettes of ``views``' kind: anti-aliased (2×2 samples per pixel, the
    renderer's default) or, with ``anti_aliasing=False``, one sample at each pixel's centre (binary)."""
    mode = "look_at" if views is None or views.kind == "look_at" else "projection"
    return Renderer(image_size=image_size, anti_aliasing=anti_aliasing, fill_back=fill_back, camera_mode=mode)


def render_silhouettes(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    views: Views,
    image_size: int,
    fill_back: bool = True,
    batch_size: int = 16,
    anti_aliasing: bool = True,
) -> torch.Tensor:
    """Alpha masks of one mesh seen by every camera of ``views``.

    Args:
        vertices: ``[V, 3]`` float32 (gradients flow through when it requires them).
        faces: ``[F, 3]`` int.
        views: N cameras on ``vertices``' device.
        anti_aliasing: 2×2 samples per pixel (alpha in {0, ¼, ½, ¾, 1}); False: the pixel centre's
            coverage only (alpha 0 or 1, the evaluator's binary masks).
    Returns:
        ``[N, S, S]`` in [0, 1], row 0 at the top.
    """
    renderer = silhouette_renderer(image_size, fill_back, views, anti_aliasing)
    return render_in_batches(renderer, vertices, faces, views, batch_size)


def render_in_batches(
    renderer: Renderer,
    vertices: torch.Tensor,
    faces: torch.Tensor,
    views: Views,
    batch_size: int = 16,
    textures: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`render_batch` over every camera of ``views``, ``batch_size`` cameras at a time (which
    bounds the renderer's per-call buffers): ``[N, S, S]`` silhouettes, or ``[N, 3, S, S]`` colours
    with ``textures``."""
    out = []
    for first in range(0, len(views), batch_size):
        index = list(range(first, min(first + batch_size, len(views))))
        out.append(render_batch(renderer, vertices, faces, views.subset(index), textures))
    return torch.cat(out)


def render_batch(
    renderer: Renderer, vertices: torch.Tensor, faces: torch.Tensor, views: Views, textures: torch.Tensor | None = None
) -> torch.Tensor:
    """Silhouettes ``[B, S, S]`` of one mesh (``[V, 3]``, ``[F, 3]``) from the B cameras of ``views``;
    with ``textures`` (``[F, T, T, T, 3]``, shared by every view) its colours ``[B, 3, S, S]`` instead."""
    count = len(views)
    batch_vertices = vertices[None].expand(count, -1, -1)
    batch_faces = faces[None].expand(count, -1, -1)
    mode = "silhouettes" if textures is None else "rgb"
    colours = {} if textures is None else {"textures": textures[None].expand(count, *textures.shape)}
    if views.kind == "look_at":
        renderer.camera_mode = "look_at"
        renderer.eye = views.eyes
        angles = views.angles
        renderer.viewing_angle = float(angles[0]) if bool((angles == angles[0]).all()) else angles
        return renderer(batch_vertices, batch_faces, mode=mode, **colours)
    renderer.camera_mode = "projection"
    return renderer(
        batch_vertices,
        batch_faces,
        mode=mode,
        **colours,
        K=views.K,
        R=views.R,
        t=views.t[:, None, :],
        dist_coeffs=views.dist,
        orig_size=1.0,
    )
