"""The native CPU kernels against the pure-PyTorch oracle on generated scenes and on the named
edge cases of kernel_scenes.py.

Face indices must be identical (ties included), floats equal to 1e-5, gradients entry by entry
with equal nonzero patterns (conftest.assert_gradients_close). Also: the ops' input checks, the
light-only texture backward, and deterministic, repeatable CPU backward passes.
"""

import pytest
import torch
from conftest import assert_gradients_close
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_scenes import EDGE_SCENES, compare_backends, random_scene

from meshopt_cli.render import native, reference


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


def ill_conditioned(faces: torch.Tensor, size: int) -> torch.Tensor:
    """``[B, F]`` bool: faces whose area in pixel units is below 1e-3 px² (the generator's collinear
    and repeated vertices). On a snapped grid such a face can still cover the pixel centres on its
    line, and the exact depth gradient there divides by its area: rounding noise that no two float
    evaluation orders share, so those faces are left out of that comparison (their forward maps and
    approximate gradients are still compared). Found by hypothesis: 1 face, 3 pixels, 0.03 vs -0.19."""
    p = 0.5 * (faces.reshape(*faces.shape[:2], 3, 3)[..., :2] * size + size - 1)
    a, b, c = p[..., 0, :], p[..., 1, :], p[..., 2, :]
    area = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])
    return area.abs() < 1e-3


