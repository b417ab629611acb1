"""Per-face texture cubes <-> points of a face (the renderer's texture representation).

A face's texture is a cube ``[T, T, T, 3]`` of RGB samples indexed by barycentric coordinates:

* Loading (image -> cube): sample ``(i, j, k)`` sits at barycentric weights ``(i, j, k) / (T - 1)``
  renormalised to sum 1 (the centroid for ``(0, 0, 0)``; the centroid for ``T = 1``). The point
  ``w0 uv0 + w1 uv1 + w2 uv2`` of the face's UV triangle is wrapped, mapped to image pixels as
  ``(u (W - 1), v (H - 1))`` with the image's v axis flipped (row 0 of the file is v = 1), and
  the image is read bilinearly there.

  The reference implementation (neural_renderer's ``load_textures`` kernel) renormalises only
  when the weights sum past 1; below 1 it uses the raw weights, which reads the image at a point
  shrunk towards UV (0, 0) instead of on the face (``(0, 0, 0)`` always reads pixel (0, 0)). We
  renormalise always (docs/design.md, "Texture cubes"), which equals the reference for every sample whose
  weights sum to >= 1 and puts the others on the face where they belong. The reference also wraps
  each corner's UV before interpolating (its REPEAT uses ``fmod(uv, 2)``); we wrap the
  interpolated point, as a GPU sampler does (identical for UVs inside [0, 1]).

* Reading (cube -> colour at a point, as the rasterizer does): continuous index ``w_k (T - 1)`` per
  axis, clamped to ``[0, T - 1 - eps]``, trilinear between floor and floor + 1.

Shapes: ``T`` = texture size; cubes flattened as ``[F, T**3, 3]`` use the flat index
``i T^2 + j T + k``.
"""

from __future__ import annotations

import numpy as np

WRAPPINGS = ("repeat", "mirrored_repeat", "clamp_to_edge", "clamp_to_border")
_ALIASES = {
    "mirror": "mirrored_repeat",
    "mirrored": "mirrored_repeat",
    "mirror_repeat": "mirrored_repeat",
    "clamp": "clamp_to_edge",
    "edge": "clamp_to_edge",
    "border": "clamp_to_border",
}
_EPS = 1e-5
#: Points :func:`sample_cubes` samples at once (about 32 bytes of scratch each: 32 MB).
SAMPLES_PER_CHUNK = 1 << 20


def canonical_wrapping(name: str) -> str:
    """``"REPEAT"``, ``"mirrored repeat"``, ``"clamp"``, ... -> one of WRAPPINGS (ValueError else)."""
    key = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in WRAPPINGS:
        raise ValueError(f"unknown texture wrapping {name!r}; expected one of {', '.join(WRAPPINGS)}")
    return key


def cube_weights(texture_size: int) -> np.ndarray:
    """[T**3, 3] float64 barycentric weights of the cube samples, flat index i T^2 + j T + k."""
    t = int(texture_size)
    if t < 1:
        raise ValueError(f"texture_size must be >= 1, got {texture_size}")
    if t == 1:
        return np.full((1, 3), 1.0 / 3.0)
    idx = np.indices((t, t, t)).reshape(3, -1).T.astype(np.float64)
    w = idx / (t - 1)
    total = w.sum(axis=1, keepdims=True)
    return np.where(total > 0, w / np.where(total > 0, total, 1.0), 1.0 / 3.0)


