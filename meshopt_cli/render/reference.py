"""Pure-PyTorch rasterizer: the oracle for the native kernels and the fallback backend.

Every backend implements this contract (``kernels/`` for native CPU/CUDA). All tensors live
on one device; floats are float32.

Inputs
    faces      ``[B, F, 9]``: per face (x0, y0, z0, x1, y1, z1, x2, y2, z2); x, y in NDC
               ([-1, 1] spans the image), z the camera-space depth.
    textures   ``[B, Ft, T, T, T, 3]`` per-face texture cubes, or None; Ft = F, or F / 2 with
               ``fill_back``: then faces Ft.. are the reversed copies (vertices 2, 1, 0) of faces
               0.. and read their original's cube transposed (``permute(0, 1, 4, 3, 2, 5)``).
    light      ``[B, F, 3]`` per-face light multiplying the sampled colour, or None (unlit).
    image_size S, the size of the maps (the internal size: 2x the output with anti-aliasing).

Maps (the "unflipped frame": row j holds y = (2j + 1 - S) / S, column i holds x = (2i + 1 - S) / S)
    face_index ``[B, S, S]`` int32, -1 on background
    weights    ``[B, S, S, 3]`` barycentric weights of the visible face (clamped, renormalised)
    depth      ``[B, S, S]`` perspective-correct depth, ``far`` on background
    rgb        ``[B, S, S, 3]`` light x trilinear texture sample, background colour on background
    alpha      ``[B, S, S]`` 1 on covered pixels, 0 elsewhere

Functions
    forward(faces, textures, S, near, far, eps, background, light, fill_back)
        -> (face_index, weights, depth, rgb, alpha)
    backward_xy(faces, face_index, image, grad_image, eps) -> grad_faces ``[B, F, 9]``
        the approximate gradient of docs/design.md; ``image``/``grad_image`` are ``[B, S, S, C]``
        (the rendered channels: alpha, rgb or alpha + rgb, alpha first); only x, y entries are
        non-zero.
    backward_depth(faces, face_index, grad_depth) -> grad_faces ``[B, F, 9]`` (exact)
    backward_textures(faces, face_index, weights, depth, grad_rgb, textures, light, fill_back, eps,
                      need_textures=True)
        -> (grad_textures ``[B, Ft, T, T, T, 3]`` or None when not needed, grad_light ``[B, F, 3]``
        or None without light)

A backend may also have the UV shading ops (``mip_pyramid``, ``mip_pyramid_backward_``,
``shade_uv``, ``shade_uv_backward``; docs/design.md, "The backend contract"). This one has not:
:func:`meshopt_cli.render.uv.shade` shades UV-textured pixels in PyTorch instead, which is the
oracle the native ones are tested against.

The float operations below are written in the same order as in ``kernels/rasterizer_math.h``
so that both backends pick the same visible face on every pixel, ties included.
"""

from __future__ import annotations

import torch

name = "reference"

# Bound on the (face, pixel) or (crossing, pixel) pairs materialised at once.
_CHUNK_PAIRS = 1 << 22


# ----------------------------------------------------------------------------- geometry


def pixel_coordinates(faces: torch.Tensor, image_size: int):
    """Vertex positions in pixel units, p = 0.5 (xy S + S - 1).

    Returns ``(px, py, pz, valid)``, each ``[..., 3]`` except ``valid [...]``: the face is
    finite and front-facing (counter-clockwise, area > 0 in the unflipped frame).
    """
    S = image_size
    px = 0.5 * (faces[..., 0::3] * S + S - 1)
    py = 0.5 * (faces[..., 1::3] * S + S - 1)
    pz = faces[..., 2::3]
    area = edge_function(px[..., 0], py[..., 0], px[..., 1], py[..., 1], px[..., 2], py[..., 2])
    valid = torch.isfinite(faces).all(dim=-1) & (area > 0)
    return px, py, pz, valid


