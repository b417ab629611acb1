"""`meshopt render` end to end (the first run in a subprocess as users run it, the others in process)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import meshopt_in_process
from PIL import Image


def meshopt_subprocess(*args, cwd):
    return subprocess.run([sys.executable, "-m", "meshopt_cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


meshopt = meshopt_in_process


def write_textured_quad(folder: Path) -> Path:
    """A quad in the z = 0 plane, textured red on its left half (u < 0.5) and blue on its right."""
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, :4] = (255, 0, 0)
    image[:, 4:] = (0, 0, 255)
    Image.fromarray(image).save(folder / "checker.png")
    (folder / "quad.mtl").write_text("newmtl paint\nKd 1 1 1\nmap_Kd checker.png\n")
    (folder / "quad.obj").write_text(
        "mtllib quad.mtl\n"
        "v -1 -1 0\nv 1 -1 0\nv 1 1 0\nv -1 1 0\n"
        "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n"
        "usemtl paint\nf 1/1 2/2 3/3 4/4\n"
    )
    return folder / "quad.obj"


def test_turntable_gif_has_the_asked_frames_and_size(tmp_path):
    result = meshopt_subprocess(
        "render", "builtin:cube", "--frames", "6", "--size", "40", "-o", "cube.gif", "--png", "--sheet", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    gif = Image.open(tmp_path / "cube.gif")
    assert gif.n_frames == 6 and gif.size == (40, 40)
    assert gif.info.get("loop") == 0
    assert len(list((tmp_path / "cube-frames").glob("*.png"))) == 6
    assert Image.open(tmp_path / "cube-sheet.png").size == (4 * 40, 2 * 40)
    assert result.stdout == ""  # results are files; logs go to stderr


def test_textured_obj_shows_its_texture(tmp_path):
    write_textured_quad(tmp_path)
    result = meshopt(
        "render",
        "quad.obj",
        "--frames",
        "1",
        "--elevation",
        "0",
        "--size",
        "64",
        "--background",
        "black",
        "-o",
        "quad.gif",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    frame = np.asarray(Image.open(tmp_path / "quad.gif").convert("RGB")).astype(int)
    left, right = frame[32, 20], frame[32, 44]
    assert left[0] > 2 * left[2] and left[0] > 60  # red where u < 0.5 (world x < 0: image left)
    assert right[2] > 2 * right[0] and right[2] > 60


def test_several_meshes_get_their_own_outputs_and_a_bad_one_is_skipped(tmp_path):
    result = meshopt("render", "builtin:cube", "missing.obj", "builtin:cube", "--frames", "2", "--size", "16", cwd=tmp_path)
    assert result.returncode == 1
    assert sorted(p.name for p in (tmp_path / "meshopt-out").iterdir()) == ["cube", "cube-2"]
    assert sorted(p.name for p in (tmp_path / "meshopt-out" / "cube-2").iterdir()) == ["metrics.json", "turntable.gif"]
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == ["meshopt: error: missing.obj: no such file"]
    assert "Traceback" not in result.stderr


def test_existing_output_is_kept_without_force(tmp_path):
    assert meshopt("render", "builtin:cube", "--frames", "2", "--size", "16", "-o", "a.gif", cwd=tmp_path).returncode == 0
    before = (tmp_path / "a.gif").read_bytes()
    result = meshopt("render", "builtin:torus", "--frames", "2", "--size", "16", "-o", "a.gif", cwd=tmp_path)
    assert result.returncode == 1 and "--force" in result.stderr
    assert (tmp_path / "a.gif").read_bytes() == before
    assert (
        meshopt("render", "builtin:torus", "--frames", "2", "--size", "16", "-o", "a.gif", "--force", cwd=tmp_path).returncode
        == 0
    )
    assert (tmp_path / "a.gif").read_bytes() != before


def test_usage_errors_exit_2(tmp_path):
    for args in (["--device", "tpu"], ["--background", "plaid"], ["--frames", "0"]):
        result = meshopt("render", "builtin:cube", *args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "meshopt-out").exists()


def test_default_turntable_frames_the_whole_mesh_and_lights_vertical_faces():
    """builtin:cube used to be clipped on all four sides at the default camera, its vertical faces
    one flat grey (the only directional light came from straight above)."""
    import numpy as np
    import torch

    from meshopt_cli.mesh import builtin_shape, normalize_vertices
    from meshopt_cli.turntable import framing_distance, render_views

    v, f = builtin_shape("builtin:cube")
    vertices = normalize_vertices(torch.tensor(v, dtype=torch.float32))
    faces = torch.tensor(f, dtype=torch.int64)
    assert framing_distance(vertices) > 2.732  # the paper's distance clips the [-1, 1] cube's corners
    frames = render_views(vertices, faces, frames=8, image_size=64)
    covered = (frames < 250).any(-1)  # white background
    assert covered.any(axis=(1, 2)).all()
    border = np.concatenate([covered[:, 0], covered[:, -1], covered[:, :, 0], covered[:, :, -1]], axis=1)
    assert not border.any(), "the mesh touches the image border"
    # azimuth 0, elevation 30: the front (vertical) face below the centre is lit beyond the ambient 0.5
    front = frames[0, 44, 32].astype(float) / 255
    assert front.mean() > 0.7 * 0.5 + 0.05
    top = frames[0, 14, 32].astype(float) / 255
    assert top.mean() > front.mean()  # and the top more


def test_render_from_straight_above_is_not_blank(tmp_path):
    result = meshopt(
        "render", "builtin:cube", "--elevation", "90", "--frames", "2", "--size", "32", "--png", "-o", "out", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    from PIL import Image

    frame = np.asarray(Image.open(next((tmp_path / "out/cube/frames").glob("*.png"))).convert("RGB"))
    assert (frame < 250).any(-1).mean() > 0.2


def test_turntable_frames_are_the_renderers_images_with_the_camera_light():
    import torch

    from meshopt_cli.mesh import builtin_shape, normalize_vertices
    from meshopt_cli.render import Renderer, get_points_from_angles
    from meshopt_cli.turntable import camera_light, framing_distance, render_views

    v, f = builtin_shape("builtin:teapot")
    vertices = normalize_vertices(torch.tensor(v, dtype=torch.float32))
    faces = torch.tensor(f, dtype=torch.int64)
    textures = torch.rand(len(faces), 2, 2, 2, 3, generator=torch.Generator().manual_seed(1))
    frames = render_views(vertices, faces, textures, frames=3, image_size=40, batch_size=2)
    renderer = Renderer(image_size=40, background_color=(1.0, 1.0, 1.0))
    renderer.eye = get_points_from_angles(
        torch.full((3,), framing_distance(vertices)), torch.full((3,), 30.0), torch.tensor([0.0, 120.0, 240.0])
    )
    renderer.light_direction = camera_light(renderer.eye)
    rgb = renderer(
        vertices[None].expand(3, -1, -1), faces[None].expand(3, -1, -1), textures[None].expand(3, -1, -1, -1, -1, -1), mode="rgb"
    )
    expected = (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.abs(frames.astype(int) - expected.astype(int)).max() <= 1
