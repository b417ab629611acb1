"""Camera transforms, compatible with the paper's reference implementation.

All functions take batched vertices ``[B, N, 3]`` (float32, world or camera units) and
return ``[B, N, 3]``. Angles are in degrees unless stated otherwise.
"""

from __future__ import annotations

import math
from typing import Sequence, Union

import torch
import torch.nn.functional as F

from meshopt_cli.defaults import DEFAULT_DISTANCE  # noqa: F401 - the camera's default, exported by render

VectorLike = Union[torch.Tensor, Sequence[float]]

_NORMALIZE_EPS = 1e-5


def _batched_vector(value: VectorLike, batch_size: int, like: torch.Tensor, name: str) -> torch.Tensor:
    """Return ``value`` as a ``[B, 3]`` tensor on ``like``'s device and dtype."""
    vector = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if vector.ndim == 1:
        vector = vector[None, :]
    if vector.ndim != 2 or vector.shape[-1] != 3 or vector.shape[0] not in (1, batch_size):
        raise ValueError(f"{name} must have shape [3] or [{batch_size}, 3], got {list(vector.shape)}")
    return vector.expand(batch_size, 3)


def _usable_up(z_axis: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """``up`` ``[B, 3]``, except where the view direction ``z_axis`` is parallel to it (an eye on the
    up axis: elevation ±90°), where ``up × z`` gives no frame. There ``x × up`` (``y × up`` if up
    lies along x), signed against ``z · up``, takes its place: for the default up (0, 1, 0) that
    is (0, 0, ±1), the frame a turntable at azimuth 0 tends to as its elevation tends to ±90°."""
    up_norm = torch.linalg.vector_norm(up, dim=-1)
    cross = torch.linalg.vector_norm(torch.cross(up, z_axis, dim=-1), dim=-1)
    parallel = cross <= 1e-6 * up_norm * torch.linalg.vector_norm(z_axis, dim=-1)
    # no `if parallel.any()`: that would wait for a GPU at every render; these are [B, 3] ops
    x_world = torch.tensor([1.0, 0.0, 0.0], dtype=up.dtype, device=up.device).expand_as(up)
    y_world = torch.tensor([0.0, 1.0, 0.0], dtype=up.dtype, device=up.device).expand_as(up)
    along_x = (up[..., 0].abs() >= 0.9 * up_norm)[:, None]
    side = F.normalize(torch.cross(torch.where(along_x, y_world, x_world), up, dim=-1), eps=_NORMALIZE_EPS)
    fallback = -torch.sign((z_axis * up).sum(-1, keepdim=True)) * side
    return torch.where(parallel[:, None], fallback, up)


def _rotate_into_frame(vertices: torch.Tensor, eye: torch.Tensor, z_axis: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Express ``vertices`` in the frame at ``eye`` whose forward axis is ``z_axis``."""
    up = _usable_up(z_axis, up)
    x_axis = F.normalize(torch.cross(up, z_axis, dim=-1), eps=_NORMALIZE_EPS)
    y_axis = F.normalize(torch.cross(z_axis, x_axis, dim=-1), eps=_NORMALIZE_EPS)
    rotation = torch.stack((x_axis, y_axis, z_axis), dim=1)  # [B, 3, 3], rows are the axes
    return torch.matmul(vertices - eye[:, None, :], rotation.transpose(1, 2))


def look_at(vertices: torch.Tensor, eye: VectorLike, at: VectorLike = (0, 0, 0), up: VectorLike = (0, 1, 0)) -> torch.Tensor:
    """Camera at ``eye`` looking at ``at``: z = normalize(at - eye), x = normalize(up x z), y = z x x.

    Args:
        vertices: ``[B, N, 3]`` world coordinates.
        eye, at, up: ``[3]`` or ``[B, 3]``.
    Returns:
        ``[B, N, 3]`` camera coordinates, z along the viewing direction.
    """
    batch_size = vertices.shape[0]
    eye_t = _batched_vector(eye, batch_size, vertices, "eye")
    at_t = _batched_vector(at, batch_size, vertices, "at")
    up_t = _batched_vector(up, batch_size, vertices, "up")
    z_axis = F.normalize(at_t - eye_t, eps=_NORMALIZE_EPS)
    return _rotate_into_frame(vertices, eye_t, z_axis, up_t)


def look(vertices: torch.Tensor, eye: VectorLike, direction: VectorLike = (0, 0, 1), up: VectorLike = (0, 1, 0)) -> torch.Tensor:
    """Camera at ``eye`` looking along ``direction`` (same frame as :func:`look_at`)."""
    batch_size = vertices.shape[0]
    eye_t = _batched_vector(eye, batch_size, vertices, "eye")
    direction_t = _batched_vector(direction, batch_size, vertices, "direction")
    up_t = _batched_vector(up, batch_size, vertices, "up")
    z_axis = F.normalize(direction_t, eps=_NORMALIZE_EPS)
    return _rotate_into_frame(vertices, eye_t, z_axis, up_t)


def perspective(vertices: torch.Tensor, angle: float = 30.0) -> torch.Tensor:
    """Perspective division: x' = x / (z tan(angle)), y' = y / (z tan(angle)), z kept.

    ``angle`` is the half viewing angle in degrees (a float or a ``[B]`` tensor).
    """
    angle_t = torch.as_tensor(angle, dtype=vertices.dtype, device=vertices.device)
    width = torch.tan(angle_t * (math.pi / 180.0))
    if width.ndim == 1:
        width = width[:, None]
    z = vertices[..., 2]
    x = vertices[..., 0] / z / width
    y = vertices[..., 1] / z / width
    return torch.stack((x, y, z), dim=-1)


def _batched_matrix(value: torch.Tensor, batch_size: int, like: torch.Tensor, name: str, shape: tuple) -> torch.Tensor:
    matrix = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if matrix.ndim == len(shape):
        matrix = matrix[None]
    if tuple(matrix.shape[1:]) != shape or matrix.shape[0] not in (1, batch_size):
        raise ValueError(
            f"{name} must have shape {list(shape)} or [{batch_size}, {', '.join(map(str, shape))}], got {list(matrix.shape)}"
        )
    return matrix.expand(batch_size, *shape)


def projection(
    vertices: torch.Tensor,
    K: torch.Tensor,
    R: torch.Tensor,
    t: torch.Tensor,
    dist_coeffs: torch.Tensor | None = None,
    orig_size: float = 1024,
    eps: float = 1e-9,
) -> torch.Tensor:
    """Pinhole projection with OpenCV-style distortion, mapped to NDC.

    v <- v R^T + t; x' = x/(z+eps), y' = y/(z+eps); radial (k1, k2, k3) and tangential (p1, p2)
    distortion; (u, v) = K (x'', y'', 1); v <- orig_size - v; u, v mapped from [0, orig_size]
    to [-1, 1]; z kept.

    Args:
        vertices: ``[B, N, 3]``.
        K, R: ``[B, 3, 3]`` or ``[3, 3]``. t: ``[B, 1, 3]``, ``[B, 3]`` or ``[3]``.
        dist_coeffs: ``[B, 5]`` or ``[5]`` as (k1, k2, p1, p2, k3); zeros when None.
        orig_size: width/height in pixels of the image K refers to.
    """
    batch_size = vertices.shape[0]
    K_t = _batched_matrix(K, batch_size, vertices, "K", (3, 3))
    R_t = _batched_matrix(R, batch_size, vertices, "R", (3, 3))
    t_t = torch.as_tensor(t, dtype=vertices.dtype, device=vertices.device).reshape(-1, 3)
    if t_t.shape[0] not in (1, batch_size):
        raise ValueError(
            f"t must have shape [3], [{batch_size}, 3] or [{batch_size}, 1, 3], got {list(torch.as_tensor(t).shape)}"
        )
    t_t = t_t.expand(batch_size, 3)
    if dist_coeffs is None:
        dist = torch.zeros(batch_size, 5, dtype=vertices.dtype, device=vertices.device)
    else:
        dist = torch.as_tensor(dist_coeffs, dtype=vertices.dtype, device=vertices.device).reshape(-1, 5)
        if dist.shape[0] not in (1, batch_size):
            raise ValueError(f"dist_coeffs must have shape [5] or [{batch_size}, 5], got {list(dist.shape)}")
        dist = dist.expand(batch_size, 5)

    vertices = torch.matmul(vertices, R_t.transpose(1, 2)) + t_t[:, None, :]
    x, y, z = vertices[..., 0], vertices[..., 1], vertices[..., 2]
    x_ = x / (z + eps)
    y_ = y / (z + eps)
    k1, k2, p1, p2, k3 = (dist[:, i : i + 1] for i in range(5))
    # r^2 directly: the reference takes sqrt and squares it back, whose gradient is NaN at r = 0.
    r2 = x_ * x_ + y_ * y_
    radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
    x__ = x_ * radial + 2 * p1 * x_ * y_ + p2 * (r2 + 2 * x_ * x_)
    y__ = y_ * radial + p1 * (r2 + 2 * y_ * y_) + 2 * p2 * x_ * y_
    homogeneous = torch.stack((x__, y__, torch.ones_like(z)), dim=-1)
    pixels = torch.matmul(homogeneous, K_t.transpose(1, 2))
    u, v = pixels[..., 0], pixels[..., 1]
    v = orig_size - v
    u = 2 * (u - orig_size / 2.0) / orig_size
    v = 2 * (v - orig_size / 2.0) / orig_size
    return torch.stack((u, v, z), dim=-1)


def get_points_from_angles(distance, elevation, azimuth, degrees: bool = True) -> torch.Tensor:
    """Camera position on a sphere: (d cos(el) sin(az), d sin(el), -d cos(el) cos(az)).

    Scalars give a ``[3]`` tensor; ``[B]`` tensors give ``[B, 3]``.
    """
    tensors = [x for x in (distance, elevation, azimuth) if isinstance(x, torch.Tensor)]
    like = tensors[0] if tensors else None
    dtype = like.dtype if like is not None and like.is_floating_point() else torch.float32
    device = like.device if like is not None else None
    distance, elevation, azimuth = (torch.as_tensor(x, dtype=dtype, device=device) for x in (distance, elevation, azimuth))
    if degrees:
        elevation = elevation * (math.pi / 180.0)
        azimuth = azimuth * (math.pi / 180.0)
    distance, elevation, azimuth = torch.broadcast_tensors(distance, elevation, azimuth)
    return torch.stack(
        (
            distance * torch.cos(elevation) * torch.sin(azimuth),
            distance * torch.sin(elevation),
            -distance * torch.cos(elevation) * torch.cos(azimuth),
        ),
        dim=-1,
    )
