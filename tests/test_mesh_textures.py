"""Texture cubes from MTL materials: map_Kd images, Kd colours, grey, image modes, wrapping."""

import warnings

import numpy as np
import pytest
from PIL import Image

from meshopt_cli.mesh import cube_weights, load_mesh, load_obj

RED, GREEN, BLUE, WHITE = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 1.0)

QUAD = """\
mtllib quad.mtl
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
vt 0 0
vt 1 0
vt 1 1
vt 0 1
usemtl checker
f 1/1 2/2 3/3 4/4
"""


def quad_fixture(tmp_path, image, mtl="newmtl checker\nKd 1 1 1\nmap_Kd checker.png\n", obj=QUAD):
    if image is not None:
        image.save(tmp_path / "checker.png")
    (tmp_path / "quad.mtl").write_text(mtl)
    (tmp_path / "quad.obj").write_text(obj)
    return tmp_path / "quad.obj"


def checker(size=8):
    """size x size checker of four blocks: top-left red, top-right green, bottom-left blue,
    bottom-right white (as seen in the file, row 0 = top)."""
    h = size // 2
    arr = np.zeros((size, size, 3), np.uint8)
    arr[:h, :h] = (255, 0, 0)
    arr[:h, h:] = (0, 255, 0)
    arr[h:, :h] = (0, 0, 255)
    arr[h:, h:] = (255, 255, 255)
    return Image.fromarray(arr, "RGB")


def test_cube_sample_weights_follow_the_renormalisation_rule():
    w = cube_weights(4).reshape(4, 4, 4, 3)
    assert np.allclose(w.sum(-1), 1.0)
    assert np.allclose(w[3, 0, 0], [1, 0, 0]) and np.allclose(w[1, 0, 0], [1, 0, 0])
    assert np.allclose(w[1, 1, 0], [0.5, 0.5, 0]) and np.allclose(w[3, 3, 0], [0.5, 0.5, 0])
    assert np.allclose(w[2, 1, 0], [2 / 3, 1 / 3, 0])  # sums to 1 already: unchanged
    assert np.allclose(w[0, 0, 0], [1 / 3, 1 / 3, 1 / 3])  # sum 0: the centroid
    assert np.allclose(cube_weights(1), [[1 / 3, 1 / 3, 1 / 3]])


def test_checker_quad_known_colours_at_known_samples(tmp_path):
    path = quad_fixture(tmp_path, checker())
    vertices, faces, textures = load_obj(path, load_texture=True, texture_size=4)
    assert textures.shape == (2, 4, 4, 4, 3) and textures.dtype.is_floating_point
    t = textures.numpy()
    # face 0 = corners (0,0) (1,0) (1,1) in UV; v = 0 is the bottom of the image file
    assert np.allclose(t[0, 3, 0, 0], BLUE)  # vertex 0, UV (0, 0): bottom-left
    assert np.allclose(t[0, 0, 3, 0], WHITE)  # vertex 1, UV (1, 0): bottom-right
    assert np.allclose(t[0, 0, 0, 3], GREEN)  # vertex 2, UV (1, 1): top-right
    assert np.allclose(t[1, 0, 0, 3], RED)  # face 1's vertex 2, UV (0, 1): top-left
    assert np.allclose(t[0, 2, 1, 0], BLUE)  # UV (1/3, 0): x = 7/3 px, inside the blue block
    assert np.allclose(t[0, 1, 2, 0], WHITE)  # UV (2/3, 0): x = 14/3 px, inside the white block
    assert np.allclose(t[0, 1, 0, 0], BLUE)  # (1,0,0) renormalised onto vertex 0


