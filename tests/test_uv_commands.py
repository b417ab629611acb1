"""UV textures in the commands: `render --texture uv|cubes`, the mesh side (layouts kept, xatlas
layouts generated, the image written as it is) and `style`/`dream --texture uv`."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import meshopt_in_process as meshopt
from PIL import Image

from meshopt_cli.mesh import generate_layout, load_mesh, save_uv_mesh, uv_texture


def write_detailed_quad(folder: Path, side: int = 64, cells: int = 8) -> Path:
    """A quad in the z = 0 plane with a fine two-colour checker (too fine for 4³ cubes on 2 faces)."""
    index = (np.arange(side) * cells // side)[:, None] + (np.arange(side) * cells // side)[None, :]
    image = np.where((index % 2 == 0)[..., None], np.array([230, 40, 20], np.uint8), np.array([20, 60, 230], np.uint8))
    Image.fromarray(image.astype(np.uint8)).save(folder / "detail.png")
    (folder / "detail.mtl").write_text("newmtl paint\nKd 1 1 1\nmap_Kd detail.png\n")
    (folder / "detail.obj").write_text(
        "mtllib detail.mtl\n"
        "v -1 -1 0\nv 1 -1 0\nv 1 1 0\nv -1 1 0\n"
        "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n"
        "usemtl paint\nf 1/1 2/2 3/3 4/4\n"
    )
    return folder / "detail.obj"


def render_frame(folder: Path, *extra) -> tuple[np.ndarray, dict]:
    result = meshopt(
        "render", "detail.obj", "--frames", "1", "--elevation", "0", "--size", "64", "--background", "black", *extra, cwd=folder
    )
    assert result.returncode == 0, result.stderr
    out = folder / "meshopt-out" / "detail"
    frame = np.asarray(Image.open(out / "turntable.gif").convert("RGB")).astype(float)
    return frame, json.loads((out / "metrics.json").read_text())


def test_render_shows_a_uv_textured_mesh_through_its_image_by_default(tmp_path):
    write_detailed_quad(tmp_path)
    uv_frame, uv_metrics = render_frame(tmp_path)
    cube_frame, cube_metrics = render_frame(tmp_path, "--texture", "cubes", "--force")
    assert uv_metrics["texture"] == {"mode": "uv", "image_size": [64, 64]}
    assert cube_metrics["texture"] == {"mode": "cubes", "texture_size": 4}
    centre = (slice(20, 44), slice(20, 44))
    # the checker's cells are there with --texture uv (red and blue pixels side by side) ...
    red = (uv_frame[centre][..., 0] > 2 * uv_frame[centre][..., 2]).mean()
    blue = (uv_frame[centre][..., 2] > 2 * uv_frame[centre][..., 0]).mean()
    assert red > 0.25 and blue > 0.25

    # ... and blurred into a smooth blend by 4³ cubes on two faces: compare the neighbour differences
    def detail(frame):
        return np.abs(np.diff(frame[centre], axis=1)).mean()

    assert detail(uv_frame) > 3 * detail(cube_frame)


def test_uv_texture_keeps_the_meshs_own_layout_and_image_at_full_size(tmp_path):
    mesh = load_mesh(write_detailed_quad(tmp_path, side=96))
    layout = uv_texture(mesh, resolution=32)
    assert not layout.generated
    assert layout.image.shape == (96, 96, 3)
    assert np.array_equal(layout.uvs, mesh.uvs)


def test_generated_layout_covers_every_face_once_inside_the_unit_square():
    mesh = load_mesh("builtin:sphere")
    uvs = generate_layout(mesh.vertices, mesh.faces, 128)
    assert uvs.shape == (mesh.num_faces, 3, 2)
    assert np.isfinite(uvs).all() and uvs.min() >= 0 and uvs.max() <= 1
    # charts do not overlap: the UV triangles' areas add up to at most the square
    a, b, c = uvs[:, 0], uvs[:, 1], uvs[:, 2]
    area = 0.5 * np.abs((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1]))
    assert (area > 0).all() and area.sum() <= 1.0
    layout = uv_texture(mesh, resolution=64)
    assert layout.generated and layout.image.shape == (64, 64, 3)


@pytest.mark.parametrize("suffix", [".obj", ".glb"])
def test_a_uv_mesh_is_written_with_its_image_as_it_is(tmp_path, suffix):
    mesh = load_mesh(write_detailed_quad(tmp_path))
    rng = np.random.default_rng(0)
    image = (rng.integers(0, 256, (64, 64, 3)) / 255.0).astype(np.float32)
    written = save_uv_mesh(tmp_path / f"out{suffix}", mesh.vertices, mesh.faces, mesh.uvs, image)
    assert written[-1].name == f"out{suffix}"
    back = load_mesh(tmp_path / f"out{suffix}")
    assert back.has_uv_layout  # .glb: the image is the base colour texture
    assert np.abs(back.texture - image).max() < 1e-6
    corners = {tuple(np.round(p, 6)) for p in back.uvs.reshape(-1, 2)}
    assert corners == {(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)}


STYLE_FAST = ["--weights", "random", "--image-size", "64", "--device", "cpu", "-q", "--texture", "uv"]


def write_island_quad(folder: Path) -> Path:
    """A quad whose UVs cover the middle of a 48 x 64 noise image: texels [12, 36) x [16, 48)."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3)).astype(np.uint8)).save(folder / "base.png")
    (folder / "q.mtl").write_text("newmtl paint\nKd 1 1 1\nmap_Kd base.png\n")
    (folder / "q.obj").write_text(
        "mtllib q.mtl\nv -1 -1 0\nv 1 -1 0\nv 1 1 0\nv -1 1 0\n"
        "vt 0.25 0.25\nvt 0.75 0.25\nvt 0.75 0.75\nvt 0.25 0.75\nusemtl paint\nf 1/1 2/2 3/3 4/4\n"
    )
    Image.new("RGB", (40, 30), (255, 0, 0)).save(folder / "red.png")
    return folder / "q.obj"


