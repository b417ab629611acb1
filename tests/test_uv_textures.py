"""UV-mapped texture images in the renderer (meshopt_cli/render/uv.py): exact colours at 1:1,
mipmaps for minification, wrap modes, seams, batches, the image's exact gradient, the cube path's
vertex gradient, both backends, and bad input."""

import math
import sys

import pytest
import torch
from conftest import assert_gradients_close
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_scenes import icosphere

from meshopt_cli.render import Renderer
from meshopt_cli.render import uv as uv_module

QUAD_VERTICES = torch.tensor([[[-1.0, -1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, 1.0], [-1.0, 1.0, 1.0]]])
QUAD_FACES = torch.tensor([[[0, 1, 2], [0, 2, 3]]])
QUAD_UV = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])


def flat_renderer(size, anti_aliasing=False, **kwargs):
    """Screen-space quads (camera_mode none), unlit (ambient 1), no back faces."""
    return Renderer(
        image_size=size,
        anti_aliasing=anti_aliasing,
        camera_mode="none",
        light_intensity_ambient=1.0,
        light_intensity_directional=0.0,
        fill_back=False,
        **kwargs,
    )


def quad_uvs(corners=QUAD_UV):
    return corners[QUAD_FACES[0]][None].contiguous()


@pytest.fixture(params=["reference", "native"])
def backend_name(request, monkeypatch):
    monkeypatch.setenv("MESHOPT_BACKEND", request.param)
    return request.param


def checker(size, cells, colours=((1.0, 0.1, 0.0), (0.0, 0.2, 1.0))):
    """``[1, size, size, 3]`` checkerboard of ``cells`` x ``cells`` squares."""
    index = (torch.arange(size) * cells // size)[:, None] + (torch.arange(size) * cells // size)[None, :]
    a, b = (torch.tensor(c) for c in colours)
    return torch.where((index % 2 == 0)[..., None], a, b)[None].float()


def sphere_scene(batch=1, level=2):
    """A unit icosphere, spherical UVs per face corner (a seam where u wraps), normalised."""
    vertices, faces = icosphere(level)
    corners = vertices[faces]  # [F, 3, 3]
    u = torch.atan2(corners[..., 2], corners[..., 0]) / (2 * math.pi) + 0.5
    v = torch.asin(corners[..., 1].clamp(-1, 1)) / math.pi + 0.5
    # faces across the seam: keep their corners on one side (repeat wrap reads them continuously)
    u = torch.where((u.amax(1, keepdim=True) - u) > 0.5, u + 1, u)
    uvs = torch.stack((u, v), dim=-1)
    return (
        vertices[None].expand(batch, -1, -1).contiguous(),
        faces[None].expand(batch, -1, -1),
        uvs[None].expand(batch, -1, -1, -1),
    )


# ----------------------------------------------------------------------------- forward


def test_checker_quad_at_one_to_one_renders_the_texels(backend_name):
    torch.manual_seed(0)
    texture = torch.rand(1, 16, 16, 3)
    image = flat_renderer(16)(QUAD_VERTICES, QUAD_FACES, mode="rgb", uvs=quad_uvs(), texture_image=texture)
    # row 0 of the image is its top, v = 1, as in the file: the render is the texture itself
    assert torch.allclose(image[0].permute(1, 2, 0), texture[0], atol=1e-5)


def test_checker_quad_with_anti_aliasing_is_the_box_filtered_texture(backend_name):
    texture = checker(32, 8)
    image = flat_renderer(16, anti_aliasing=True)(QUAD_VERTICES, QUAD_FACES, mode="rgb", uvs=quad_uvs(), texture_image=texture)
    expected = torch.nn.functional.avg_pool2d(texture.permute(0, 3, 1, 2), 2)
    assert torch.allclose(image, expected, atol=1e-5)
    # the checker's own colours at known pixels: no blur at 1:1
    assert torch.allclose(image[0, :, 0, 0], torch.tensor([1.0, 0.1, 0.0]), atol=1e-5)
    assert torch.allclose(image[0, :, 0, 2], torch.tensor([0.0, 0.2, 1.0]), atol=1e-5)


def test_magnified_texture_is_interpolated_bilinearly():
    texture = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]])[None]  # 1 x 2: black | white
    renderer = flat_renderer(8, texture_wrap="clamp_to_edge")
    image = renderer(QUAD_VERTICES, QUAD_FACES, mode="rgb", uvs=quad_uvs(), texture_image=texture)[0, 0, 0]
    # pixel i reads texel coordinate x = (i + 0.5) / 8 * 2 - 0.5, between the centres 0 and 1
    x = (torch.arange(8) + 0.5) / 4 - 0.5
    assert torch.allclose(image, x.clamp(0, 1), atol=1e-5)


