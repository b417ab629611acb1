"""The Renderer module and the rasterize functions: API, conventions, bad input."""

import math
import warnings

import pytest
import torch

from meshopt_cli.render import Renderer, rasterize_depth, rasterize_rgbad, rasterize_silhouettes


def icosphere():
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=2)
    return torch.tensor(mesh.vertices, dtype=torch.float32)[None], torch.tensor(mesh.faces, dtype=torch.int64)[None]


def test_modes_return_the_documented_shapes():
    vertices, faces = icosphere()
    renderer = Renderer(image_size=32)
    rgb, depth, alpha = renderer(vertices, faces)
    assert rgb.shape == (1, 3, 32, 32) and depth.shape == (1, 32, 32) and alpha.shape == (1, 32, 32)
    assert torch.equal(renderer(vertices, faces, mode="silhouettes"), alpha)
    assert torch.equal(renderer.render_silhouettes(vertices, faces), alpha)
    assert torch.allclose(renderer(vertices, faces, mode="depth"), depth)
    assert torch.allclose(renderer.render_rgb(vertices, faces), rgb)
    assert torch.allclose(renderer(vertices, faces, mode="rgb"), rgb)


def test_image_is_upright_and_lit_from_above():
    # a unit sphere seen from -z: covered pixels form a disc centred in the image; with the light
    # along +y the top half is brighter than the bottom half (row 0 is the top)
    vertices, faces = icosphere()
    renderer = Renderer(image_size=32, anti_aliasing=False)
    rgb, depth, alpha = renderer(vertices, faces)
    assert alpha[0, 16, 16] == 1 and alpha[0, 0, 0] == 0
    top, bottom = rgb[0, :, 8, 16].mean(), rgb[0, :, 24, 16].mean()
    assert top > bottom
    # the closest point of the sphere is at distance 2.732 - 1
    assert abs(float(depth[0][alpha[0] > 0].min()) - 1.732) < 0.05
    assert float(depth[0, 0, 0]) == renderer.far


def test_triangle_pointing_up_renders_upright():
    # a triangle with its apex at +y must have its apex in the top rows of the image
    vertices = torch.tensor([[[-0.8, -0.8, 0.0], [0.8, -0.8, 0.0], [0.0, 0.8, 0.0]]])
    faces = torch.tensor([[[0, 1, 2]]])
    alpha = Renderer(image_size=16, anti_aliasing=False, camera_mode="none")(
        vertices + torch.tensor([0, 0, 1.0]), faces, mode="silhouettes"
    )
    assert alpha[0, 2].sum() < alpha[0, 13].sum()


def test_attributes_can_change_after_construction():
    vertices, faces = icosphere()
    renderer = Renderer()
    renderer.image_size = 16
    renderer.anti_aliasing = False
    assert renderer(vertices, faces, mode="silhouettes").shape == (1, 16, 16)
    renderer.eye = (0, 0, -10)
    far_view = renderer(vertices, faces, mode="silhouettes").sum()
    renderer.eye = (0, 0, -3)
    assert renderer(vertices, faces, mode="silhouettes").sum() > far_view
    renderer.background_color = (1, 0, 0)
    rgb = renderer(vertices, faces, mode="rgb")
    assert torch.allclose(rgb[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]))


def test_per_batch_eye_background_and_light():
    vertices, faces = icosphere()
    vertices = vertices.expand(2, -1, -1).contiguous()
    renderer = Renderer(image_size=16, anti_aliasing=False)
    renderer.eye = torch.tensor([[0, 0, -2.732], [0, 0, -8.0]])
    renderer.background_color = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    renderer.light_direction = torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
    rgb, _, alpha = renderer(vertices, faces)
    assert alpha[0].sum() > alpha[1].sum()
    assert torch.allclose(rgb[1, :, 0, 0], torch.tensor([0.0, 1.0, 0.0]))


def test_int32_and_int64_faces_render_the_same():
    vertices, faces = icosphere()
    renderer = Renderer(image_size=16)
    assert torch.equal(renderer(vertices, faces.int(), mode="silhouettes"), renderer(vertices, faces, mode="silhouettes"))


def test_projection_camera_matches_look_at():
    # K for a 30 degree half angle and orig_size 2: f = 1 / tan(30), centre 1; R flips nothing
    vertices, faces = icosphere()
    renderer = Renderer(image_size=16, anti_aliasing=False)
    expected = renderer(vertices, faces, mode="silhouettes")
    f = 1 / math.tan(math.radians(30))
    K = torch.tensor([[f, 0, 1.0], [0, f, 1.0], [0, 0, 1]])
    R = torch.tensor([[1.0, 0, 0], [0, -1.0, 0], [0, 0, 1]])  # y down in pixel rows
    projected = Renderer(
        image_size=16, anti_aliasing=False, camera_mode="projection", K=K, R=R, t=torch.tensor([0, 0, 2.732]), orig_size=2
    )
    actual = projected(vertices, faces, mode="silhouettes")
    assert (actual != expected).float().mean() < 0.03