def test_style_with_uv_textures_changes_the_input_image_only_where_the_layout_has_faces(tmp_path):
    write_island_quad(tmp_path)
    result = meshopt(
        "style",
        "q.obj",
        "red.png",
        *STYLE_FAST,
        "--iterations",
        "4",
        "--texture-lr",
        "0.3",
        "--style-weight",
        "1e4",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "meshopt-out" / "q-red"
    before = np.asarray(Image.open(tmp_path / "base.png")).astype(int)
    after = np.asarray(Image.open(folder / "stylized.png")).astype(int)
    assert after.shape == before.shape == (48, 64, 3)  # the input's own size
    changed = np.abs(after - before).max(-1) > 0
    inside = np.zeros_like(changed)
    inside[10:38, 14:50] = True  # the island, grown by the two texels bilinear reads reach
    assert not changed[~inside].any()
    assert changed[12:36, 16:48].mean() > 0.9
    # the result keeps the input's layout: the same four UV corners
    mesh = load_mesh(folder / "stylized.obj")
    assert {tuple(p) for p in np.round(mesh.uvs.reshape(-1, 2), 6)} == {(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)}
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["texture"]["mode"] == "uv" and metrics["texture"]["written_image_size"] == [48, 64]


def test_dream_with_uv_textures_on_a_mesh_without_uvs_generates_a_layout(tmp_path):
    result = meshopt(
        "dream",
        "builtin:cube",
        "--weights",
        "random",
        "--image-size",
        "64",
        "--device",
        "cpu",
        "-q",
        "--iterations",
        "2",
        "--texture",
        "uv",
        "--texture-resolution",
        "96",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    (folder,) = (tmp_path / "meshopt-out").iterdir()
    assert Image.open(folder / "dream.png").size == (96, 96)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["texture"] == {
        "mode": "uv",
        "layout": "generated (xatlas)",
        "optimized_image_size": [96, 96],
        "written_image_size": [96, 96],
    }
    assert load_mesh(folder / "dream.obj").has_uv_layout
