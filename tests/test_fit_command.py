"""`meshopt fit` end to end: outputs, --force, --json, errors (the first run in a subprocess as users run
it, the others in process)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import meshopt_in_process
from PIL import Image

TINY = """
description = "tiny settings for tests"
views = 8
heldout_views = 4
batch_views = 4
image_size = 32
eval_image_size = 48
iterations = 12
affine_iterations = 6
edge = 0.01
init = "builtin:sphere:2"
turntable_frames = 4
turntable_size = 32
"""


def test_carving_flags_reach_the_fit_and_its_metrics(work):
    args = ("builtin:teapot", "builtin:cube", "--preset", "tiny.toml", "--carve-at", "0.5", "--carve-margin", "2")
    result = meshopt("fit", *args, "-o", "out", cwd=work)
    assert result.returncode == 0, result.stderr
    teapot, cube = (json.loads((work / "out" / name / "metrics.json").read_text()) for name in ("teapot", "cube"))
    for metrics in (teapot, cube):
        assert metrics["settings"]["carve_margin"] == 2 and metrics["settings"]["carve_at"] == 0.5
        assert metrics["template"]["carved_at_iteration"] == 6  # half of the tiny preset's 12 vertex iterations
    # the cube's silhouettes have no hole: nothing goes, and the mesh stays closed
    assert cube["template"] == {**cube["template"], "carved_faces": 0, "closed": True, "fill_back": False}
    assert cube["voxel_iou"] is not None
    # the teapot's handle opening does: the fitted mesh is open, drawn from both sides, without a voxel IoU
    carved = teapot["template"]["carved_faces"]
    assert carved > 0 and teapot["template"] == {**teapot["template"], "closed": False, "fill_back": True}
    assert teapot["template"]["faces"] == 320 - carved and teapot["voxel_iou"] is None


def test_relax_flag_reaches_the_fit_and_its_metrics(work):
    """--relax runs the final relaxation (the tiny preset has it off) and metrics.json says how many
    vertices it moved; --no-relax turns off what a preset turns on."""
    relaxed = meshopt("fit", "builtin:cube", "--preset", "tiny.toml", "--relax", "-o", "on", cwd=work)
    plain = meshopt("fit", "builtin:cube", "--preset", "default", "--iterations", "4", "--affine-iterations", "2",
                    "--no-relax", "-o", "off", cwd=work)  # fmt: skip
    assert relaxed.returncode == 0 and plain.returncode == 0, relaxed.stderr + plain.stderr
    on, off = (json.loads((work / folder / "cube" / "metrics.json").read_text()) for folder in ("on", "off"))
    assert on["settings"]["relax"] is True and off["settings"]["relax"] is False
    assert on["template"]["relaxed_vertices"] > 0  # the sphere's bottom, which no 30° camera sees
    assert off["template"]["relaxed_vertices"] is None


def meshopt_subprocess(*args, cwd, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "meshopt_cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300, input=stdin
    )


meshopt = meshopt_in_process


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("meshopt: error:")]


@pytest.fixture
def work(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY)
    disc = np.zeros((32, 32, 4), np.uint8)
    yy, xx = np.mgrid[:32, :32]
    disc[(yy - 15.5) ** 2 + (xx - 15.5) ** 2 < 100] = (200, 30, 30, 255)
    for name in ("a.png", "b.png"):
        Image.fromarray(disc).save(tmp_path / name)
    Image.fromarray(np.zeros((32, 32, 4), np.uint8)).save(tmp_path / "empty.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "cams.json").write_text(json.dumps([{"azimuth": 0}, {"azimuth": 90, "elevation": 30, "distance": 2.732}]))
    return tmp_path


def test_fit_writes_its_folder_and_keeps_it_without_force(work):
    result = meshopt_subprocess("fit", "missing.obj", "builtin:cube", "--preset", "tiny.toml", "--json", "-o", "out", cwd=work)
    assert result.returncode == 1, result.stderr  # one input failed, the other one was fitted
    assert error_lines(result) == ["meshopt: error: missing.obj: no such file"] and "Traceback" not in result.stderr
    failed, summary = (json.loads(line) for line in result.stdout.splitlines())  # one JSON object per input
    assert failed == {**failed, "input": "missing.obj", "status": "failed", "error": "missing.obj: no such file", "files": []}
    assert set(failed) == {"input", "name", "status", "folder", "files", "metrics", "seconds", "error"}
    folder = work / "out" / "cube"
    assert sorted(p.name for p in folder.iterdir()) == ["compare.png", "fitted.obj", "loss.png", "metrics.json", "turntable.gif"]
    metrics = json.loads((folder / "metrics.json").read_text())
    for key in ("loss_curve", "iou", "voxel_iou", "seconds", "device", "backend", "settings"):
        assert key in metrics, key
    assert len(metrics["loss_curve"]) == 12 and metrics["settings"]["image_size"] == 32
    assert metrics["views"] == {**metrics["views"], "train": 8, "heldout": 4}
    assert 0 < metrics["iou"]["heldout"] <= 1 and 0 < metrics["voxel_iou"] <= 1
    assert (
        metrics["device"] == "cpu" and metrics["backend"] == "native"
    )  # the kernels build on every test machine (conftest asserts it)
    assert summary["folder"] == str(Path("out") / "cube") and summary["metrics"]["heldout_iou"] == metrics["iou"]["heldout"]
    assert summary["status"] == "done" and metrics["status"] == "done" and metrics["partial"] is False
    assert sorted(summary["files"]) == sorted(str(Path("out") / "cube" / p.name) for p in folder.iterdir())
    last = [line for line in result.stderr.splitlines() if "held-out IoU" in line][-1]
    assert str(Path("out") / "cube") in last
    assert result.stderr.strip().splitlines()[-1].startswith("meshopt: 1 done, 1 failed")
    assert Image.open(folder / "turntable.gif").n_frames == 4
    obj = (folder / "fitted.obj").read_text()
    assert obj.count("\nv ") + obj.startswith("v ") == 162
    assert not [p for p in (work / "out").iterdir() if p.name.startswith(".")]  # no staging left

    before = (folder / "metrics.json").read_bytes()
    again = meshopt("fit", "builtin:cube", "--preset", "tiny.toml", "-o", "out", cwd=work)
    assert again.returncode == 1 and error_lines(again) == [
        f"meshopt: error: {Path('out') / 'cube'} exists (use --force to overwrite, or --skip-existing to keep it)"
    ]
    assert (folder / "metrics.json").read_bytes() == before


def test_fit_images_with_cameras(work):
    result = meshopt(
        "fit",
        "--images",
        "-",
        "--cameras",
        "cams.json",
        "--preset",
        "tiny.toml",  # image paths on stdin
        "--holdout",
        "1",
        "--iterations",
        "4",
        "-o",
        "out",
        cwd=work,
        stdin="a.png\nb.png\n",
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((work / "out" / "a" / "metrics.json").read_text())  # named after the images, not the cameras
    assert metrics["target"]["kind"] == "images" and metrics["views"]["train"] == 1 and metrics["views"]["heldout"] == 1
    assert metrics["voxel_iou"] is None and metrics["iterations"]["vertices"] == 4
    assert metrics["target"]["images"] == ["a.png", "b.png"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--images", "a.png", "b.png", "--cameras", "bad.json"], "bad.json: not valid JSON (line 1, column 3"),
        (["--images", "a.png", "b.png", "--cameras", "one.json"], "one.json: 1 camera for 2 images"),
        (["--images", "a.png", "empty.png", "--cameras", "cams.json"], "empty.png: empty mask (alpha is 0 everywhere)"),
        (["--images", "broken.png", "--azimuth", "30"], "broken.png: not a readable image"),
        (["missing.obj"], "missing.obj: no such file"),
    ],
)
def test_bad_inputs_are_one_line_errors(work, args, message):
    (work / "bad.json").write_text("[{azimuth: 1}]")
    (work / "one.json").write_text('[{"azimuth": 0}]')
    result = meshopt("fit", *args, "--preset", "tiny.toml", "-o", "out", cwd=work)
    assert result.returncode == 1, result.stderr
    assert len(error_lines(result)) == 1 and message in error_lines(result)[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (work / "out").exists() or not any((work / "out").iterdir())


def test_usage_errors_exit_2(work):
    for args, message in (
        (["builtin:cube", "--preset", "nope"], "unknown preset 'nope' for fit (valid: default, fast, paper"),
        (["builtin:cube", "--preset", "tiny.toml", "--init", "nothing.obj"], "--init: nothing.obj: no such file"),
        (["builtin:cube", "--cameras", "cams.json"], "--cameras goes with --images"),
        (["--images", "a.png", "--cameras", "cams.json", "--azimuth", "3"], "not both"),
        (["builtin:cube", "--laplacian", "-1"], "--laplacian must not be negative"),
        (["builtin:cube", "--carve-margin", "65"], "--carve-margin must be in [0, 64]"),
    ):
        result = meshopt("fit", *args, "-o", "out", cwd=work)
        assert result.returncode == 2, (args, result.stderr)
        assert len(error_lines(result)) == 1 and message in error_lines(result)[0], (args, result.stderr)
        assert "Traceback" not in result.stderr and not (work / "out").exists()


def test_a_diverging_fit_fails_instead_of_done(tmp_path):
    """--lr 1e6 used to end "done" with IoU 0.000 and vertices near 1e6."""
    import json

    result = meshopt_in_process(
        "fit", "builtin:cube", "--lr", "1e6", "--iterations", "2", "--affine-iterations", "0", "--image-size", "32",
        "--views", "2", "--heldout-views", "1", "-o", "out", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["status"] == "failed" and "diverged" in line["error"] and "--lr" in line["error"]
    assert json.loads((tmp_path / "out/cube/metrics.json").read_text())["status"] == "failed"


def test_divergence_rule():
    import torch

    from meshopt_cli.optimize.evaluate import divergence

    assert divergence(torch.rand(10, 3) * 2 - 1, 0.9) is None
    assert "vertices reached" in divergence(torch.tensor([[0.0, 0.0, 50.0]]), 0.9)
    assert "train IoU fell" in divergence(torch.zeros(4, 3), 0.01)
    assert divergence(torch.zeros(4, 3)) is None  # style and dream have no IoU


def test_images_results_are_named_after_the_images():
    from meshopt_cli.commands.fit import images_name

    assert images_name([f"shots/chair_{k:03d}.png" for k in range(8)]) == "chair"
    assert images_name(["front.png", "side.png"]) == "front"
    assert images_name(["0.png", "1.png"]) == "0"