def test_gradients_reach_vertices_and_textures():
    vertices, faces = icosphere()
    vertices.requires_grad_(True)
    textures = torch.full((1, faces.shape[1], 2, 2, 2, 3), 0.5, requires_grad=True)
    rgb, depth, alpha = Renderer(image_size=16)(vertices, faces, textures)
    (rgb.mean() + alpha.mean() + depth.mean()).backward()
    assert torch.isfinite(vertices.grad).all() and vertices.grad.abs().sum() > 0
    assert torch.isfinite(textures.grad).all() and textures.grad.abs().sum() > 0


def test_lighting_module_function_matches_the_fused_path():
    from meshopt_cli.render import lighting, vertices_to_faces

    vertices, faces = icosphere()
    textures = torch.rand(1, faces.shape[1], 2, 2, 2, 3, generator=torch.Generator().manual_seed(0))
    renderer = Renderer(image_size=16, fill_back=False)
    fused = renderer(vertices, faces, textures, mode="rgb")
    lit = lighting(vertices_to_faces(vertices, faces), textures)
    unlit = Renderer(image_size=16, fill_back=False, light_intensity_ambient=1.0, light_intensity_directional=0.0)
    assert torch.allclose(unlit(vertices, faces, lit, mode="rgb"), fused, atol=1e-6)


def test_rasterize_functions_on_screen_space_faces():
    faces = torch.tensor([[[[-0.5, -0.5, 1.0], [0.5, -0.5, 1.0], [-0.5, 0.5, 1.0]]]])
    textures = torch.ones(1, 1, 1, 1, 1, 3)
    out = rasterize_rgbad(faces, textures, image_size=8, anti_aliasing=False)
    assert out["rgb"].shape == (1, 3, 8, 8)
    assert torch.equal(rasterize_silhouettes(faces, image_size=8, anti_aliasing=False), out["alpha"])
    assert torch.equal(rasterize_depth(faces, image_size=8, anti_aliasing=False), out["depth"])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda r, v, f: r(v.double(), f), "vertices must be float32"),
        (lambda r, v, f: r(v[0], f), r"vertices must have shape \[B, V, 3\]"),
        (lambda r, v, f: r(v, f.float()), "faces must be int32 or int64"),
        (lambda r, v, f: r(v, f + 1000), "out of range"),
        (lambda r, v, f: r(v, -f), "out of range"),
        (lambda r, v, f: r(v * float("nan"), f), "NaN"),
        (lambda r, v, f: r(v, f, torch.rand(1, 3, 2, 2, 2, 3)), "one cube per face"),
        (lambda r, v, f: r(v, f, torch.rand(1, f.shape[1], 2, 3, 2, 3)), "cubes"),
        (lambda r, v, f: r(v, f, mode="normals"), "mode must be one of"),
    ],
)
def test_bad_input_is_a_value_error_naming_the_argument(call, message):
    vertices, faces = icosphere()
    with pytest.raises(ValueError, match=message):
        call(Renderer(image_size=8), vertices, faces)


@pytest.mark.parametrize("size, message", [(0, "positive"), ((8, 9), "square"), (2.5, "positive int")])
def test_bad_image_size_is_a_value_error(size, message):
    vertices, faces = icosphere()
    renderer = Renderer(image_size=8)
    renderer.image_size = size
    with pytest.raises(ValueError, match=message):
        renderer(vertices, faces)


def test_bad_near_far_is_a_value_error():
    vertices, faces = icosphere()
    with pytest.raises(ValueError, match="near"):
        Renderer(image_size=8, near=0.0)(vertices, faces)


def test_backend_is_chosen_by_environment(monkeypatch):
    from meshopt_cli.render import get_backend, reference

    monkeypatch.setenv("MESHOPT_BACKEND", "reference")
    assert get_backend(torch.device("cpu")) is reference
    monkeypatch.setenv("MESHOPT_BACKEND", "native")
    assert get_backend(torch.device("cpu")).name == "native"
    monkeypatch.setenv("MESHOPT_BACKEND", "fast")
    with pytest.raises(ValueError, match="MESHOPT_BACKEND"):
        get_backend(torch.device("cpu"))


def test_a_broken_compiler_falls_back_to_reference_with_one_warning(monkeypatch):
    from meshopt_cli.render import native, reference
    from meshopt_cli.render.rasterize import get_backend

    def broken(kind, verbose=False):
        raise RuntimeError("Error building extension 'meshopt_cpu': c++: not found")

    monkeypatch.setattr(native, "load", broken)
    monkeypatch.setattr(native, "_loaded", {})
    monkeypatch.setenv("MESHOPT_BACKEND", "native")
    with pytest.warns(RuntimeWarning, match="reference backend"):
        assert get_backend(torch.device("cpu")) is reference
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert get_backend(torch.device("cpu")) is reference  # warned once