def edge_function(ax, ay, bx, by, qx, qy):
    """(b - a) x (q - a): positive when q is left of a->b (counter-clockwise side)."""
    return (bx - ax) * (qy - ay) - (by - ay) * (qx - ax)


def pixel_range(low: torch.Tensor, high: torch.Tensor, image_size: int):
    """Integers in [low, high] clipped to [0, S - 1], as ``(first, count)`` int64 tensors."""
    first = torch.clamp(torch.ceil(low), 0, image_size)
    last = torch.clamp(torch.floor(high), -1, image_size - 1)
    count = torch.clamp(last - first + 1, min=0)
    count = torch.where(torch.isnan(count), torch.zeros_like(count), count)
    first = torch.where(torch.isnan(first), torch.zeros_like(first), first)
    return first.long(), count.long()


def barycentric_depth(px, py, pz, qx, qy, near: float, far: float):
    """Coverage, weights and depth of pixel centres ``(qx, qy)`` in faces ``px, py, pz [N, 3]``.

    Returns ``(inside [N], weights [N, 3], depth [N])``: ``inside`` means all three edge
    functions >= 0 and near < depth < far; weights are clamped to [0, 1] and renormalised;
    depth = 1 / sum(w_k / z_k).
    """
    x0, x1, x2 = px.unbind(-1)
    y0, y1, y2 = py.unbind(-1)
    area = edge_function(x0, y0, x1, y1, x2, y2)
    e0 = edge_function(x1, y1, x2, y2, qx, qy)
    e1 = edge_function(x2, y2, x0, y0, qx, qy)
    e2 = edge_function(x0, y0, x1, y1, qx, qy)
    covered = (e0 >= 0) & (e1 >= 0) & (e2 >= 0)
    raw = torch.stack((e0 / area, e1 / area, e2 / area), dim=-1)
    # clamp to [0, 1]; its gradient passes on the closed interval (pixel centres on an edge are
    # covered), whatever convention torch.clamp's backward follows
    w = torch.where((raw >= 0) & (raw <= 1), raw, raw.detach().clamp(0, 1))
    w_sum = w[:, 0] + w[:, 1] + w[:, 2]
    w = w / w_sum[:, None]
    inv_depth = w[:, 0] / pz[:, 0] + w[:, 1] / pz[:, 1] + w[:, 2] / pz[:, 2]
    depth = 1 / inv_depth
    inside = covered & (depth > near) & (depth < far)
    return inside, w, depth


def expand_ranges(first: torch.Tensor, count: torch.Tensor):
    """For ranges ``first[r] .. first[r] + count[r] - 1`` return ``(range id, value)`` per element."""
    owner = torch.repeat_interleave(torch.arange(len(count), device=count.device), count)
    starts = torch.cumsum(count, 0) - count
    offset = torch.arange(len(owner), device=count.device) - starts[owner]
    return owner, first[owner] + offset


def chunks_by_total(count: torch.Tensor, budget: int = _CHUNK_PAIRS):
    """Split rows into consecutive slices whose ``count`` sums stay near ``budget``."""
    total = torch.cumsum(count, 0)
    start, n = 0, len(count)
    while start < n:
        base = total[start - 1].item() if start > 0 else 0
        stop = int(torch.searchsorted(total, torch.tensor(base + budget, device=total.device), right=True).item())
        stop = min(max(stop, start + 1), n)
        yield slice(start, stop)
        start = stop


# ----------------------------------------------------------------------------- forward


def full_cubes(textures, fill_back: bool):
    """The cube of every rasterized face: with ``fill_back``, the reversed copies' transposed cubes."""
    if not fill_back:
        return textures
    return torch.cat((textures, textures.permute(0, 1, 4, 3, 2, 5)), dim=1)


