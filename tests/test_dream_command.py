"""`meshopt dream` end to end through the CLI on CPU with random GoogLeNet weights (a few steps, 64 px): one
run in a subprocess as users run it (stdout holds only the JSON line), the rest in process."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import meshopt_in_process as meshopt
from PIL import Image

from meshopt_cli.commands.dream import COMMAND as DREAM
from meshopt_cli.fields import SettingsError
from meshopt_cli.optimize.backbones import GOOGLENET_LAYERS
from meshopt_cli.optimize.dream import initial_textures

FAST = ["--weights", "random", "--image-size", "64", "--device", "cpu", "-q"]


def meshopt_subprocess(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "meshopt_cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.fixture(scope="module")
def sphere_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dream")
    done = meshopt_subprocess("dream", "builtin:sphere", *FAST, "--iterations", "12", "--out", tmp / "out", "--json")
    assert done.returncode == 0, done.stderr
    return tmp / "out" / "sphere-inception_4c", done


def test_files_written(sphere_run):
    folder, done = sphere_run
    names = {p.name for p in folder.iterdir()}
    assert {"dream.obj", "dream.mtl", "dream.png", "turntable.gif", "before-after.png", "loss.png", "metrics.json"} <= names
    summary = json.loads(done.stdout)
    assert (
        summary["folder"] == str(folder) and summary["metrics"]["steps"] == 12 and summary["metrics"]["layer"] == "inception_4c"
    )
    with Image.open(folder / "turntable.gif") as gif:
        assert gif.n_frames == 24  # the fast preset's
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_activation_rises_and_edges_stay_even(sphere_run):
    folder, _ = sphere_run
    m = json.loads((folder / "metrics.json").read_text())
    curves = m["loss_curves"]
    assert set(curves) == {"dream", "activation", "edge_variance", "total"}
    assert all(len(v) == 12 for v in curves.values())
    activation = curves["activation"]
    # the layer's mean activation² rises: over the steps (random views and backgrounds: noisy) ...
    second_half = activation[len(activation) // 2 :]
    assert sum(second_half) / len(second_half) > 5 * activation[0]
    # ... and on the same four fixed views before and after
    fixed = m["mean_activation_sq_fixed_views"]
    assert fixed["after"] > max(2 * fixed["before"], 1e-4)
    variance = curves["edge_variance"]
    assert max(variance) <= 1.5 * variance[0] + 1e-3  # triangles stay even
    assert m["edge_length_variance_x_faces"]["after"] <= 1.5 * m["edge_length_variance_x_faces"]["before"] + 1e-3
    assert m["vertex_displacement"]["max"] > 0  # the shape is optimized
    assert m["layer"] == "inception_4c" and m["weights"].startswith("random")
    s = m["settings"]
    assert s["ambient"] == 1.0 and s["directional"] == 0.0 and s["random_background"] and s["image_size"] == 64


def test_unknown_layer_is_a_usage_error_listing_the_valid_ones(tmp_path):
    done = meshopt("dream", "builtin:sphere", *FAST, "--layer", "inception_9z", "--out", tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    line = done.stderr.strip()
    assert "\n" not in line and "unknown layer 'inception_9z'" in line
    assert all(name in line for name in GOOGLENET_LAYERS)
    assert not list(tmp_path.iterdir())


def test_no_mesh_dreams_on_the_teapot(tmp_path):
    done = meshopt(
        "dream",
        *FAST,
        "--iterations",
        "1",
        "--batch-views",
        "1",
        "--image-size",
        "32",
        "--layer",
        "inception4a",
        "--init-bias",
        "0,0.5,0.5",
        "--out",
        tmp_path,
        "--json",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["input"] == "builtin:teapot" and summary["name"] == "teapot-inception_4a"
    m = json.loads((tmp_path / "teapot-inception_4a" / "metrics.json").read_text())
    assert m["settings"]["init_bias"] == [0.0, 0.5, 0.5] and m["steps"] == 1


def test_bad_init_bias_is_a_usage_error(tmp_path):
    done = meshopt("dream", "builtin:sphere", *FAST, "--init-bias", "0,0.5", "--out", tmp_path)
    assert done.returncode == 2 and "init-bias" in done.stderr


def test_paper_preset_has_the_papers_settings():
    s = DREAM.resolve("paper")[0]
    assert (s.iterations, s.batch_views, s.image_size, s.texture_size) == (1000, 4, 224, 4)
    assert (s.distance, s.distance_noise, s.elevation_min, s.elevation_max) == (2.5, 0.1, -10.0, 30.0)
    assert (s.ambient, s.directional, s.random_background, s.layer) == (1.0, 0.0, True, "inception_4c")
    assert s.vertex_lr == pytest.approx(1e-4) and s.texture_lr == pytest.approx(1e-2)
    assert s.length_weight == pytest.approx(1e-4 / 127.5**2, rel=1e-2)  # calibrated for torchvision's input
    assert not DREAM.resolve("texture-only")[0].optimize_vertices
    with pytest.raises(SettingsError):
        DREAM.resolve("fast", overrides={"layer": "conv1"})


def test_init_bias_is_added_and_clipped():
    t = torch.full((2, 1, 1, 1, 3), 0.7)
    out = initial_textures(t, (0.0, 0.5, -0.2))
    assert out[0, 0, 0, 0].tolist() == pytest.approx([0.7, 1.0, 0.5])
