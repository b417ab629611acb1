"""Scenes for the rasterizer kernels and the comparison of two backends on them (reference.py's
contract): the native CPU kernels against the reference (test_native_matches_reference.py), the
CUDA kernels against the CPU ones (test_cuda_kernels.py) and broken kernels against both
(benchmarks/kernel_mutations.py).

Scenes are ``(faces [B, F, 9], textures [B, Ft, T, T, T, 3], light [B, F, 3] or None,
background [B, 3])`` with faces in NDC (x, y) and camera depth z.
"""

from __future__ import annotations

import math

import torch
from conftest import assert_gradients_close

NEAR, FAR = 0.1, 100.0


# ----------------------------------------------------------------------------- random scenes


def random_scene(
    seed: int,
    batch: int,
    count: int,
    size: int,
    texture_size: int,
    fill_back: bool = False,
    light: bool = False,
    specials: bool = True,
):
    """Random faces ``[B, F, 9]`` (F = count, doubled with fill_back), textures, light, background.

    ``specials`` puts in: zero-area and collinear faces, faces off-screen, a vertex behind the
    camera, non-finite coordinates, a duplicate (exact depth ties), two faces sharing an edge
    through pixel centres, and a face larger than the image.
    """
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(batch, count, 1, 2, generator=g) * 2.6 - 1.3
    spread = torch.where(torch.rand(batch, count, 1, 1, generator=g) < 0.7, 0.15, 0.8)
    xy = centre + (torch.rand(batch, count, 3, 2, generator=g) * 2 - 1) * spread
    z = 0.5 + 2.5 * torch.rand(batch, count, 3, 1, generator=g)
    faces = torch.cat((xy, z), dim=-1)  # [B, F, 3 vertices, 3]
    if specials and count >= 13:
        pixel = lambda i: (2 * i + 1 - size) / size  # NDC of pixel centre i
        faces[:, 0, 1] = faces[:, 0, 0]  # zero area
        faces[:, 1, 2] = (faces[:, 1, 0] + faces[:, 1, 1]) / 2  # collinear
        faces[:, 2, :, 0] += 3.0  # off-screen (right)
        faces[:, 3, :, 1] -= 3.0  # off-screen (below)
        faces[:, 4, 0, 2] = -1.0  # one vertex behind the camera
        faces[:, 5, 1, 0] = float("nan")
        faces[:, 6, 2, 1] = float("inf")
        faces[:, 8] = faces[:, 7]  # duplicate: face 7 must win every tie
        lo, hi = pixel(size // 4), pixel((3 * size) // 4)
        quad = torch.tensor([[lo, lo], [hi, lo], [hi, hi], [lo, hi]])
        faces[:, 9, :, :2] = quad[[0, 1, 2]]  # counter-clockwise in the unflipped frame
        faces[:, 10, :, :2] = quad[[0, 2, 3]]
        faces[:, 9:11, :, 2] = 1.25
        faces[:, 11] = torch.tensor([[-1.5, -1.5, 2.9], [3.0, -1.5, 2.9], [-1.5, 3.0, 2.9]])  # covers most of the image
        faces[:, 12] = faces[:, 12, [2, 1, 0]]  # make sure one random face is reversed
    cubes = count
    if fill_back:
        faces = torch.cat((faces, faces[:, :, [2, 1, 0]]), dim=1)
    faces = faces.reshape(batch, -1, 9).contiguous()
    textures = torch.rand(batch, cubes, texture_size, texture_size, texture_size, 3, generator=g)
    face_light = 0.25 + torch.rand(batch, faces.shape[1], 3, generator=g) if light else None
    background = torch.rand(batch, 3, generator=g)
    return faces, textures, face_light, background


def icosphere(level: int):
    """Unit icosphere: vertices ``[V, 3]``, faces ``[20 * 4^level, 3]`` (outward, counter-clockwise)."""
    t = (1 + 5**0.5) / 2
    vertices = [
        (-1, t, 0),
        (1, t, 0),
        (-1, -t, 0),
        (1, -t, 0),
        (0, -1, t),
        (0, 1, t),
        (0, -1, -t),
        (0, 1, -t),
        (t, 0, -1),
        (t, 0, 1),
        (-t, 0, -1),
        (-t, 0, 1),
    ]
    vertices = [tuple(c / math.sqrt(1 + t * t) for c in v) for v in vertices]
    faces = [
        (0, 11, 5),
        (0, 5, 1),
        (0, 1, 7),
        (0, 7, 10),
        (0, 10, 11),
        (1, 5, 9),
        (5, 11, 4),
        (11, 10, 2),
        (10, 7, 6),
        (7, 1, 8),
        (3, 9, 4),
        (3, 4, 2),
        (3, 2, 6),
        (3, 6, 8),
        (3, 8, 9),
        (4, 9, 5),
        (2, 4, 11),
        (6, 2, 10),
        (8, 6, 7),
        (9, 8, 1),
    ]
    for _ in range(level):
        cache: dict = {}

        def midpoint(i, j, cache=cache):
            key = (min(i, j), max(i, j))
            if key not in cache:
                m = [(a + b) / 2 for a, b in zip(vertices[i], vertices[j])]
                norm = math.sqrt(sum(c * c for c in m))
                vertices.append(tuple(c / norm for c in m))
                cache[key] = len(vertices) - 1
            return cache[key]

        faces = [
            f
            for a, b, c in faces
            for f in (
                (a, midpoint(a, b), midpoint(c, a)),
                (b, midpoint(b, c), midpoint(a, b)),
                (c, midpoint(c, a), midpoint(b, c)),
                (midpoint(a, b), midpoint(b, c), midpoint(c, a)),
            )
        ]
    return torch.tensor(vertices, dtype=torch.float32), torch.tensor(faces)


def icosphere_scene(level: int = 5, texture_size: int = 2, batch: int = 2):
    """The icosphere seen by the default camera (eye at z = -2.732, 30 degrees) from `batch` sides,
    with fill-back faces (2 x 20 * 4^level faces), textures and light."""
    vertices, faces = icosphere(level)
    views = []
    for b in range(batch):
        angle = 0.7 * b
        rotation = torch.tensor(
            [[math.cos(angle), 0.0, math.sin(angle)], [0.0, 1.0, 0.0], [-math.sin(angle), 0.0, math.cos(angle)]]
        )
        v = vertices @ rotation.T
        z = v[:, 2] + 2.732
        scale = math.tan(math.radians(30))
        views.append(torch.stack((v[:, 0] / (z * scale), v[:, 1] / (z * scale), z), dim=-1)[faces])  # [F, 3, 3]
    corners = torch.stack(views)
    corners = torch.cat((corners, corners[:, :, [2, 1, 0]]), dim=1)
    g = torch.Generator().manual_seed(5)
    textures = torch.rand(batch, faces.shape[0], texture_size, texture_size, texture_size, 3, generator=g)
    light = 0.5 + torch.rand(batch, corners.shape[1], 3, generator=g)
    return corners.reshape(batch, -1, 9).contiguous(), textures, light, torch.rand(batch, 3, generator=g)


# ----------------------------------------------------------------------------- comparisons


def assert_maps_equal(expected, actual, exact: bool = True):
    """The five forward maps: face indices identical; floats bitwise (``exact``: CUDA against the CPU,
    the same operations without FMA) or to 1e-5 (native against the reference, whose texture sums
    round differently)."""
    names = ("face_index", "weights", "depth", "rgb", "alpha")
    assert torch.equal(actual[0].cpu(), expected[0]), "face_index differs on %d pixels" % int(
        (actual[0].cpu() != expected[0]).sum()
    )
    atol = 0.0 if exact else 1e-5
    for name, e, a in zip(names[1:], expected[1:], actual[1:]):
        a = a.cpu()
        assert a.shape == e.shape, name
        assert a.dtype == e.dtype, name
        torch.testing.assert_close(a, e, rtol=0, atol=atol, equal_nan=True, msg=lambda m, name=name: f"{name}: {m}")


def compare_backends(expected, actual, device, scene, size, eps=1e-4, seed=0, exact=True, near=NEAR, far=FAR):
    """forward (rgb and silhouettes) and every backward of two backends on one scene: ``expected``
    runs on the CPU, ``actual`` on ``device``; forward maps as assert_maps_equal(exact), gradients
    entry by entry (conftest.assert_gradients_close) with equal nonzero patterns."""
    faces, textures, light, background = scene
    fill_back = faces.shape[1] != textures.shape[1]
    on = lambda t: None if t is None else t.to(device)
    args = (size, near, far, eps)

    maps = expected.forward(faces, textures, *args, background, light, fill_back)
    assert_maps_equal(maps, actual.forward(on(faces), on(textures), *args, on(background), on(light), fill_back), exact)
    silhouettes = expected.forward(faces, None, *args, background, None, False)
    assert_maps_equal(silhouettes, actual.forward(on(faces), None, *args, on(background), None, False), exact)

    face_index, weights, depth, rgb, alpha = maps
    g = torch.Generator().manual_seed(seed)
    for name, image in (("alpha", alpha[..., None]), ("rgb", rgb), ("alpha+rgb", torch.cat((alpha[..., None], rgb), -1))):
        grad = torch.randn(image.shape, generator=g) * (torch.rand(image.shape, generator=g) < 0.6)
        assert_gradients_close(
            actual.backward_xy(on(faces), on(face_index), on(image.contiguous()), on(grad), eps),
            expected.backward_xy(faces, face_index, image.contiguous(), grad, eps),
            "backward_xy " + name,
        )
    grad_depth = torch.randn(depth.shape, generator=g)
    assert_gradients_close(
        actual.backward_depth(on(faces), on(face_index), on(grad_depth)),
        expected.backward_depth(faces, face_index, grad_depth),
        "backward_depth",
        exact_zeros=False,
    )
    grad_rgb = torch.randn(rgb.shape, generator=g)
    expected_textures, expected_light = expected.backward_textures(
        faces, face_index, weights, depth, grad_rgb, textures, light, fill_back, eps
    )
    actual_textures, actual_light = actual.backward_textures(
        on(faces), on(face_index), on(weights), on(depth), on(grad_rgb), on(textures), on(light), fill_back, eps
    )
    assert_gradients_close(actual_textures, expected_textures, "backward_textures")
    assert_gradients_close(actual_light, expected_light, "backward_textures (light)")
    return maps


# ----------------------------------------------------------------------------- named edge cases


def pixel_ndc(i: float, size: int) -> float:
    """NDC of pixel centre i (column or row) at image size ``size``."""
    return (2 * i + 1 - size) / size


def triangle(x0, y0, x1, y1, x2, y2, z) -> torch.Tensor:
    """One face ``[9]`` at constant depth z (counter-clockwise in the unflipped frame when
    (x1 - x0)(y2 - y0) > (y1 - y0)(x2 - x0))."""
    return torch.tensor([x0, y0, z, x1, y1, z, x2, y2, z], dtype=torch.float32)


FULL_IMAGE = (-3.0, -3.0, 6.0, -3.0, -3.0, 6.0)  # a triangle that covers all of [-1, 1]^2


def with_colours(faces: torch.Tensor, seed: int, texture_size: int = 2, light: bool = True):
    """faces ``[B, F, 9]`` completed into a scene with random cubes, light and background."""
    g = torch.Generator().manual_seed(seed)
    B, F = faces.shape[:2]
    textures = torch.rand(B, F, texture_size, texture_size, texture_size, 3, generator=g)
    face_light = 0.25 + torch.rand(B, F, 3, generator=g) if light else None
    return faces.contiguous(), textures, face_light, torch.rand(B, 3, generator=g)


def nothing_drawn_scene():
    """F > 0 faces of which none is drawn: off-screen, back-facing, beyond far, before near (B = 2, S = 16)."""
    faces = torch.stack(
        [
            triangle(2.0, 2.0, 3.0, 2.0, 2.0, 3.0, 1.0),  # off-screen
            triangle(-0.5, -0.5, -0.5, 0.5, 0.5, -0.5, 1.0),  # clockwise: back-facing
            triangle(*FULL_IMAGE, 2 * FAR),  # beyond far
            triangle(*FULL_IMAGE, NEAR / 2),  # before near
            triangle(-0.5, -0.5, 0.5, -0.5, -0.5, 0.5, -1.0),  # behind the camera
        ]
    )
    return with_colours(torch.stack((faces, faces.flip(0))), seed=1), 16


def chunk_ties_scene():
    """300 faces over the whole 16 x 16 image (one tile, more than the 256 faces a CUDA raster block
    stages at once), with equal depths; the lowest index of the nearest must win (B = 3, S = 16):
    item 0 all at one depth (face 0 wins), item 1 faces 256.. nearer (face 256), item 2 faces 255
    and 256 nearest, across the chunk boundary (face 255)."""
    base = triangle(*FULL_IMAGE, 2.0).expand(300, 9).clone()
    items = [base.clone(), base.clone(), base.clone()]
    items[1][256:, 2::3] = 1.0
    items[2][255:257, 2::3] = 1.0
    return with_colours(torch.stack(items), seed=2), 16


def full_bins_scene():
    """Exactly 256 (item 0) and 257 (item 1) small faces inside the first 16 x 16 tile of a
    32 x 32 image, random depths with some ties (B = 2, S = 32)."""
    g = torch.Generator().manual_seed(3)
    size, items = 32, []
    for count in (256, 257):
        centre = 1.5 + torch.rand(count, 1, 2, generator=g) * 12  # pixel units, inside pixels 0..15
        corners = centre + torch.tensor([[-1.4, -1.4], [1.4, -1.4], [-1.4, 1.4]])
        ndc = (2 * corners + 1 - size) / size
        z = torch.round(1 + 4 * torch.rand(count, 1, 1, generator=g)).expand(count, 3, 1)  # 1..5: ties
        items.append(torch.cat((ndc, z), -1).reshape(count, 9))
    items[0] = torch.cat((items[0], torch.full((1, 9), float("nan"))))  # pad to 257: one invalid face
    return with_colours(torch.stack(items), seed=3), size


def full_image_scene():
    """A full-image face behind random faces in each of B = 3 items (S = 24)."""
    faces, textures, light, background = random_scene(4, 3, 20, 24, 2, light=True, specials=False)
    faces = faces.reshape(3, 20, 9)
    faces[:, 0] = triangle(*FULL_IMAGE, 3.5)
    return (faces.contiguous(), textures, light, background), 24


def extreme_scene():
    """Huge finite coordinates (1e30, 3e38) and faces straddling near and far (B = 2, S = 20)."""
    faces, textures, light, background = random_scene(5, 2, 24, 20, 3, light=True, specials=False)
    faces = faces.reshape(2, 24, 3, 3)
    faces[:, 0, 1, 0] = 1e30
    faces[:, 1, 0, 1] = -3e38
    faces[:, 2, :, :2] = torch.tensor([[-1e30, -1e30], [1e30, -1e30], [-1e30, 1e30]])
    faces[:, 3, :, 2] = torch.tensor([0.05, 0.5, 1.0])  # one vertex before near
    faces[:, 4, :, 2] = torch.tensor([50.0, 150.0, 90.0])  # one vertex beyond far
    faces[:, 5, :, 2] = torch.tensor([-0.5, 0.3, 200.0])  # behind the camera and beyond far
    faces[:, 6, :, 2] = torch.tensor([NEAR, NEAR, NEAR])  # exactly at near
    return (faces.reshape(2, 24, 9).contiguous(), textures, light, background), 20


def size_scene(size: int):
    """Random faces with the specials at image size ``size`` (B = 4)."""
    return random_scene(size, 4, 40, size, 2, fill_back=True, light=True), size


EDGE_SCENES = {
    "nothing-drawn": nothing_drawn_scene,
    "chunk-ties": chunk_ties_scene,
    "full-bins": full_bins_scene,
    "full-image": full_image_scene,
    "extreme": extreme_scene,
    **{f"size-{s}": (lambda s=s: size_scene(s)) for s in (15, 16, 17, 31, 33)},
}