def test_bilinear_sampling_between_pixels(tmp_path):
    arr = np.array([[RED, GREEN], [BLUE, WHITE]], np.float32)  # 2 x 2, top row red green
    path = quad_fixture(tmp_path, Image.fromarray((arr * 255).astype(np.uint8), "RGB"))
    _, _, textures = load_obj(path, load_texture=True, texture_size=4)
    # face 0 centroid: UV (2/3, 1/3) -> pixel position (2/3, 1/3) in the flipped image
    # (row 0 = bottom = blue white, row 1 = top = red green)
    fx, fy = 2 / 3, 1 / 3
    bottom = (1 - fx) * np.array(BLUE) + fx * np.array(WHITE)
    top = (1 - fx) * np.array(RED) + fx * np.array(GREEN)
    assert np.allclose(textures[0, 1, 1, 1].numpy(), (1 - fy) * bottom + fy * top, atol=1e-6)
    # nearest-neighbour when asked (the reference's use_bilinear=False)
    _, _, nearest = load_obj(path, load_texture=True, texture_size=4, use_bilinear=False)
    assert np.allclose(nearest[0, 1, 1, 1].numpy(), WHITE)  # rounds to pixel (1, 0): white


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "LA", "I;16"])
def test_image_modes(tmp_path, mode):
    base = checker()
    if mode == "RGBA":
        image = base.convert("RGBA")
        image.putalpha(0)  # alpha is ignored
        expect = BLUE
    elif mode == "P":
        image = base.convert("P")
        expect = BLUE
    elif mode == "I;16":
        image = Image.fromarray(np.full((4, 4), 65535 // 4, np.uint16))
        assert image.mode.startswith("I;16")
        expect = (0.25, 0.25, 0.25)
    else:
        image = base.convert(mode)
        grey = np.asarray(base.convert("L"), np.float32)[-1, 0] / 255.0  # bottom-left, as L
        expect = (grey, grey, grey)
    path = quad_fixture(tmp_path, image)
    _, _, textures = load_obj(path, load_texture=True, texture_size=2)
    assert np.allclose(textures[0, 1, 0, 0].numpy(), expect, atol=1e-4)


def test_kd_only_material_and_no_material_and_undefined_material(tmp_path):
    obj = "mtllib quad.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3\nusemtl flat\nf 1 3 4\nusemtl ghost\nf 1 2 4\n"
    path = quad_fixture(tmp_path, None, mtl="newmtl flat\nKd 0.2 0.4 0.6\n", obj=obj)
    with pytest.warns(UserWarning, match="ghost"):
        _, _, textures = load_obj(path, load_texture=True, texture_size=3)
    t = textures.numpy()
    assert np.all(t[0] == 0.5)  # before any usemtl: grey
    assert np.allclose(t[1], [0.2, 0.4, 0.6])
    assert np.all(t[2] == 0.5)  # the MTL does not define it: grey


def test_file_without_mtllib_gives_grey(tmp_path):
    (tmp_path / "plain.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    _, _, textures = load_obj(tmp_path / "plain.obj", load_texture=True, texture_size=2)
    assert textures.shape == (1, 2, 2, 2, 3) and np.all(textures.numpy() == 0.5)


def test_missing_texture_image_warns_and_gives_grey(tmp_path):
    path = quad_fixture(tmp_path, None, mtl="newmtl checker\nKd 1 0 0\nmap_Kd nowhere.png\n")
    with pytest.warns(UserWarning, match="nowhere.png.*missing"):
        _, _, textures = load_obj(path, load_texture=True)
    assert np.all(textures.numpy() == 0.5)


def test_unreadable_texture_image_warns_and_gives_grey(tmp_path):
    (tmp_path / "checker.png").write_bytes(b"\x89PNG but not really")
    path = quad_fixture(tmp_path, None)
    with pytest.warns(UserWarning, match="unreadable"):
        _, _, textures = load_obj(path, load_texture=True)
    assert np.all(textures.numpy() == 0.5)


def test_missing_mtl_warns_and_gives_grey(tmp_path):
    (tmp_path / "quad.obj").write_text(QUAD)
    with pytest.warns(UserWarning, match="quad.mtl"):
        _, _, textures = load_obj(tmp_path / "quad.obj", load_texture=True)
    assert np.all(textures.numpy() == 0.5)


def test_no_warnings_and_no_image_reading_without_load_texture(tmp_path):
    (tmp_path / "quad.obj").write_text(QUAD)  # MTL missing: irrelevant without textures
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vertices, faces = load_obj(tmp_path / "quad.obj")
    assert faces.shape == (2, 3)


def test_map_kd_options_and_spaces_in_the_name(tmp_path):
    checker().save(tmp_path / "my checker.png")
    path = quad_fixture(tmp_path, None, mtl="newmtl checker\nmap_Kd -s 1 1 1 -bm 0.5 my checker.png\n")
    _, _, textures = load_obj(path, load_texture=True)
    assert np.allclose(textures[0, 3, 0, 0].numpy(), BLUE)


RAMP_OBJ = """\
mtllib quad.mtl
v 0 0 0
v 1 0 0
v 0 1 0
vt {u0} 0
vt {u1} 0
vt {u0} 1
usemtl checker
f 1/1 2/2 3/3
"""


@pytest.mark.parametrize(
    "wrapping,u,expect",
    [
        ("repeat", 1.25, 0.25),
        ("REPEAT", -0.75, 0.25),
        ("repeat", 1.0, 1.0),
        ("mirrored_repeat", 1.25, 0.75),
        ("mirrored_repeat", -0.25, 0.25),
        ("clamp_to_edge", 1.25, 1.0),
        ("clamp_to_edge", -0.5, 0.0),
    ],
)
def test_texture_wrapping(tmp_path, wrapping, u, expect):
    ramp = np.linspace(0, 255, 5).astype(np.uint8)[None, :].repeat(5, 0)  # grey = u
    path = quad_fixture(tmp_path, Image.fromarray(ramp, "L"), obj=RAMP_OBJ.format(u0=0, u1=u))
    _, _, textures = load_obj(path, load_texture=True, texture_size=2, texture_wrapping=wrapping)
    assert np.allclose(textures[0, 0, 1, 0].numpy(), expect, atol=1 / 255)  # vertex 1


def test_clamp_to_border_is_black_outside(tmp_path):
    ramp = np.full((4, 4), 200, np.uint8)
    path = quad_fixture(tmp_path, Image.fromarray(ramp, "L"), obj=RAMP_OBJ.format(u0=0, u1=1.5))
    _, _, textures = load_obj(path, load_texture=True, texture_size=2, texture_wrapping="clamp_to_border")
    assert np.allclose(textures[0, 0, 1, 0].numpy(), 0.0)
    assert np.allclose(textures[0, 1, 0, 0].numpy(), 200 / 255)


def test_unknown_wrapping_is_a_value_error(tmp_path):
    path = quad_fixture(tmp_path, checker())
    with pytest.raises(ValueError, match="wrapping"):
        load_obj(path, load_texture=True, texture_wrapping="wobble")


def test_mesh_knows_its_uv_layout(tmp_path):
    mesh = load_mesh(quad_fixture(tmp_path, checker()))
    assert mesh.has_uv_layout and mesh.texture.shape == (8, 8, 3)
    assert mesh.uvs.shape == (2, 3, 2)
    assert not load_mesh("builtin:cube").has_uv_layout