def test_far_away_texture_is_not_aliased(monkeypatch):
    """A 256-texel checker of one-texel squares on 16 pixels: mip level 4, every pixel the mean
    (the level recorded on the PyTorch path; the colours checked on both backends)."""
    texture = checker(256, 256)
    levels = []
    original = uv_module.Pyramid.trilinear

    def recording(self, image_batch, uv, lod, wrap):
        levels.append(lod.clamp(0, self.count - 1))
        return original(self, image_batch, uv, lod, wrap)

    monkeypatch.setattr(uv_module.Pyramid, "trilinear", recording)
    # shifted half a texel: a level-0 read lands on texel centres, all of one colour (aliased)
    uvs = quad_uvs() + 0.5 / 256
    mean = texture.reshape(-1, 3).mean(0)
    for name in ("reference", "native"):
        monkeypatch.setenv("MESHOPT_BACKEND", name)
        image = flat_renderer(16)(QUAD_VERTICES, QUAD_FACES, mode="rgb", uvs=uvs, texture_image=texture)
        assert (image[0].permute(1, 2, 0) - mean).abs().max() <= 2 / 255, name
    assert len(levels) == 1 and float(levels[0].min()) > 3.9 and float(levels[0].max()) < 4.1


def test_far_away_texture_in_perspective_keeps_its_mean_colour():
    """A tilted, distant plane (perspective: the level varies per pixel) through the Renderer."""
    texture = checker(256, 64, colours=((0.9, 0.8, 0.1), (0.1, 0.1, 0.6)))
    vertices = torch.tensor([[[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]]])
    tilt = math.radians(50)
    rotation = torch.tensor([[1.0, 0, 0], [0, math.cos(tilt), -math.sin(tilt)], [0, math.sin(tilt), math.cos(tilt)]])
    vertices = vertices @ rotation.T
    renderer = Renderer(image_size=32, light_intensity_ambient=1.0, light_intensity_directional=0.0)
    renderer.eye = (0.0, 0.0, -4.0)
    rgb, _, alpha = renderer(vertices, QUAD_FACES, uvs=quad_uvs(), texture_image=texture)
    inside = alpha[0] > 0.999
    assert inside.sum() > 20
    pixels = rgb[0].permute(1, 2, 0)[inside]
    assert (pixels.mean(0) - texture.reshape(-1, 3).mean(0)).abs().max() <= 2 / 255
    assert pixels.std(0).max() < 0.05  # no moire: a level-0 read would give the two colours


@pytest.mark.parametrize(
    "wrap,expected_index",
    [
        ("repeat", lambda i: i % 8),
        ("mirrored_repeat", lambda i: torch.where(i % 16 >= 8, 15 - i % 16, i % 16)),
        ("clamp_to_edge", lambda i: i.clamp(0, 7)),
        ("clamp_to_border", lambda i: torch.where((i >= 0) & (i < 8), i, -1)),
    ],
)
def test_wrap_modes(wrap, expected_index):
    """UVs over [-1, 2] on 24 pixels: three periods of an 8 x 8 texture, read at texel centres."""
    torch.manual_seed(1)
    texture = torch.rand(1, 8, 8, 3) * 0.8 + 0.2
    uvs = quad_uvs(QUAD_UV * 3 - 1)
    image = flat_renderer(24, texture_wrap=wrap)(QUAD_VERTICES, QUAD_FACES, mode="rgb", uvs=uvs, texture_image=texture)
    # pixel column i reads texel x = i - 8; row j (from the top) reads texel row y = j - 8
    index = expected_index(torch.arange(24) - 8)
    padded = torch.cat((texture[0], torch.zeros(8, 1, 3)), dim=1)  # column -1: black
    padded = torch.cat((padded, torch.zeros(1, 9, 3)), dim=0)  # row -1: black
    expected = padded[index][:, index]
    assert torch.allclose(image[0].permute(1, 2, 0), expected, atol=1e-4)


