"""save_obj / save_mesh -> load round trips, own UV layouts, atlases, GLB, atomic writes."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from meshopt_cli.mesh import builtin_shape, load_mesh, load_obj, save_mesh, save_obj


def random_mesh(rng, nv=40, nf=60):
    vertices = (rng.standard_normal((nv, 3)) * 10.0 ** rng.integers(-6, 6, (nv, 1))).astype(np.float32)
    vertices[0] = [
        np.float32(1 / 3),
        np.float32(-1e-38),
        np.float32(8.5e37),
    ]  # awkward floats (larger extents are refused on load)
    faces = np.stack([rng.permutation(nv)[:3] for _ in range(nf)]).astype(np.int64)
    return vertices, faces


def test_round_trip_without_textures_is_exact(tmp_path):
    rng = np.random.default_rng(1)
    vertices, faces = random_mesh(rng)
    written = save_obj(tmp_path / "plain.obj", torch.from_numpy(vertices)[None], torch.from_numpy(faces))
    assert written == [tmp_path / "plain.obj"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.obj"]  # no MTL / PNG / temp files
    v2, f2 = load_obj(tmp_path / "plain.obj", normalization=False)
    assert np.array_equal(v2.numpy(), vertices)  # bit-exact float32
    assert np.array_equal(f2.numpy(), faces)


@pytest.mark.parametrize("texture_size", [1, 2, 4, 5])
def test_round_trip_with_atlas_textures_within_one_level(tmp_path, texture_size):
    rng = np.random.default_rng(texture_size)
    vertices, faces = builtin_shape("builtin:sphere:2")
    textures = rng.random((len(faces), texture_size, texture_size, texture_size, 3)).astype(np.float32)
    written = save_obj(tmp_path / "tex.obj", vertices, faces, textures)
    assert [p.name for p in written] == ["tex.png", "tex.mtl", "tex.obj"]
    v2, f2, t2 = load_obj(tmp_path / "tex.obj", normalization=False, load_texture=True, texture_size=texture_size)
    assert np.array_equal(v2.numpy(), vertices) and np.array_equal(f2.numpy(), faces)
    assert np.abs(t2.numpy() - textures).max() <= 1 / 255


def test_atlas_read_at_another_texture_size_samples_the_visible_triangles(tmp_path):
    vertices, faces = builtin_shape("builtin:cube")
    colours = np.random.default_rng(0).random((len(faces), 3)).astype(np.float32)
    textures = np.broadcast_to(colours[:, None, None, None], (len(faces), 4, 4, 4, 3)).copy()
    save_obj(tmp_path / "c.obj", vertices, faces, textures)
    _, _, t8 = load_obj(tmp_path / "c.obj", load_texture=True, texture_size=8)
    assert np.abs(t8.numpy() - colours[:, None, None, None]).max() <= 1 / 255


def test_edited_atlas_triangle_is_sampled_not_ignored(tmp_path):
    vertices, faces = builtin_shape("builtin:cube")
    textures = np.full((len(faces), 3, 3, 3, 3), 0.25, np.float32)
    save_obj(tmp_path / "c.obj", vertices, faces, textures)
    png = tmp_path / "c.png"
    Image.new("RGB", Image.open(png).size, (255, 255, 255)).save(png)  # a user paints it white
    _, _, t = load_obj(tmp_path / "c.obj", load_texture=True, texture_size=3)
    assert np.allclose(t.numpy(), 1.0)


def island_uvs(num_faces, cols=4, cell=16, size=64):
    """Separate UV triangles (one per face, 3 px margins) in a size x size image."""
    uvs = np.zeros((num_faces, 3, 2), np.float32)
    for i in range(num_faces):
        ox, oy = (i % cols) * cell + 3, (i // cols) * cell + 3
        uvs[i] = np.array([[ox, oy], [ox + 9, oy], [ox, oy + 9]], np.float32) / (size - 1)
    return uvs


def test_round_trip_into_the_meshs_own_uv_layout(tmp_path):
    vertices, faces = builtin_shape("builtin:cube")  # 12 faces
    uvs = island_uvs(len(faces))
    colours = np.random.default_rng(3).random((len(faces), 3)).astype(np.float32)
    textures = np.broadcast_to(colours[:, None, None, None], (len(faces), 4, 4, 4, 3)).copy()
    save_obj(tmp_path / "own.obj", vertices, faces, textures, uvs=uvs, image_size=(64, 64))
    assert Image.open(tmp_path / "own.png").size == (64, 64)
    mesh = load_mesh(tmp_path / "own.obj")
    assert mesh.num_vertices == 8  # not split at the (many) UV seams
    assert np.array_equal(mesh.vertices, vertices) and np.array_equal(mesh.faces, faces)
    assert np.array_equal(mesh.uvs, uvs)  # the user's UVs, exactly
    assert np.abs(mesh.texture_cubes(4) - textures).max() <= 1 / 255


def test_save_mesh_bakes_into_the_input_layout_and_keeps_unused_pixels(tmp_path):
    # a quad whose UVs use the lower-left quarter of a 32 x 32 image
    src = tmp_path / "src"
    src.mkdir()
    ramp = np.zeros((32, 32, 3), np.uint8)
    ramp[..., 0] = np.arange(32)[None, :] * 8
    ramp[..., 2] = 77
    Image.fromarray(ramp, "RGB").save(src / "t.png")
    (src / "q.mtl").write_text("newmtl m\nmap_Kd t.png\n")
    (src / "q.obj").write_text(
        "mtllib q.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt .4 0\nvt .4 .4\nvt 0 .4\nusemtl m\nf 1/1 2/2 3/3 4/4\n"
    )
    mesh = load_mesh(src / "q.obj")
    textures = mesh.texture_cubes(4)
    out = tmp_path / "out" / "q.obj"
    out.parent.mkdir()
    save_mesh(out, mesh, textures=textures)
    saved = np.asarray(Image.open(out.parent / "q.png"))
    assert saved.shape == (32, 32, 3)
    assert np.array_equal(saved[:8, 24:], ramp[:8, 24:])  # top-right: no face there, kept
    again = load_mesh(out)
    assert np.array_equal(again.uvs, mesh.uvs) and again.num_vertices == 4
    # an image re-baked from cubes is an approximation of the original colours
    assert np.abs(again.texture_cubes(4) - textures).max() <= 5 / 255  # measured 3.2 / 255


def test_save_mesh_without_own_layout_writes_an_atlas(tmp_path):
    mesh = load_mesh("builtin:torus:6:4")
    textures = np.random.default_rng(0).random((mesh.num_faces, 2, 2, 2, 3)).astype(np.float32)
    moved = mesh.vertices * 1.5
    save_mesh(tmp_path / "t.obj", mesh, textures=textures, vertices=moved)
    v, f, t = load_obj(tmp_path / "t.obj", normalization=False, load_texture=True, texture_size=2)
    assert np.array_equal(v.numpy(), moved)
    assert np.abs(t.numpy() - textures).max() <= 1 / 255
    assert "meshopt-atlas" in (tmp_path / "t.mtl").read_text()


def test_glb_export_round_trip(tmp_path):
    vertices, faces = builtin_shape("builtin:cube")
    colours = np.random.default_rng(5).random((len(faces), 3)).astype(np.float32)
    textures = np.broadcast_to(colours[:, None, None, None], (len(faces), 4, 4, 4, 3)).copy()
    assert save_obj(tmp_path / "c.glb", vertices, faces, textures) == [tmp_path / "c.glb"]
    mesh = load_mesh(tmp_path / "c.glb")
    assert np.array_equal(mesh.vertices, vertices) and np.array_equal(mesh.faces, faces)
    assert np.abs(mesh.texture_cubes(4) - textures).max() <= 1 / 255
    save_obj(tmp_path / "plain.glb", vertices, faces)
    assert load_mesh(tmp_path / "plain.glb").num_faces == 12


def test_writes_are_atomic(tmp_path, monkeypatch):
    vertices, faces = builtin_shape("builtin:cube")
    target = tmp_path / "c.obj"
    save_obj(target, vertices, faces)
    before = target.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        save_obj(target, vertices * 2, faces, np.zeros((12, 2, 2, 2, 3), np.float32))
    monkeypatch.undo()
    assert target.read_bytes() == before  # old content intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.obj"]  # no temp or partial files
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # follows the umask, not mkstemp's 0600


def test_bad_arguments_to_save_obj(tmp_path):
    vertices, faces = builtin_shape("builtin:cube")
    with pytest.raises(ValueError, match="face indices"):
        save_obj(tmp_path / "x.obj", vertices, faces + 100)
    with pytest.raises(ValueError, match="textures"):
        save_obj(tmp_path / "x.obj", vertices, faces, np.zeros((3, 2, 2, 2, 3)))
    assert not (tmp_path / "x.obj").exists()


def test_save_mesh_without_new_textures_keeps_the_input_uvs_and_image(tmp_path):
    image = (np.random.default_rng(2).random((16, 16, 3)) * 255).astype(np.uint8)
    Image.fromarray(image, "RGB").save(tmp_path / "t.png")
    (tmp_path / "q.mtl").write_text("newmtl m\nmap_Kd t.png\n")
    (tmp_path / "q.obj").write_text(
        "mtllib q.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nusemtl m\nf 1/1 2/2 3/3 4/4\n"
    )
    mesh = load_mesh(tmp_path / "q.obj")
    (tmp_path / "out").mkdir()
    save_mesh(tmp_path / "out" / "fit.obj", mesh, vertices=mesh.vertices + 1)  # e.g. after `fit`
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "fit.png")), image)
    again = load_mesh(tmp_path / "out" / "fit.obj")
    assert np.array_equal(again.uvs, mesh.uvs) and np.array_equal(again.vertices, mesh.vertices + 1)