def without_faces(gradient: torch.Tensor, dropped: torch.Tensor) -> torch.Tensor:
    """``gradient [B, F, ...]`` with the entries of the ``dropped [B, F]`` faces set to zero."""
    return gradient * (~dropped).reshape(*dropped.shape, *([1] * (gradient.ndim - 2)))


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
    # 30 % of the pixels untouched by the loss, or 97 % (the CPU builds its OUT lists differently
    # when fewer than one pixel in 8 has a gradient: both ways must agree with the reference)
    for image, untouched in (
        (alpha[..., None], 0.3),
        (rgb, 0.3),
        (torch.cat((alpha[..., None], rgb), dim=-1), 0.3),
        (alpha[..., None], 0.97),
        (torch.cat((alpha[..., None], rgb), dim=-1), 0.97),
    ):
        image = image.contiguous()
        grad = torch.randn(image.shape, generator=g)
        grad[torch.rand(image.shape[:-1], generator=g) < untouched] = 0
        assert_gradients_close(
            native_backend.backward_xy(faces, face_index, image, grad, eps),
            reference.backward_xy(faces, face_index, image, grad, eps),
        )
    grad_depth = torch.randn(depth.shape, generator=g)
    dropped = ill_conditioned(faces, size)  # the exact depth gradient divides by the face's area
    assert_gradients_close(
        without_faces(native_backend.backward_depth(faces, face_index, grad_depth), dropped),
        without_faces(reference.backward_depth(faces, face_index, grad_depth), dropped),
        "backward_depth",
        exact_zeros=False,
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
    for name, actual, expected in zip(("rgb", "depth", "alpha", "vertices", "textures"), results["native"], results["reference"]):
        assert_gradients_close(actual, expected, name, exact_zeros=False)


@pytest.mark.parametrize("name", sorted(EDGE_SCENES))
def test_native_equals_reference_on_edge_scenes(native_backend, name):
    scene, size = EDGE_SCENES[name]()
    maps = compare_backends(reference, native_backend, "cpu", scene, size, eps=1e-3, seed=len(name), exact=False)
    face_index = maps[0]
    if name == "nothing-drawn":
        assert (face_index == -1).all()
    if name == "chunk-ties":
        assert face_index[0].eq(0).all() and face_index[1].eq(256).all() and face_index[2].eq(255).all()
    if name == "full-bins":
        assert (face_index[:, :16, :16] >= 0).sum() > 100 and (face_index[:, 16:, 16:] == -1).all()
    if name == "full-image":
        assert (face_index >= 0).all()


def test_light_only_texture_backward(backend):
    """need_textures=False: no texture gradient, the same light gradient."""
    faces, textures, light, background = random_scene(6, 2, 30, 24, 3, fill_back=True, light=True)
    face_index, weights, depth, rgb, _ = backend.forward(faces, textures, 24, 0.1, 100.0, 1e-4, background, light, True)
    grad_rgb = torch.randn(rgb.shape, generator=torch.Generator().manual_seed(6))
    args = (faces, face_index, weights, depth, grad_rgb, textures, light, True, 1e-4)
    full_textures, full_light = backend.backward_textures(*args)
    none_textures, only_light = backend.backward_textures(*args, need_textures=False)
    assert none_textures is None and full_textures.abs().sum() > 0
    assert torch.equal(only_light, full_light)


def test_native_cpu_ops_reject_bad_inputs():
    """Through the raw module: non-contiguous faces, a wrong index dtype, mismatched shapes."""
    module = native.load("cpu")
    faces, textures, _, background = random_scene(9, 1, 20, 16, 2)
    empty = faces.new_empty(0)
    face_index = module.forward(faces, textures, 16, 0.1, 100.0, 1e-4, background, empty, False, True)[0]
    image = torch.rand(1, 16, 16, 1)
    strided = torch.rand(1, 9, 20).transpose(1, 2)
    with pytest.raises(RuntimeError, match="faces must be contiguous"):
        module.backward_xy(strided, face_index, image, image, 1e-4)
    with pytest.raises(RuntimeError, match="face_index must be Int"):
        module.backward_depth(faces, face_index.long(), torch.rand(1, 16, 16))
    with pytest.raises(RuntimeError, match="grad_image must have shape"):
        module.backward_xy(faces, face_index, image, torch.rand(1, 16, 16, 3), 1e-4)
    with pytest.raises(RuntimeError, match="faces must be float32"):
        module.forward(faces.double(), textures, 16, 0.1, 100.0, 1e-4, background, empty, False, True)


def test_cpu_backward_is_deterministic_and_allowed_under_deterministic_algorithms():
    """The CPU kernels own their sums (no atomics): the same bits twice, also with
    torch.use_deterministic_algorithms(True), which the CUDA backward refuses instead."""
    from meshopt_cli.render import rasterize_rgbad

    faces, textures, light, background = random_scene(12, 2, 60, 48, 3, fill_back=True, light=True, specials=False)
    grads = []
    torch.use_deterministic_algorithms(True)
    try:
        for _ in range(2):
            f = faces.reshape(2, -1, 3, 3).clone().requires_grad_(True)
            t = textures.clone().requires_grad_(True)
            out = rasterize_rgbad(f, t, image_size=48, face_light=light, fill_back=True, background_color=background)
            (out["rgb"] * torch.linspace(0, 1, out["rgb"].numel()).reshape(out["rgb"].shape)).sum().add(
                out["alpha"].sum()
            ).backward()
            grads.append((f.grad, t.grad))
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])
    assert grads[0][0].abs().sum() > 0


def test_nondeterministic_alert_follows_torch_settings():
    native.alert_nondeterministic("backward_xy")  # deterministic algorithms off: nothing
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with pytest.warns(UserWarning, match="backward_xy on CUDA does not have a deterministic implementation"):
            native.alert_nondeterministic("backward_xy")
        torch.use_deterministic_algorithms(True)
        with pytest.raises(RuntimeError, match="does not have a deterministic implementation"):
            native.alert_nondeterministic("backward_xy")
    finally:
        torch.use_deterministic_algorithms(False)


def test_the_ill_conditioned_rule_drops_only_degenerate_faces():
    faces = torch.tensor(
        [
            [0.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0, 0.5, 1.0],  # a real triangle
            [0.42424244, -1.060606, 2.25, 0.969697, -0.7878788, 2.75, 0.6969697, -0.9242424, 2.5],  # collinear
            [0.1, 0.1, 1.0, 0.1, 0.1, 1.0, 0.3, 0.2, 1.0],  # two equal vertices
        ]
    )[None]
    assert ill_conditioned(faces, 33).tolist() == [[False, True, True]]
    kept = without_faces(torch.ones(1, 3, 9), ill_conditioned(faces, 33))
    assert kept[0, 0].eq(1).all() and kept[0, 1:].eq(0).all()