def test_unknown_wrap_mode_is_refused():
    with pytest.raises(ValueError, match="texture_wrap"):
        flat_renderer(8, texture_wrap="wobble")(
            QUAD_VERTICES, QUAD_FACES, mode="rgb", uvs=quad_uvs(), texture_image=torch.rand(1, 4, 4, 3)
        )


def test_seam_between_faces_with_different_uvs_shows_no_crack():
    """Two triangles share the quad's diagonal but read separate islands of the texture (red on
    their own half, green elsewhere): every pixel is covered and red, the diagonal included."""
    red, green = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    column, row = torch.arange(16)[None, :], torch.arange(8)[:, None]
    local = column % 8
    # face 0 covers pixels with i + j >= 7 (the diagonal's ties go to it), face 1 those with i + j <= 7
    own = torch.where(column < 8, local + row >= 7, local + row <= 7)
    texture = torch.where(own[..., None], red, green)[None]  # [1, 8, 16, 3]: two 8 x 8 islands
    uvs = torch.tensor(
        [
            [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0]],  # face 0 (corners 0, 1, 2): the left island
            [[0.5, 0.0], [1.0, 1.0], [0.5, 1.0]],  # face 1 (corners 0, 2, 3): the right island
        ]
    )[None]
    renderer = flat_renderer(8)
    rgb, _, alpha = renderer(QUAD_VERTICES, QUAD_FACES, uvs=uvs, texture_image=texture)
    assert bool((alpha == 1).all())
    assert torch.allclose(rgb[0].permute(1, 2, 0), red.expand(8, 8, 3), atol=1e-4)


def test_batch_items_read_their_own_images_and_uvs():
    vertices, faces, uvs = sphere_scene(batch=2)
    torch.manual_seed(2)
    images = torch.rand(2, 16, 32, 3)
    renderer = Renderer(image_size=24)
    renderer.eye = torch.tensor([[0.0, 0.0, -2.7], [2.7, 0.5, 0.0]])
    uvs = uvs.clone()
    uvs[1] = uvs[1] * 0.5
    both = renderer(vertices, faces, mode="rgb", uvs=uvs, texture_image=images)
    for b in range(2):
        renderer.eye = [[0.0, 0.0, -2.7], [2.7, 0.5, 0.0]][b]
        alone = renderer(vertices[b : b + 1], faces[b : b + 1], mode="rgb", uvs=uvs[b : b + 1], texture_image=images[b : b + 1])
        assert torch.allclose(both[b], alone[0], atol=1e-6)
    # one image for the whole batch (B = 1) is the same as that image repeated
    renderer.eye = torch.tensor([[0.0, 0.0, -2.7], [2.7, 0.5, 0.0]])
    shared = renderer(vertices, faces, mode="rgb", uvs=uvs, texture_image=images[:1])
    repeated = renderer(vertices, faces, mode="rgb", uvs=uvs, texture_image=images[:1].expand(2, -1, -1, -1).contiguous())
    assert torch.allclose(shared, repeated)


def test_silhouettes_and_depth_ignore_the_texture():
    vertices, faces, uvs = sphere_scene()
    renderer = Renderer(image_size=16)
    rgb, depth, alpha = renderer(vertices, faces, uvs=uvs, texture_image=torch.rand(1, 8, 8, 3))
    assert torch.equal(alpha, renderer(vertices, faces, mode="silhouettes"))
    assert torch.equal(depth, renderer(vertices, faces, mode="depth"))


def test_both_backends_give_the_same_uv_render_and_gradients(monkeypatch):
    vertices, faces, uvs = sphere_scene()
    torch.manual_seed(3)
    image0 = torch.rand(1, 32, 32, 3)
    weight = torch.rand(1, 3, 32, 32)
    results = {}
    for name in ("reference", "native"):
        monkeypatch.setenv("MESHOPT_BACKEND", name)
        v = vertices.clone().requires_grad_(True)
        image = image0.clone().requires_grad_(True)
        rgb, _, alpha = Renderer(image_size=32)(v, faces, uvs=uvs, texture_image=image)
        ((rgb * weight).sum() + alpha.sum()).backward()
        results[name] = (rgb.detach(), v.grad, image.grad)
    assert torch.equal(results["reference"][0], results["native"][0])
    assert_gradients_close(results["native"][1], results["reference"][1], "vertices")
    assert torch.allclose(results["native"][2], results["reference"][2], atol=1e-6)


