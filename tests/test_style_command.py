"""`meshopt style` end to end through the CLI on CPU with random VGG weights (a few steps, 64 px): one run
in a subprocess as users run it, the rest in process."""

import json
import subprocess
import sys

import pytest
from conftest import meshopt_in_process as meshopt
from PIL import Image

FAST = ["--weights", "random", "--image-size", "64", "--device", "cpu", "-q"]


def meshopt_subprocess(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "meshopt_cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.fixture(scope="module")
def red_run(tmp_path_factory):
    """One stylization of the sphere towards a pure red image (strong style term, no TV)."""
    tmp = tmp_path_factory.mktemp("style")
    Image.new("RGB", (40, 30), (255, 0, 0)).save(tmp / "red.png")
    done = meshopt_subprocess(
        "style",
        "builtin:sphere",
        tmp / "red.png",
        *FAST,
        "--iterations",
        "20",
        "--texture-lr",
        "0.3",
        "--style-weight",
        "1e4",
        "--tv-weight",
        "0",
        "--out",
        tmp / "out",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    return tmp / "out" / "sphere-red", done


def test_files_written(red_run):
    folder, done = red_run
    names = {p.name for p in folder.iterdir()}
    assert {
        "stylized.obj",
        "stylized.mtl",
        "stylized.png",
        "turntable.gif",
        "before-after.png",
        "loss.png",
        "metrics.json",
    } <= names
    summary = json.loads(done.stdout)
    assert summary["folder"] == str(folder) and summary["metrics"]["steps"] == 20 and summary["status"] == "done"
    with Image.open(folder / "turntable.gif") as gif:
        assert gif.n_frames == 24  # the fast preset's
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging left over


def test_metrics(red_run):
    folder, _ = red_run
    m = json.loads((folder / "metrics.json").read_text())
    assert set(m["loss_curves"]) == {"style", "content", "tv", "colour", "total"}
    assert all(len(v) == 20 for v in m["loss_curves"].values())
    assert m["device"] == "cpu" and m["backend"] == "native"
    assert m["background"] == pytest.approx([1.0, 0.0, 0.0])  # the style image's mean colour
    s = m["seconds"]
    assert s["per_step"] > 0 and s["renderer_forward_per_step"] > 0 and s["vgg_forward_per_step"] > 0
    assert m["settings"]["image_size"] == 64 and m["weights"].startswith("random")


def test_vertices_moved_less_than_the_content_term_allows(red_run):
    folder, _ = red_run
    m = json.loads((folder / "metrics.json").read_text())
    content_weight = m["settings"]["content_weight"]
    moved = m["vertex_displacement"]
    assert moved["max"] > 0  # the shape is optimized ...
    # ... but the content term never pays more than the whole loss had to offer at the start
    assert content_weight * moved["sum_of_squares"] <= max(m["loss_curves"]["total"])
    assert moved["max"] < 0.05


def test_colours_move_toward_the_style_image(red_run):
    folder, _ = red_run
    m = json.loads((folder / "metrics.json").read_text())
    redness = lambda c: c[0] / max(sum(c), 1e-6)  # noqa: E731
    before, after = m["colours"]["before"]["mean"], m["colours"]["after"]["mean"]
    assert redness(after) > redness(before) + 0.1  # 0.33 -> 0.48
    distance = lambda c: sum((x - y) ** 2 for x, y in zip(c, (1.0, 0.0, 0.0))) ** 0.5  # noqa: E731
    assert distance(after) < distance(before) - 0.15  # 0.83 -> 0.61
    assert m["loss_curves"]["style"][-1] < m["loss_curves"]["style"][0]


def test_obj_is_readable_and_keeps_vertex_count(red_run):
    folder, _ = red_run
    text = (folder / "stylized.obj").read_text()
    assert sum(line.startswith("v ") for line in text.splitlines()) == 642


@pytest.mark.parametrize("kind", ["grey-rgba-small", "palette-huge"])
def test_unusual_style_images_work(tmp_path, kind):
    if kind == "grey-rgba-small":
        Image.new("LA", (16, 16), (128, 200)).save(tmp_path / "style.png")
    else:
        Image.new("P", (3000, 2500), 3).save(tmp_path / "style.png")
    done = meshopt(
        "style", "builtin:cube", tmp_path / "style.png", *FAST, "--iterations", "1", "--out", tmp_path / "out", "--no-shape"
    )
    assert done.returncode == 0, done.stderr
    m = json.loads((tmp_path / "out" / "cube-style" / "metrics.json").read_text())
    assert m["vertex_displacement"]["max"] == 0.0  # --no-shape


@pytest.mark.parametrize("content", [None, b"", b"not an image at all"])
def test_unreadable_style_image_is_one_line_and_writes_nothing(tmp_path, content):
    image = tmp_path / "style.png"
    if content is not None:
        image.write_bytes(content)
    done = meshopt("style", "builtin:cube", image, *FAST, "--iterations", "1", "--out", tmp_path / "out")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(image) in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_unknown_preset_is_a_usage_error(tmp_path):
    Image.new("RGB", (16, 16)).save(tmp_path / "s.png")
    done = meshopt("style", "builtin:cube", tmp_path / "s.png", "--preset", "nope", *FAST, "--out", tmp_path)
    assert done.returncode == 2 and "unknown preset" in done.stderr


def test_missing_weights_file_is_one_line(tmp_path):
    Image.new("RGB", (16, 16)).save(tmp_path / "s.png")
    done = meshopt(
        "style",
        "builtin:cube",
        tmp_path / "s.png",
        "--weights",
        tmp_path / "none.pth",
        "--device",
        "cpu",
        "-q",
        "--out",
        tmp_path / "out",
    )
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_input_uv_layout_is_kept(tmp_path):
    """A mesh with its own UVs and texture image: the result uses the same UVs (and image size)."""
    Image.new("RGB", (16, 8), (0, 128, 255)).save(tmp_path / "tex.png")
    (tmp_path / "quad.mtl").write_text("newmtl m\nKd 1 1 1\nmap_Kd tex.png\n")
    (tmp_path / "quad.obj").write_text(
        "mtllib quad.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\n"
        "vt 0.1 0.1\nvt 0.9 0.1\nvt 0.1 0.9\nvt 0.9 0.9\nusemtl m\n"
        "f 1/1 3/3 2/2\nf 1/1 2/2 4/4\nf 1/1 4/4 3/3\nf 2/2 3/3 4/4\n"
    )
    Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / "s.png")
    done = meshopt("style", tmp_path / "quad.obj", tmp_path / "s.png", *FAST, "--iterations", "2", "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "out" / "quad-s"
    vts = [line for line in (folder / "stylized.obj").read_text().splitlines() if line.startswith("vt ")]
    uv = sorted({tuple(round(float(x), 4) for x in line.split()[1:3]) for line in vts})
    assert uv == [(0.1, 0.1), (0.1, 0.9), (0.9, 0.1), (0.9, 0.9)]
    pngs = [p for p in folder.glob("*.png") if p.name not in ("before-after.png", "loss.png")]
    assert len(pngs) == 1 and Image.open(pngs[0]).size == (16, 8)


def test_resume_without_a_checkpoint_is_one_line(tmp_path):
    Image.new("RGB", (16, 16)).save(tmp_path / "s.png")
    done = meshopt("style", "builtin:cube", tmp_path / "s.png", *FAST, "--resume", "--out", tmp_path / "out")
    assert done.returncode == 1 and "no checkpoint" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "cube-s").exists()


def test_several_meshes_from_stdin_get_unique_folders_and_json_lines(tmp_path):
    Image.new("RGB", (32, 32), (0, 0, 255)).save(tmp_path / "blue.png")
    done = meshopt(
        "style",
        "-",
        tmp_path / "blue.png",
        *FAST,
        "--iterations",
        "1",
        "--image-size",
        "32",
        "--batch-views",
        "1",
        "--json",
        "--out",
        tmp_path / "out",
        stdin="builtin:cube\nnope.obj\nbuiltin:cube\n",
    )
    assert done.returncode == 1, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(x["input"], x["name"], x["status"]) for x in lines] == [
        ("builtin:cube", "cube-blue", "done"),
        ("nope.obj", "nope-blue", "failed"),
        ("builtin:cube", "cube-blue-2", "done"),
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cube-blue", "cube-blue-2"]
    metrics = json.loads((tmp_path / "out" / "cube-blue-2" / "metrics.json").read_text())
    assert metrics["status"] == "done" and metrics["preset"] == "fast" and metrics["settings"]["image_size"] == 32
