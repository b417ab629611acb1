"""The native CPU kernels against the pure-PyTorch oracle on generated scenes.

Face indices must be identical (ties included), floats equal to 1e-5, gradients to 1e-4 of the
largest gradient magnitude.
"""

import pytest
import torch
from conftest import assert_gradients_close
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshopt_cli.render import reference


@st.composite
def scenes(draw):
    """Random triangles with the awkward cases mixed in, described by a seed and some knobs."""
    batch = draw(st.integers(1, 3))
    count = draw(st.integers(1, 24))
    size = draw(st.integers(1, 41))
    texture_size = draw(st.integers(1, 6))
    near, far = draw(st.sampled_from([(0.1, 100.0), (0.5, 2.5), (1e-3, 3.0)]))
    snap = draw(st.booleans())  # vertices on pixel-centre grid lines: exact edge hits and depth ties
    seed = draw(st.integers(0, 2**31 - 1))
    fill_back = draw(st.booleans())
    light = draw(st.booleans())
    return dict(
        batch=batch,
        count=count,
        size=size,
        texture_size=texture_size,
        near=near,
        far=far,
        snap=snap,
        seed=seed,
        fill_back=fill_back,
        light=light,
    )


def make_scene(batch, count, size, texture_size, near, far, snap, seed, fill_back, light):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, count, 3, 2, generator=g) * 3 - 1.5  # some faces leave the image
    if snap:
        pixel = torch.round(0.5 * (xy * size + size - 1) * 2) / 2  # half-pixel grid
        xy = (2 * pixel + 1 - size) / size
    z = torch.rand(batch, count, 3, generator=g) * 3.5 - 0.5  # crosses near, far and zero
    if snap:
        z = torch.round(z * 4) / 4  # equal depths
    faces = torch.cat((xy, z[..., None]), dim=-1)
    kind = torch.randint(0, 8, (batch, count), generator=g)
    faces[kind == 0, 1] = faces[kind == 0, 0]  # two equal vertices: zero area
    faces[kind == 1, 2] = (faces[kind == 1, 0] + faces[kind == 1, 1]) / 2  # collinear
    if batch > 1:
        faces[1:] = faces[1:] * 0.9 + 0.05  # another camera for the other batch items
    cubes = count
    if fill_back:
        faces = torch.cat((faces, faces[:, :, [2, 1, 0]]), dim=1)
    faces = faces.reshape(batch, -1, 9).contiguous()
    textures = torch.rand(batch, cubes, texture_size, texture_size, texture_size, 3, generator=g)
    face_light = torch.rand(batch, faces.shape[1], 3, generator=g) if light else None
    background = torch.rand(batch, 3, generator=g)
    return faces, textures, face_light, background


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scene=scenes())
def test_native_equals_reference(native_backend, scene):
    faces, textures, light, background = make_scene(**scene)
    size, eps = scene["size"], 1e-3
    args = (size, scene["near"], scene["far"], eps, background, light, scene["fill_back"])
    expected = reference.forward(faces, textures, *args)
    actual = native_backend.forward(faces, textures, *args)
    assert torch.equal(actual[0], expected[0]), "visible faces differ"
    for name, a, e in zip(("weights", "depth", "rgb", "alpha"), actual[1:], expected[1:]):
        assert torch.allclose(a, e, atol=1e-5, rtol=1e-5), name

    face_index, weights, depth, rgb, alpha = expected
    g = torch.Generator().manual_seed(scene["seed"] + 1)
    for image in (alpha[..., None], rgb, torch.cat((alpha[..., None], rgb), dim=-1)):
        image = image.contiguous()
        grad = torch.randn(image.shape, generator=g)
        grad[torch.rand(image.shape[:-1], generator=g) < 0.3] = 0  # some pixels untouched by the loss
        assert_gradients_close(
            native_backend.backward_xy(faces, face_index, image, grad, eps),
            reference.backward_xy(faces, face_index, image, grad, eps),
        )
    grad_depth = torch.randn(depth.shape, generator=g)
    assert_gradients_close(
        native_backend.backward_depth(faces, face_index, grad_depth), reference.backward_depth(faces, face_index, grad_depth)
    )
    grad_rgb = torch.randn(rgb.shape, generator=g)
    tex_args = (faces, face_index, weights, depth, grad_rgb, textures, light, scene["fill_back"], eps)
    actual_t, actual_l = native_backend.backward_textures(*tex_args)
    expected_t, expected_l = reference.backward_textures(*tex_args)
    assert_gradients_close(actual_t, expected_t)
    if light is not None:
        assert_gradients_close(actual_l, expected_l)


def test_native_equals_reference_on_a_real_mesh(native_backend):
    """An icosphere seen through the whole renderer pipeline, with anti-aliasing."""
    import trimesh

    from meshopt_cli.render import Renderer

    mesh = trimesh.creation.icosphere(subdivisions=3)
    vertices = torch.tensor(mesh.vertices, dtype=torch.float32)[None]
    faces = torch.tensor(mesh.faces, dtype=torch.int32)[None]
    textures = torch.rand(1, faces.shape[1], 4, 4, 4, 3, generator=torch.Generator().manual_seed(0))
    results = {}
    for name in ("reference", "native"):
        renderer = Renderer(image_size=48)
        v = vertices.clone().requires_grad_(True)
        t = textures.clone().requires_grad_(True)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MESHOPT_BACKEND", name)
            rgb, depth, alpha = renderer(v, faces, t)
            target = torch.linspace(0, 1, rgb.numel()).reshape(rgb.shape)
            ((rgb - target) ** 2).sum().add(alpha.sum()).add(depth.mean()).backward()
        results[name] = (rgb.detach(), depth.detach(), alpha.detach(), v.grad, t.grad)
    for actual, expected in zip(results["native"], results["reference"]):
        assert_gradients_close(actual, expected)