# ----------------------------------------------------------------------------- gradients


def test_texture_image_gradient_equals_finite_differences():
    """The render is linear in the image: central differences of a weighted sum, texel by texel
    (minified, so that several mip levels carry the gradient)."""
    vertices, faces, uvs = sphere_scene()
    torch.manual_seed(4)
    image = torch.rand(1, 64, 32, 3, dtype=torch.float32)
    weight = torch.rand(1, 3, 20, 20)
    renderer = Renderer(image_size=20)

    def loss(texture):
        return (renderer(vertices, faces, mode="rgb", uvs=uvs, texture_image=texture) * weight).sum()

    texture = image.clone().requires_grad_(True)
    loss(texture).backward()
    grad = texture.grad[0]
    assert int((grad != 0).sum()) > 100
    generator = torch.Generator().manual_seed(5)
    picks = torch.nonzero(grad.abs().sum(-1) > 0)
    picks = picks[torch.randperm(len(picks), generator=generator)[:12]]
    picks = torch.cat((picks, torch.tensor([[0, 0], [63, 31]])))  # and two texels far from the view
    step = 0.25
    for y, x in picks.tolist():
        for c in range(3):
            plus, minus = image.clone(), image.clone()
            plus[0, y, x, c] += step
            minus[0, y, x, c] -= step
            numeric = (loss(plus) - loss(minus)) / (2 * step)
            assert abs(float(numeric) - float(grad[y, x, c])) <= 2e-3 * max(1.0, abs(float(numeric))), (y, x, c)


def test_constant_texture_matches_the_cube_path_in_image_and_vertex_gradient():
    vertices, faces, uvs = sphere_scene(batch=2)
    colour = torch.tensor([0.8, 0.3, 0.5])
    renderer = Renderer(image_size=32)
    renderer.eye = torch.tensor([[0.3, 0.4, -2.7], [2.5, 1.0, 0.4]])
    renderer.light_direction = (0.3, 0.8, -0.5)
    torch.manual_seed(6)
    weight = torch.rand(2, 3, 32, 32)
    outputs = {}
    for path in ("cubes", "uv"):
        v = vertices.clone().requires_grad_(True)
        if path == "cubes":
            cubes = colour.expand(2, faces.shape[1], 2, 2, 2, 3).contiguous()
            rgb, depth, alpha = renderer(v, faces, cubes)
        else:
            rgb, depth, alpha = renderer(v, faces, uvs=uvs, texture_image=colour.expand(2, 8, 8, 3).contiguous())
        ((rgb * weight).sum() + (alpha * weight[:, 0]).sum() + 0.1 * depth.sum()).backward()
        outputs[path] = (rgb.detach(), v.grad)
    assert torch.allclose(outputs["uv"][0], outputs["cubes"][0], atol=1e-6)
    assert_gradients_close(outputs["uv"][1], outputs["cubes"][1], "vertex gradient, uv vs cubes")


def test_uv_gradient_reaches_the_uvs_and_the_light():
    vertices, faces, uvs = sphere_scene()
    uvs = uvs.clone().requires_grad_(True)
    torch.manual_seed(7)
    image = torch.rand(1, 16, 16, 3)
    v = vertices.clone().requires_grad_(True)
    Renderer(image_size=16)(v, faces, mode="rgb", uvs=uvs, texture_image=image).sum().backward()
    assert uvs.grad is not None and float(uvs.grad.abs().sum()) > 0
    assert torch.isfinite(v.grad).all() and float(v.grad.abs().sum()) > 0


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    wrap=st.sampled_from(uv_module.WRAPS[:3]),
    uv_scale=st.floats(0.1, 4.0),
    side=st.integers(1, 40),
)
def test_property_any_uvs_on_a_constant_image_equal_the_cube_path(seed, wrap, uv_scale, side):
    """Random triangles in perspective, random UVs anywhere, any image size: the same pixels as the
    cube path (every wrap but the border one reads only the image's own colour)."""
    g = torch.Generator().manual_seed(seed)
    count = 6
    vertices = (torch.rand(1, count * 3, 3, generator=g) * 2 - 1) * 0.9
    faces = torch.arange(count * 3).reshape(1, count, 3)
    uvs = (torch.rand(1, count, 3, 2, generator=g) * 2 - 1) * uv_scale
    colour = torch.rand(3, generator=g)
    renderer = Renderer(image_size=16, texture_wrap=wrap)
    uv_image = renderer(vertices, faces, mode="rgb", uvs=uvs, texture_image=colour.expand(1, side, side + 1, 3).contiguous())
    cube_image = renderer(vertices, faces, colour.expand(1, count, 1, 1, 1, 3).contiguous(), mode="rgb")
    assert torch.allclose(uv_image, cube_image, atol=1e-5)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), images=st.integers(1, 2), height=st.integers(1, 90), width=st.integers(1, 90))