def wrap(coords: np.ndarray, wrapping: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Texture coordinates wrapped into [0, 1]; also a mask of points outside [0, 1] for
    ``clamp_to_border`` (None otherwise). 1.0 stays 1.0 under ``repeat`` (the last texel)."""
    if wrapping == "repeat":
        out = coords - np.floor(coords)
        out[(out == 0) & (coords > 0)] = 1.0
        return out, None
    if wrapping == "mirrored_repeat":
        t = np.mod(coords, 2.0)
        return np.where(t > 1.0, 2.0 - t, t), None
    if wrapping == "clamp_to_edge":
        return np.clip(coords, 0.0, 1.0), None
    outside = np.any((coords < 0.0) | (coords > 1.0), axis=-1)
    return np.clip(coords, 0.0, 1.0), outside


def _image_tensor(image_uv: np.ndarray):
    """[1, 3, H, W] float32 torch tensor of an [H, W, 3] image (for ``grid_sample``)."""
    import torch

    chw = np.ascontiguousarray(np.moveaxis(np.asarray(image_uv, np.float32), 2, 0))
    return torch.from_numpy(chw)[None]


def _sample(image_tensor, uv: np.ndarray, wrapping: str, bilinear: bool) -> np.ndarray:
    import torch
    from torch.nn.functional import grid_sample

    wrapped, outside = wrap(np.asarray(uv), wrapping)
    # align_corners=True maps grid -1 / +1 to the centres of the first / last pixel, i.e. pixel
    # position u (W - 1): the reference convention. (grid_sample is ~4x faster than numpy here.)
    grid = torch.from_numpy(np.asarray(wrapped * 2 - 1, np.float32)).reshape(1, 1, -1, 2)
    with torch.no_grad():
        out = grid_sample(
            image_tensor, grid, mode="bilinear" if bilinear else "nearest", padding_mode="border", align_corners=True
        )
    out = out[0, :, 0].T.numpy()
    if outside is not None:
        out = out.copy()
        out[outside] = 0.0
    return out


def sample_image(image_uv: np.ndarray, uv: np.ndarray, wrapping: str = "repeat", bilinear: bool = True) -> np.ndarray:
    """Colours [N, 3] float32 of ``image_uv`` ([H, W, 3], row 0 = v = 0, i.e. the file flipped) at
    texture coordinates ``uv`` [N, 2] (wrapped first); pixel position ``(u (W - 1), v (H - 1))``,
    read bilinearly (or from the nearest pixel)."""
    return _sample(_image_tensor(image_uv), uv, canonical_wrapping(wrapping), bilinear)


def sample_cubes(
    image: np.ndarray,
    face_uvs: np.ndarray,
    texture_size: int,
    wrapping: str = "repeat",
    bilinear: bool = True,
    samples: int = SAMPLES_PER_CHUNK,
) -> np.ndarray:
    """Texture cubes [n, T, T, T, 3] float32 of faces with UVs ``face_uvs`` [n, 3, 2] on ``image``
    ([H, W, 3] in [0, 1], row 0 = top as in the file).

    Faces are sampled a chunk at a time, about ``samples`` points per chunk (at least one face),
    so that the scratch arrays (the points, the sampling grid and its colours: about 32 bytes per
    point) stay near ``32 * samples`` bytes whatever T; the result is the same for any chunk."""
    t = int(texture_size)
    wrapping = canonical_wrapping(wrapping)
    weights = cube_weights(t).astype(np.float32)  # [S, 3]
    image_tensor = _image_tensor(image[::-1])
    n = len(face_uvs)
    out = np.empty((n, t**3, 3), np.float32)
    chunk = max(1, int(samples) // t**3)
    for lo in range(0, n, chunk):
        uvs = np.asarray(face_uvs[lo : lo + chunk], np.float32)
        points = np.matmul(weights, uvs).reshape(-1, 2)  # [n, S, 2]: sum_k w_sk uv_k
        out[lo : lo + chunk] = _sample(image_tensor, points, wrapping, bilinear).reshape(len(uvs), -1, 3)
    return out.reshape(n, t, t, t, 3)


def _axes(weights: np.ndarray, t: int):
    """Per axis: floor index, floor + 1 (clamped) and fraction of the continuous index w (T - 1),
    clamped to [0, T - 1 - eps] (the rasterizer's rule)."""
    pos = np.clip(np.asarray(weights, np.float32) * (t - 1), 0.0, max(t - 1 - _EPS, 0.0))
    lo = np.floor(pos)
    frac = pos - lo
    lo = lo.astype(np.int64)
    return lo, np.minimum(lo + 1, t - 1), frac


def _corners(lo, hi, frac, t):
    """The 8 trilinear corners: yields (flat cube index [...], weight [...])."""
    for a in (0, 1):
        for b in (0, 1):
            for c in (0, 1):
                i = hi[..., 0] if a else lo[..., 0]
                j = hi[..., 1] if b else lo[..., 1]
                k = hi[..., 2] if c else lo[..., 2]
                w = (
                    (frac[..., 0] if a else 1 - frac[..., 0])
                    * (frac[..., 1] if b else 1 - frac[..., 1])
                    * (frac[..., 2] if c else 1 - frac[..., 2])
                )
                yield (i * t + j) * t + k, w


def corner_table(weights: np.ndarray, texture_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The rasterizer's trilinear read at barycentric ``weights`` [..., 3]: flat cube indices
    [..., 8] and their interpolation weights [..., 8]."""
    t = int(texture_size)
    pairs = list(_corners(*_axes(weights, t), t))
    return np.stack([p[0] for p in pairs], axis=-1), np.stack([p[1] for p in pairs], axis=-1)


def read_cubes(cubes_flat: np.ndarray, face_ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Colours [N, 3] float32 read from the cubes of faces ``face_ids`` [N] (``cubes_flat``
    [F, T**3, 3]) at barycentric ``weights`` [N, 3], as the rasterizer reads them."""
    t = round(cubes_flat.shape[1] ** (1.0 / 3.0))
    lo, hi, frac = _axes(weights, t)
    base = np.asarray(face_ids, np.int64) * cubes_flat.shape[1]
    table = cubes_flat.reshape(-1, 3)
    out = np.zeros((len(base), 3), np.float32)
    for flat, w in _corners(lo, hi, frac, t):
        out += table[base + flat] * w[:, None]
    return out


def read_cubes_pattern(cubes_flat: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Colours [n, m, 3] of every cube of ``cubes_flat`` [n, T**3, 3] at the same ``m`` barycentric
    points ``weights`` [m, 3]."""
    t = round(cubes_flat.shape[1] ** (1.0 / 3.0))
    flat, wts = corner_table(weights, t)  # [m, 8]
    return np.einsum("mc,nmcx->nmx", wts, cubes_flat[:, flat])
