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