def test_property_native_mip_pyramid_equals_the_pytorch_one(seed, images, height, width):
    """The kernels' packed pyramid (and its backward) against uv.Pyramid's avg_pool2d levels: the
    same texels (odd sizes included) and, for a random gradient, the same image gradient."""
    from meshopt_cli.render import native

    backend = native.backend_for(torch.device("cpu"))
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(images, height, width, 3, generator=g).requires_grad_(True)
    pyramid = uv_module.Pyramid(image)
    levels = uv_module.mip_levels(height, width)
    assert [tuple(row) for row in pyramid.table.tolist()] == levels
    packed = backend.mip_pyramid(image.detach(), levels)
    assert torch.allclose(packed, pyramid.packed, atol=1e-6)
    grad = torch.randn(packed.shape, generator=g)
    (expected,) = torch.autograd.grad(pyramid.packed, image, grad)
    assert torch.allclose(backend.mip_pyramid_backward_(grad.clone(), levels, images), expected, atol=1e-5)


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],  # it sets the env var each time
)
@given(
    seed=st.integers(0, 10_000),
    wrap=st.sampled_from(uv_module.WRAPS),
    uv_scale=st.floats(0.1, 6.0),
    height=st.integers(1, 70),
    width=st.integers(1, 70),
    shared=st.sampled_from(["none", "image", "uvs"]),
    fill_back=st.booleans(),
)
def test_property_native_uv_shading_equals_the_pytorch_path(monkeypatch, seed, wrap, uv_scale, height, width, shared, fill_back):
    """The native kernels' UV shading (rasterizer_math.h) against the PyTorch path (uv.py) on random
    triangles in perspective, lit, two batch items with their own or a shared image / UVs, any image
    size and wrap: the same pixels, and the same gradients of the image, the UVs and the vertices."""
    g = torch.Generator().manual_seed(seed)
    count = 8
    vertices0 = (torch.rand(2, count * 3, 3, generator=g) * 2 - 1) * 0.9
    faces = torch.arange(count * 3).reshape(1, count, 3).expand(2, -1, -1)
    uvs0 = (torch.rand(1 if shared == "uvs" else 2, count, 3, 2, generator=g) * 2 - 1) * uv_scale
    image0 = torch.rand(1 if shared == "image" else 2, height, width, 3, generator=g)
    weight = torch.rand(2, 3, 24, 24, generator=g)
    results = {}
    for name in ("reference", "native"):
        monkeypatch.setenv("MESHOPT_BACKEND", name)
        vertices, uvs, image = (x.clone().requires_grad_(True) for x in (vertices0, uvs0, image0))
        renderer = Renderer(image_size=24, texture_wrap=wrap, fill_back=fill_back, anti_aliasing=False)
        rgb = renderer(vertices, faces, mode="rgb", uvs=uvs, texture_image=image)
        (rgb * weight).sum().backward()
        results[name] = (rgb.detach(), image.grad, uvs.grad, vertices.grad)
    reference, native = results["reference"], results["native"]
    assert torch.allclose(native[0], reference[0], atol=1e-6)
    assert torch.allclose(native[1], reference[1], rtol=1e-4, atol=1e-5)
    assert torch.allclose(native[2], reference[2], rtol=1e-3, atol=1e-3 * float(reference[2].abs().max()) + 1e-5)
    assert_gradients_close(native[3], reference[3], "vertices")


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000))
def test_property_level_of_detail_is_the_pixel_footprint(seed):
    """The analytic footprint equals the finite difference of the perspective-correct UV between
    neighbouring pixel centres of the same face."""
    g = torch.Generator().manual_seed(seed)
    size = 64
    faces = torch.cat((torch.rand(1, 1, 3, 2, generator=g) * 1.6 - 0.8, 0.5 + 3 * torch.rand(1, 1, 3, 1, generator=g)), -1)
    faces = faces.reshape(1, 1, 9)
    from meshopt_cli.render import reference

    px, py, pz, valid = reference.pixel_coordinates(faces, size)
    if not bool(valid.all()):
        faces = faces.reshape(1, 1, 3, 3)[:, :, [2, 1, 0]].reshape(1, 1, 9)
        px, py, pz, valid = reference.pixel_coordinates(faces, size)
    area = reference.edge_function(px[0, 0, 0], py[0, 0, 0], px[0, 0, 1], py[0, 0, 1], px[0, 0, 2], py[0, 0, 2])
    if float(area) < 50:
        return
    uvs = torch.rand(1, 1, 3, 2, generator=g) * 2
    hw = (32, 48)
    _, coefficients = uv_module.face_footprints(faces, uvs, size, hw)
    q = torch.stack((px[0, 0], py[0, 0]), -1).mean(0)  # the centroid

    def uv_at(qx, qy):
        _, w, depth = reference.barycentric_depth(px[0], py[0], pz[0], torch.tensor([qx]), torch.tensor([qy]), 0.0, float("inf"))
        p = w * depth[:, None] / pz[0]
        return (p[..., None] * uvs[0]).sum(1)[0].double(), depth[0]

    uv0, depth = uv_at(float(q[0]), float(q[1]))
    h = 0.5
    scale = torch.tensor([hw[1], hw[0]], dtype=torch.float64)
    dx = (uv_at(float(q[0]) + h, float(q[1]))[0] - uv_at(float(q[0]) - h, float(q[1]))[0]) / (2 * h) * scale
    dy = (uv_at(float(q[0]), float(q[1]) + h)[0] - uv_at(float(q[0]), float(q[1]) - h)[0]) / (2 * h) * scale
    expected = 0.5 * math.log2(max(float(dx.square().sum()), float(dy.square().sum())))
    lod = uv_module.level_of_detail(coefficients, depth[None], uv0[None].float(), hw)
    assert abs(float(lod[0]) - expected) < 0.02 + 0.02 * abs(expected)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "uvs,image,match",
    [
        (torch.zeros(1, 2, 3), torch.rand(1, 4, 4, 3), "uvs must have shape"),
        (torch.zeros(1, 3, 3, 2), torch.rand(1, 4, 4, 3), r"uvs must have shape \[B, F, 3, 2\] with F = 2"),
        (torch.full((1, 2, 3, 2), float("nan")), torch.rand(1, 4, 4, 3), "uvs contains NaN"),
        (torch.zeros(1, 2, 3, 2, dtype=torch.float64), torch.rand(1, 4, 4, 3), "uvs must be float32"),
        (torch.zeros(1, 2, 3, 2), torch.rand(1, 0, 4, 3), "texture_image has zero size"),
        (torch.zeros(1, 2, 3, 2), torch.randint(0, 255, (1, 4, 4, 3), dtype=torch.uint8), "texture_image must be float32"),
        (torch.zeros(1, 2, 3, 2), torch.rand(1, 3, 4, 4), r"texture_image must have shape \[B, H, W, 3\]"),
        (torch.zeros(1, 2, 3, 2), torch.rand(3, 4, 4, 3), "texture_image must have shape"),
        (torch.zeros(1, 2, 3, 2), None, "uvs were given without texture_image"),
        (None, torch.rand(1, 4, 4, 3), "texture_image was given without uvs"),
        ([[0.0, 0.0]], torch.rand(1, 4, 4, 3), "uvs must be a torch.Tensor"),
    ],
)
def test_bad_uv_input_is_a_value_error_naming_it_before_any_kernel(monkeypatch, uvs, image, match):
    rasterize = sys.modules["meshopt_cli.render.rasterize"]

    def no_kernels(device):
        raise AssertionError("a kernel ran before the input was checked")

    monkeypatch.setattr(rasterize, "get_backend", no_kernels)
    with pytest.raises(ValueError, match=match):
        flat_renderer(8)(QUAD_VERTICES, QUAD_FACES, mode="rgb", uvs=uvs, texture_image=image)


def test_cubes_and_uvs_together_are_refused():
    cubes = torch.rand(1, 2, 2, 2, 2, 3)
    with pytest.raises(ValueError, match="both given"):
        flat_renderer(8)(QUAD_VERTICES, QUAD_FACES, cubes, mode="rgb", uvs=quad_uvs(), texture_image=torch.rand(1, 4, 4, 3))
