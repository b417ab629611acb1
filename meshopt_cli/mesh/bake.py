"""Texture cubes -> texture images: baking into a mesh's own UV layout, or a per-face atlas.

Images here are in "uv space": ``[H, W, 3]`` float32 with row 0 at v = 0 (the bottom of the image
file; flip rows before writing). Pixel (x, y) sits at UV ``(x / (W - 1), y / (H - 1))``, the
convention the loader (``cubes.sample_image``) reads with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from meshopt_cli.mesh.cubes import read_cubes, read_cubes_pattern, wrap

# ----------------------------------------------------------------------------- own UV layout


def _dilate(image: np.ndarray, filled: np.ndarray, steps: int) -> None:
    """Grow the filled region of ``image`` by ``steps`` pixels (in place): each unfilled pixel with
    filled 8-neighbours takes their mean. Keeps bilinear reads at island borders clean."""
    h, w = filled.shape
    for _ in range(steps):
        acc = np.zeros(image.shape, np.float64)
        cnt = np.zeros((h, w), np.int32)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dx == 0 and dy == 0:
                    continue
                ys_dst = slice(max(dy, 0), h + min(dy, 0))
                xs_dst = slice(max(dx, 0), w + min(dx, 0))
                ys_src = slice(max(-dy, 0), h + min(-dy, 0))
                xs_src = slice(max(-dx, 0), w + min(-dx, 0))
                src_filled = filled[ys_src, xs_src]
                acc[ys_dst, xs_dst] += image[ys_src, xs_src] * src_filled[..., None]
                cnt[ys_dst, xs_dst] += src_filled
        grow = (~filled) & (cnt > 0)
        if not grow.any():
            break
        image[grow] = (acc[grow] / cnt[grow][:, None]).astype(image.dtype)
        filled |= grow


def bake_to_uv_layout(
    cubes: np.ndarray,
    face_uvs: np.ndarray,
    image_size: tuple[int, int],
    base_image: np.ndarray | None = None,
    wrapping: str = "repeat",
    dilate: int = 2,
    max_candidates: int = 2_000_000,
) -> np.ndarray:
    """Bake cubes [F, T, T, T, 3] into an image of ``image_size`` (H, W) through the faces' own UVs
    ``face_uvs`` [F, 3, 2]: every pixel centre inside a face's UV triangle gets the colour the
    rasterizer would read from that face's cube at the pixel's barycentric position. Faces too small
    to contain a pixel centre still write their centroid's pixel. Pixels no face covers keep
    ``base_image`` ([H, W, 3], row 0 = top, as in the file; grey 0.5 without one), except a border of
    ``dilate`` pixels around the islands. Returns [H, W, 3] float32, row 0 = top (file order)."""
    h, w = int(image_size[0]), int(image_size[1])
    f, t = cubes.shape[0], cubes.shape[1]
    flat = np.asarray(cubes, np.float32).reshape(f, t**3, 3)
    if base_image is not None and base_image.shape[:2] == (h, w):
        image = np.ascontiguousarray(base_image[::-1, :, :3], dtype=np.float32).copy()
    else:
        image = np.full((h, w, 3), 0.5, np.float32)
    filled = np.zeros((h, w), bool)
    scale = np.array([max(w - 1, 1), max(h - 1, 1)], np.float64)
    pts = np.asarray(face_uvs, np.float64) * scale  # [F, 3, 2] pixel space (unwrapped)
    x_lo = np.ceil(pts[..., 0].min(1) - 1e-9).astype(np.int64)
    x_hi = np.floor(pts[..., 0].max(1) + 1e-9).astype(np.int64)
    y_lo = np.ceil(pts[..., 1].min(1) - 1e-9).astype(np.int64)
    y_hi = np.floor(pts[..., 1].max(1) + 1e-9).astype(np.int64)
    nx = np.maximum(x_hi - x_lo + 1, 0)
    ny = np.maximum(y_hi - y_lo + 1, 0)
    # guard against absurd UVs (a face spanning thousands of tiles): clip its box
    big = nx * ny > 16 * (w * h + 1)
    nx[big] = np.minimum(nx[big], 4 * w)
    ny[big] = np.minimum(ny[big], 4 * h)
    area = nx * ny
    p0, p1, p2 = pts[:, 0], pts[:, 1], pts[:, 2]
    det = (p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (p2[:, 0] - p0[:, 0]) * (p1[:, 1] - p0[:, 1])
    valid = np.isfinite(det) & (np.abs(det) > 1e-12)
    area[~valid] = 0
    wrote = np.zeros(f, bool)

    def put(face_ids, px, py, bary):
        colours = read_cubes(flat, face_ids, bary)
        uv = np.stack([px / scale[0], py / scale[1]], axis=1)
        wrapped, outside = wrap(uv, wrapping)
        keep = np.ones(len(px), bool) if outside is None else ~outside
        xi = np.clip(np.rint(wrapped[keep, 0] * scale[0]), 0, w - 1).astype(np.int64)
        yi = np.clip(np.rint(wrapped[keep, 1] * scale[1]), 0, h - 1).astype(np.int64)
        image[yi, xi] = colours[keep]
        filled[yi, xi] = True
        wrote[face_ids[keep]] = True

    order = np.flatnonzero(area > 0)
    cum = np.cumsum(area[order])
    start = 0
    while start < len(order):
        base = cum[start - 1] if start else 0
        stop = max(int(np.searchsorted(cum, base + max_candidates, side="right")), start + 1)
        faces = order[start:stop]
        counts = area[faces]
        face_ids = np.repeat(faces, counts)
        local = np.arange(len(face_ids)) - np.repeat(np.cumsum(counts) - counts, counts)
        px = (x_lo[face_ids] + local % nx[face_ids]).astype(np.float64)
        py = (y_lo[face_ids] + local // nx[face_ids]).astype(np.float64)
        a, b, c = p0[face_ids], p1[face_ids], p2[face_ids]
        d = det[face_ids]
        w1 = ((px - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (py - a[:, 1])) / d
        w2 = ((b[:, 0] - a[:, 0]) * (py - a[:, 1]) - (px - a[:, 0]) * (b[:, 1] - a[:, 1])) / d
        w0 = 1.0 - w1 - w2
        inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
        if inside.any():
            bary = np.clip(np.stack([w0, w1, w2], axis=1)[inside], 0.0, None)
            bary /= bary.sum(axis=1, keepdims=True)
            put(face_ids[inside], px[inside], py[inside], bary)
        start = stop
    # faces that cover no pixel centre: write their centroid's pixel where still free
    lonely = np.flatnonzero(~wrote & np.all(np.isfinite(pts), axis=(1, 2)))
    if len(lonely):
        centre = pts[lonely].mean(axis=1)
        px, py = np.rint(centre[:, 0]), np.rint(centre[:, 1])
        uv = np.stack([px / scale[0], py / scale[1]], axis=1)
        wrapped, _ = wrap(uv, wrapping)
        xi = np.clip(np.rint(wrapped[:, 0] * scale[0]), 0, w - 1).astype(np.int64)
        yi = np.clip(np.rint(wrapped[:, 1] * scale[1]), 0, h - 1).astype(np.int64)
        free = ~filled[yi, xi]
        if free.any():
            colours = read_cubes(flat, lonely[free], np.full((int(free.sum()), 3), 1.0 / 3.0))
            image[yi[free], xi[free]] = colours
            filled[yi[free], xi[free]] = True
    _dilate(image, filled, dilate)
    return np.ascontiguousarray(image[::-1])


# ----------------------------------------------------------------------------- per-face atlas


@dataclass(frozen=True)
class AtlasLayout:
    """Geometry of a per-face atlas (uv-space pixels, y up).

    Each face owns a cell of ``cell_w`` x ``cell_h`` pixels at column ``f % cols``, row
    ``f // cols``. In the cell, the face's UV triangle has its corners at pixel centres
    (0, 0), (L, 0), (0, L) with ``L = (T - 1) * scale``, so the cube samples on the face's plane
    (i + j + k = T - 1) fall exactly on pixels (j scale, k scale); the rest of the (L+1)^2 square
    holds the colour of the nearest point of the triangle. Above the square, a strip of T rows x
    T^2 columns stores the raw cube: row i, column j T + k holds sample (i, j, k), so that
    ``load_obj`` gives the cube back exactly (within 8-bit rounding).
    """

    texture_size: int
    scale: int
    cols: int
    rows: int

    @property
    def leg(self) -> int:
        return (self.texture_size - 1) * self.scale

    @property
    def cell_w(self) -> int:
        return max(self.leg + 1, self.texture_size**2)

    @property
    def cell_h(self) -> int:
        return self.leg + 1 + self.texture_size

    @property
    def width(self) -> int:
        return max(self.cols * self.cell_w, 2)

    @property
    def height(self) -> int:
        return max(self.rows * self.cell_h, 2)


def atlas_layout(num_faces: int, texture_size: int, max_pixels: int = 1 << 24) -> AtlasLayout:
    """A roughly square atlas for ``num_faces`` cubes of size T; the triangle scale starts at T + 1
    (legs of T^2 - 1 pixels) and shrinks (down to 1) to keep the image under ``max_pixels``."""
    t = int(texture_size)
    n = max(int(num_faces), 1)
    scale = t + 1
    while True:
        probe = AtlasLayout(t, scale, 1, 1)
        if scale == 1 or n * probe.cell_w * probe.cell_h <= max_pixels:
            break
        scale -= 1
    cols = max(1, int(np.ceil(np.sqrt(n * probe.cell_h / probe.cell_w))))
    rows = int(np.ceil(n / cols))
    return AtlasLayout(t, scale, cols, rows)


def _square_weights(layout: AtlasLayout) -> np.ndarray:
    """[(L+1)^2, 3] barycentric weights of the pixels of a cell's square (row-major, y up);
    pixels beyond the hypotenuse get the nearest point of the triangle."""
    leg = layout.leg
    if leg == 0:
        return np.full((1, 3), 1.0 / 3.0)
    y, x = np.mgrid[0 : leg + 1, 0 : leg + 1].astype(np.float64)
    w1, w2 = x.ravel() / leg, y.ravel() / leg
    over = np.maximum(w1 + w2 - 1.0, 0.0) / 2.0
    w1, w2 = np.clip(w1 - over, 0, 1), np.clip(w2 - over, 0, 1)
    w = np.stack([1.0 - w1 - w2, w1, w2], axis=1)
    w = np.clip(w, 0.0, None)
    return w / w.sum(axis=1, keepdims=True)


def pack_atlas(
    cubes: np.ndarray, layout: AtlasLayout | None = None, chunk: int = 2048
) -> tuple[np.ndarray, np.ndarray, AtlasLayout]:
    """Per-face atlas of cubes [F, T, T, T, 3]: returns (image [H, W, 3] float32, row 0 = top as
    in the file, face_uvs [F, 3, 2] float64, layout)."""
    f, t = cubes.shape[0], cubes.shape[1]
    layout = layout or atlas_layout(f, t)
    flat = np.clip(np.asarray(cubes, np.float32).reshape(f, t**3, 3), 0.0, 1.0)
    image = np.full((layout.height, layout.width, 3), 0.5, np.float32)
    side = layout.leg + 1
    weights = _square_weights(layout)
    ids = np.arange(f)
    ox = (ids % layout.cols) * layout.cell_w
    oy = (ids // layout.cols) * layout.cell_h
    sy, sx = np.mgrid[0:side, 0:side]
    ry, rx = np.mgrid[0:t, 0 : t * t]
    for lo in range(0, f, chunk):
        sl = slice(lo, lo + chunk)
        colours = read_cubes_pattern(flat[sl], weights)  # [n, side^2, 3]
        yy = oy[sl, None] + sy.ravel()[None, :]
        xx = ox[sl, None] + sx.ravel()[None, :]
        image[yy, xx] = colours
        yy = oy[sl, None] + side + ry.ravel()[None, :]
        xx = ox[sl, None] + rx.ravel()[None, :]
        image[yy, xx] = flat[sl]  # row i, column j T + k  ==  flat index i T^2 + j T + k
    scale = np.array([layout.width - 1, layout.height - 1], np.float64)
    corners = np.array([[0, 0], [layout.leg, 0], [0, layout.leg]], np.float64)
    origin = np.stack([ox, oy], axis=1).astype(np.float64)
    face_uvs = (origin[:, None, :] + corners[None]) / scale
    return np.ascontiguousarray(image[::-1]), face_uvs, layout


def unpack_atlas(
    image: np.ndarray, face_uvs: np.ndarray, texture_size: int, scale: int, tolerance: float = 1.5 / 255.0
) -> tuple[np.ndarray, np.ndarray]:
    """Read cubes back from a ``pack_atlas`` image ([H, W, 3], row 0 = top) for faces whose UVs
    ``face_uvs`` [n, 3, 2] sit exactly on a cell of that layout and whose stored cube agrees with
    the visible triangle (a user who painted on the triangle gets it sampled instead). Returns
    (cubes [n, T, T, T, 3] float32, ok [n] bool); rows with ok False are left zero."""
    t, s = int(texture_size), int(scale)
    leg = (t - 1) * s
    image_uv = image[::-1]
    h, w = image_uv.shape[:2]
    n = len(face_uvs)
    cubes = np.zeros((n, t**3, 3), np.float32)
    if n == 0 or w < 2 or h < 2:
        return cubes.reshape(n, t, t, t, 3), np.zeros(n, bool)
    pix = np.asarray(face_uvs, np.float64) * np.array([w - 1, h - 1], np.float64)
    origin = np.rint(pix[:, 0])
    expect = origin[:, None, :] + np.array([[0, 0], [leg, 0], [0, leg]], np.float64)[None]
    ok = np.all(np.isfinite(pix), axis=(1, 2)) & np.all(np.abs(pix - expect) < 1e-2, axis=(1, 2))
    ox = origin[:, 0].astype(np.int64)
    oy = origin[:, 1].astype(np.int64)
    ok &= (ox >= 0) & (oy >= 0) & (ox + max(leg + 1, t * t) <= w) & (oy + leg + 1 + t <= h)
    idx = np.flatnonzero(ok)
    if len(idx) == 0:
        return cubes.reshape(n, t, t, t, 3), ok
    ry, rx = np.mgrid[0:t, 0 : t * t]
    stored = image_uv[oy[idx, None] + leg + 1 + ry.ravel()[None, :], ox[idx, None] + rx.ravel()[None, :]]
    # consistency: the on-plane samples must match the triangle's lattice pixels
    lattice = [(t - 1 - j - k, j, k) for j in range(t) for k in range(t - j)]
    flat_ids = np.array([i * t * t + j * t + k for i, j, k in lattice])
    px = np.array([j * s for _, j, _ in lattice])
    py = np.array([k * s for _, _, k in lattice])
    visible = image_uv[oy[idx, None] + py[None, :], ox[idx, None] + px[None, :]]
    agree = np.all(np.abs(visible - stored[:, flat_ids]) <= tolerance, axis=(1, 2))
    ok[idx[~agree]] = False
    cubes[idx[agree]] = stored[agree]
    return cubes.reshape(n, t, t, t, 3), ok