def forward(
    faces, textures, image_size: int, near: float, far: float, eps: float, background, light=None, fill_back: bool = False
):
    """Rasterize: see the module docstring for shapes."""
    B, F = faces.shape[:2]
    S = image_size
    device = faces.device
    px, py, pz, valid = pixel_coordinates(faces, S)
    x_first, x_count = pixel_range(px.amin(-1), px.amax(-1), S)
    y_first, y_count = pixel_range(py.amin(-1), py.amax(-1), S)
    pairs = torch.where(valid, x_count * y_count, torch.zeros_like(x_count)).reshape(-1)

    best_depth = torch.full((B * S * S,), far, dtype=faces.dtype, device=device)
    best_face = torch.full((B * S * S,), -1, dtype=torch.long, device=device)
    for rows in chunks_by_total(pairs):
        face_id, k = expand_ranges(torch.zeros_like(pairs[rows]), pairs[rows])
        face_id = face_id + rows.start  # flat (b * F + f)
        width = x_count.reshape(-1)[face_id]
        qx = x_first.reshape(-1)[face_id] + k % width
        qy = y_first.reshape(-1)[face_id] + k // width
        inside, _, depth = barycentric_depth(
            px.reshape(-1, 3)[face_id],
            py.reshape(-1, 3)[face_id],
            pz.reshape(-1, 3)[face_id],
            qx.to(faces.dtype),
            qy.to(faces.dtype),
            near,
            far,
        )
        face_id, qx, qy, depth = face_id[inside], qx[inside], qy[inside], depth[inside]
        pixel = (face_id // F) * S * S + qy * S + qx
        # nearest depth per pixel, then the lowest face index among the nearest
        chunk_depth = torch.full_like(best_depth, float("inf")).scatter_reduce(0, pixel, depth, "amin")
        nearest = depth == chunk_depth[pixel]
        chunk_face = torch.full_like(best_face, F).scatter_reduce(0, pixel[nearest], face_id[nearest] % F, "amin")
        # chunks come in increasing face order: an equal depth keeps the earlier face
        closer = chunk_depth < best_depth
        best_depth = torch.where(closer, chunk_depth, best_depth)
        best_face = torch.where(closer, chunk_face, best_face)

    face_index = best_face.reshape(B, S, S).to(torch.int32)
    covered = best_face >= 0
    pixel = torch.nonzero(covered).squeeze(1)
    batch, qy, qx = pixel // (S * S), (pixel // S) % S, pixel % S
    face_id = batch * F + best_face[pixel]
    _, w, depth = barycentric_depth(
        px.reshape(-1, 3)[face_id],
        py.reshape(-1, 3)[face_id],
        pz.reshape(-1, 3)[face_id],
        qx.to(faces.dtype),
        qy.to(faces.dtype),
        near,
        far,
    )
    weights = torch.zeros(B * S * S, 3, dtype=faces.dtype, device=device)
    weights[pixel] = w
    depth_map = torch.full((B * S * S,), far, dtype=faces.dtype, device=device)
    depth_map[pixel] = depth
    alpha = covered.to(faces.dtype)

    if textures is not None:
        rgb = background.to(faces.dtype)[:, None, :].expand(B, S * S, 3).reshape(-1, 3).clone()
        cubes = full_cubes(textures, fill_back)
        index, corner_weight = texture_sampling(w, depth, pz.reshape(-1, 3)[face_id], textures.shape[2], eps)
        texels = cubes.reshape(B * F, -1, 3)[face_id[:, None], index]  # [N, 8, 3]
        color = (corner_weight[..., None] * texels).sum(1)
        rgb[pixel] = color if light is None else light.reshape(-1, 3)[face_id] * color
        rgb = rgb.reshape(B, S, S, 3)
    else:
        rgb = torch.empty(0, dtype=faces.dtype, device=device)
    return face_index, weights.reshape(B, S, S, 3), depth_map.reshape(B, S, S), rgb, alpha.reshape(B, S, S)


def texture_sampling(weights, depth, face_depth, texture_size: int, eps: float):
    """Trilinear lookup positions in a T^3 cube for pixels with ``weights [N, 3]``, ``depth [N]``.

    The perspective-corrected weight w_k z / z_k, times (T - 1), is clamped to [0, T - 1 - eps]
    per axis. Returns ``(flat cube index [N, 8] int64, corner weight [N, 8])``; corner ``c`` takes
    the upper sample on axis k when bit k of c is set.
    """
    T = texture_size
    upper = (torch.tensor(T - 1, dtype=torch.float32) - torch.tensor(eps, dtype=torch.float32)).item()
    position = weights * (T - 1) * (depth[:, None] / face_depth)
    position = torch.nan_to_num(position, nan=0.0)  # 0/0 where a vertex sits at depth 0
    position = torch.clamp(torch.clamp(position, max=upper), min=0)
    low = torch.floor(position)
    frac = position - low
    low = low.long()
    high = torch.clamp(low + 1, max=T - 1)
    corner = torch.arange(8, device=weights.device)
    bits = [((corner >> k) & 1).bool() for k in range(3)]  # [8] per axis
    index = torch.zeros(len(weights), 8, dtype=torch.long, device=weights.device)
    weight = torch.ones(len(weights), 8, dtype=weights.dtype, device=weights.device)
    for k, stride in enumerate((T * T, T, 1)):
        upper_k = bits[k][None, :]
        weight = weight * torch.where(upper_k, frac[:, k : k + 1], 1 - frac[:, k : k + 1])
        index = index + stride * torch.where(upper_k, high[:, k : k + 1], low[:, k : k + 1])
    return index, weight


# ----------------------------------------------------------------------------- backward


def backward_textures(
    faces, face_index, weights, depth, grad_rgb, textures, light, fill_back: bool, eps: float, need_textures: bool = True
):
    """Gradients of the sampled rgb with respect to the texture cubes (None unless ``need_textures``)
    and the per-face light (None without light)."""
    B, F = faces.shape[:2]
    T = textures.shape[2]
    S = face_index.shape[1]
    flat_face = face_index.reshape(-1).long()
    pixel = torch.nonzero(flat_face >= 0).squeeze(1)
    face_id = (pixel // (S * S)) * F + flat_face[pixel]
    face_depth = faces[..., 2::3].reshape(-1, 3)[face_id]
    index, corner_weight = texture_sampling(weights.reshape(-1, 3)[pixel], depth.reshape(-1)[pixel], face_depth, T, eps)
    grad_color = grad_rgb.reshape(-1, 3)[pixel]
    grad_light = None
    if light is not None:
        cubes = full_cubes(textures, fill_back)
        color = (corner_weight[..., None] * cubes.reshape(B * F, -1, 3)[face_id[:, None], index]).sum(1)
        grad_light = torch.zeros(B * F, 3, dtype=faces.dtype, device=faces.device)
        grad_light.index_add_(0, face_id, grad_color * color)
        grad_light = grad_light.reshape(B, F, 3)
        grad_color = grad_color * light.reshape(-1, 3)[face_id]
    if not need_textures:
        return None, grad_light
    contribution = corner_weight[..., None] * grad_color[:, None, :]  # [N, 8, 3]
    grad = torch.zeros(B * F * T * T * T, 3, dtype=faces.dtype, device=faces.device)
    grad.index_add_(0, (face_id[:, None] * T * T * T + index).reshape(-1), contribution.reshape(-1, 3))
    grad = grad.reshape(B, F, T, T, T, 3)
    if fill_back:  # fold the reversed copies' gradients back onto the original cubes
        half = F // 2
        grad = grad[:, :half] + grad[:, half:].permute(0, 1, 4, 3, 2, 5)
    return grad, grad_light


def backward_depth(faces, face_index, grad_depth):
    """Exact gradient of the depth map: autograd through z = 1 / sum(w_k / z_k) per pixel.

    A pixel whose gradient is not finite (a vertex at depth ~0) contributes nothing.
    """
    B, F = faces.shape[:2]
    S = face_index.shape[1]
    flat_face = face_index.reshape(-1).long()
    pixel = torch.nonzero(flat_face >= 0).squeeze(1)
    face_id = (pixel // (S * S)) * F + flat_face[pixel]
    qy = ((pixel // S) % S).to(faces.dtype)
    qx = (pixel % S).to(faces.dtype)
    with torch.enable_grad():
        per_pixel_face = faces.detach().reshape(-1, 9)[face_id].requires_grad_(True)
        px, py, pz, _ = pixel_coordinates(per_pixel_face, S)
        _, _, depth = barycentric_depth(px, py, pz, qx, qy, 0.0, float("inf"))
        (per_pixel,) = torch.autograd.grad((depth * grad_depth.reshape(-1)[pixel]).sum(), per_pixel_face)
    per_pixel = torch.where(torch.isfinite(per_pixel).all(-1, keepdim=True), per_pixel, torch.zeros_like(per_pixel))
    grad = torch.zeros(B * F, 9, dtype=faces.dtype, device=faces.device)
    grad.index_add_(0, face_id, per_pixel)
    return grad.reshape(B, F, 9)


def backward_xy(faces, face_index, image, grad_image, eps: float):
    """The approximate gradient of docs/design.md ("The approximate gradient"), vectorised over all
    scanline crossings of all edges. Returns ``[B, F, 9]`` with zeros in the z entries."""
    B, F = faces.shape[:2]
    S = face_index.shape[1]
    C = image.shape[-1]
    px, py, _, valid = pixel_coordinates(faces, S)
    flat_face = face_index.reshape(-1).long()
    flat_image = image.reshape(-1, C)
    flat_grad = grad_image.reshape(-1, C)
    grad = torch.zeros(B * F * 3 * 2, dtype=faces.dtype, device=faces.device)  # (b, f, vertex, x|y)

    def pixel_at(batch, u0, v, axis):
        # axis 0 scans columns (u = x, v = y), axis 1 scans rows (u = y, v = x)
        row, col = (v, u0) if axis == 0 else (u0, v)
        return batch * S * S + row * S + col

    for edge in range(3):
        a, b, c = edge, (edge + 1) % 3, (edge + 2) % 3
        for axis in (0, 1):
            u, v = (px, py) if axis == 0 else (py, px)
            v_axis = 1 - axis  # the coordinate a vertex is moved along: y for axis 0, x for axis 1
            ua, ub, uc = (u[..., k].reshape(-1) for k in (a, b, c))
            va, vb, vc = (v[..., k].reshape(-1) for k in (a, b, c))
            if axis == 0:
                direction = torch.where(ua < ub, -1, 1)
            else:
                direction = torch.where(ua < ub, 1, -1)
            active = valid.reshape(-1) & (ua != ub)
            first, count = pixel_range(torch.minimum(ua, ub), torch.maximum(ua, ub), S)
            count = torch.where(active, count, torch.zeros_like(count))
            for rows in chunks_by_total(count, _CHUNK_PAIRS // 64):
                owner, u0 = expand_ranges(first[rows], count[rows])
                fid = owner + rows.start  # flat (b * F + f)
                crossing = _Crossing(
                    fid, u0.to(faces.dtype), u0, ua[fid], ub[fid], uc[fid], va[fid], vb[fid], vc[fid], direction[fid], S
                )
                batch, f = fid // F, fid % F
                in_image = (crossing.v_in >= 0) & (crossing.v_in < S) & (crossing.v_out >= 0) & (crossing.v_out < S)
                crossing = crossing.select(in_image)
                batch, f = batch[in_image], f[in_image]
                pixel_in = pixel_at(batch, crossing.u0_int, crossing.v_in, axis)
                pixel_out = pixel_at(batch, crossing.u0_int, crossing.v_out, axis)

                # OUT: the face grows over the pixels beyond the edge, up to the image border
                grows = flat_face[pixel_in] == f
                out = crossing.select(grows)
                out_batch, out_pixel_in = batch[grows], pixel_in[grows]
                out_count = torch.where(out.direction > 0, S - out.v_out, out.v_out + 1)
                for sub in chunks_by_total(out_count):
                    owner, step = expand_ranges(torch.zeros_like(out_count[sub]), out_count[sub])
                    owner = owner + sub.start
                    v_pix = out.v_out[owner] + out.direction[owner] * step
                    target = pixel_at(out_batch[owner], out.u0_int[owner], v_pix, axis)
                    delta = ((flat_image[target] - flat_image[out_pixel_in[owner]]) * flat_grad[target]).sum(-1)
                    _accumulate(grad, out, owner, v_pix, delta, v_axis, a, b, S, eps)

                # IN: the face shrinks and uncovers its own pixels, up to its opposite side
                v_limit = torch.where(crossing.direction > 0, torch.ceil(crossing.v_x2), torch.floor(crossing.v_x2))
                v_in = crossing.v_in.to(faces.dtype)
                in_first, in_count = pixel_range(torch.minimum(v_in, v_limit), torch.maximum(v_in, v_limit), S)
                for sub in chunks_by_total(in_count):
                    owner, v_pix = expand_ranges(in_first[sub], in_count[sub])
                    owner = owner + sub.start
                    target = pixel_at(batch[owner], crossing.u0_int[owner], v_pix, axis)
                    own = flat_face[target] == f[owner]
                    owner, v_pix, target = owner[own], v_pix[own], target[own]
                    delta = ((flat_image[target] - flat_image[pixel_out[owner]]) * flat_grad[target]).sum(-1)
                    _accumulate(grad, crossing, owner, v_pix, delta, v_axis, a, b, S, eps)

    grad = grad.reshape(B, F, 3, 2)
    zeros = torch.zeros_like(grad[..., :1])
    return torch.cat((grad, zeros), dim=-1).reshape(B, F, 9)


class _Crossing:
    """Where scanline ``u0`` crosses edge a-b of a face, for a batch of crossings (1-D tensors)."""

    def __init__(self, fid, u0, u0_int, ua, ub, uc, va, vb, vc, direction, S):
        self.fid, self.u0, self.u0_int, self.ua, self.ub, self.direction = fid, u0, u0_int, ua, ub, direction
        self.v_x = (vb - va) / (ub - ua) * (u0 - ua) + va
        self.v_in = torch.where(direction > 0, torch.floor(self.v_x), torch.ceil(self.v_x)).long()
        self.v_out = self.v_in + direction
        # where the same scanline leaves the face on its opposite side (edge a-c or b-c)
        across_ac = (u0 - ua) * (u0 - uc) < 0
        v_ac = (vc - va) / (uc - ua) * (u0 - ua) + va
        v_bc = torch.where(ub == uc, vc, (vb - vc) / (ub - uc) * (u0 - uc) + vc)
        self.v_x2 = torch.where(across_ac, v_ac, v_bc)

    def select(self, mask):
        picked = object.__new__(_Crossing)
        for name, value in vars(self).items():
            setattr(picked, name, value[mask])
        return picked


def _accumulate(grad, crossing, owner, v_pix, delta, v_axis, a, b, S, eps):
    """update(v, delta) of docs/design.md ("The approximate gradient") for the pixels ``v_pix`` of crossings ``owner``."""
    positive = delta > 0
    owner, v_pix, delta = owner[positive], v_pix[positive], delta[positive]
    ua, ub, u0 = crossing.ua[owner], crossing.ub[owner], crossing.u0[owner]
    offset = v_pix.to(delta.dtype) - crossing.v_x[owner]
    fid = crossing.fid[owner]
    for vertex, moves, denominator in ((a, ub != u0, ub - u0), (b, ua != u0, u0 - ua)):
        distance = (ub - ua) / denominator * 2 / S * offset
        distance = torch.where(distance > 0, distance + eps, distance - eps)
        contribution = -delta / distance
        keep = moves & torch.isfinite(contribution)
        slot = (fid * 3 + vertex) * 2 + v_axis
        grad.index_add_(0, slot[keep], contribution[keep])
