"""Stops and faults: SIGINT/SIGTERM finish the current step and save partial results (exit 130),
a non-finite loss keeps the last finite state, a full disk or an unwritable --out is one line."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from meshopt_cli import stop
from meshopt_cli.cli import app
from meshopt_cli.commands.fit import FitSettings
from meshopt_cli.mesh import builtin_shape
from meshopt_cli.optimize import fit as fit_loop
from meshopt_cli.optimize.targets import mesh_target
from meshopt_cli.optimize.textured import TexturedSettings, optimize_textured


@pytest.fixture(autouse=True)
def fresh_flag():
    stop.reset()
    yield
    stop.reset()


def _cube():
    v, f = builtin_shape("builtin:cube")
    v = torch.tensor(v) / np.abs(v).max()
    return v, torch.tensor(f), torch.full((len(f), 2, 2, 2, 3), 0.5)


def _red_loss(calls, nan_at=None, stop_at=None):
    def loss(views, vertices):
        calls.append(1)
        red = ((views.rgb - torch.tensor([1.0, 0, 0])[None, :, None, None]) ** 2 * views.alpha[:, None]).mean()
        red = red + 0.1 * vertices.pow(2).mean()
        if len(calls) == stop_at:
            stop.request("SIGTERM")
        if len(calls) == nan_at:
            red = red * float("nan")
        return red, {"red": float(red.detach())}

    return loss


SETTINGS = TexturedSettings(iterations=6, batch_views=1, image_size=32, seed=2, vertex_lr=0.05)


def test_a_stop_request_ends_the_textured_loop_after_the_current_step():
    v, f, t = _cube()
    result = optimize_textured(v, f, t, SETTINGS, _red_loss([], stop_at=3), should_stop=stop.requested)
    assert result.interrupted and result.steps == 3 and result.failure is None
    stop.reset()
    full = optimize_textured(v, f, t, TexturedSettings(**{**SETTINGS.__dict__, "iterations": 3}), _red_loss([]))
    assert torch.equal(result.vertices, full.vertices)  # the state after step 3, saved whole


def test_a_nan_loss_keeps_the_last_finite_state():
    v, f, t = _cube()
    result = optimize_textured(v, f, t, SETTINGS, _red_loss([], nan_at=3))
    assert result.failure == "the loss became nan at step 3" and result.steps == 2 and not result.interrupted
    two = optimize_textured(v, f, t, TexturedSettings(**{**SETTINGS.__dict__, "iterations": 2}), _red_loss([]))
    assert torch.equal(result.vertices, two.vertices) and torch.equal(result.textures, two.textures)
    assert torch.isfinite(result.vertices).all() and len(result.curves["red"]) == 2


def _fit_target():
    return mesh_target("builtin:cube", 4, 0, "cpu")


def _template():
    v, f = builtin_shape("builtin:sphere")
    return torch.tensor(v, dtype=torch.float32), torch.tensor(np.asarray(f, np.int64))


FIT = FitSettings(views=4, heldout_views=0, batch_views=2, image_size=24, iterations=6, affine_iterations=2)


def test_a_stop_request_ends_the_fit_after_the_current_iteration():
    v, f = _template()
    seen = []

    def progress(n):
        seen.append(n)
        if len(seen) == 4:
            stop.request("SIGINT")

    result = fit_loop.fit(v, f, _fit_target(), FIT, progress, should_stop=stop.requested)
    assert result.interrupted and len(result.affine_curve) + len(result.loss_curve) == 4


def test_a_nan_in_the_fit_keeps_the_last_finite_vertices(monkeypatch):
    v, f = _template()
    calls = []
    iou = fit_loop.IMAGE_LOSSES["iou"]

    def flaky(rendered, wanted):
        calls.append(1)
        value = iou(rendered, wanted)
        return value * float("nan") if len(calls) == 5 else value

    monkeypatch.setitem(fit_loop.IMAGE_LOSSES, "iou", flaky)
    result = fit_loop.fit(v, f, _fit_target(), FIT)
    assert result.failure == "the loss became nan at vertex iteration 3" and len(result.loss_curve) == 2
    assert torch.isfinite(result.vertices).all()


def test_nan_in_a_command_saves_the_last_state_marked_failed(tmp_path, monkeypatch):
    iou = fit_loop.IMAGE_LOSSES["iou"]
    calls = []
    monkeypatch.setitem(
        fit_loop.IMAGE_LOSSES, "iou", lambda r, w: iou(r, w) * (float("nan") if calls.append(1) or len(calls) == 4 else 1)
    )
    result = CliRunner().invoke(
        app,
        [
            "fit",
            "builtin:cube",
            "--preset",
            "fast",
            "--iterations",
            "5",
            "--affine-iterations",
            "0",
            "--views",
            "4",
            "--heldout-views",
            "0",
            "--image-size",
            "24",
            "-o",
            str(tmp_path),
            "--json",
            "-q",
        ],
    )
    assert result.exit_code == 1
    summary = json.loads(result.stdout.strip())
    assert summary["status"] == "failed" and "the loss became nan at vertex iteration 4" in summary["error"]
    metrics = json.loads((tmp_path / "cube" / "metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["partial"] and "nan" in metrics["stop_reason"]
    assert len(metrics["loss_curve"]) == 3


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    from meshopt_cli import turntable

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(turntable, "write_gif", full)
    result = CliRunner().invoke(app, ["render", "builtin:cube", "--frames", "2", "--size", "16", "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.stderr.count("meshopt: error:") == 1 and "No space left on device (disk full?)" in result.stderr
    assert list((tmp_path / "out").iterdir()) == []  # the staging folder went with the error


def test_an_unusable_out_folder_is_a_usage_error(tmp_path):
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(app, ["render", "builtin:cube", "--frames", "2", "-o", str(tmp_path / "file" / "out")])
    assert result.exit_code == 2 and f"{tmp_path / 'file'} is not a folder" in result.stderr
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        result = CliRunner().invoke(app, ["render", "builtin:cube", "--frames", "2", "-o", str(locked / "out")])
        assert result.exit_code == 2 and "is not writable" in result.stderr


def _dream(tmp_path, *args):
    command = [
        sys.executable,
        "-m",
        "meshopt_cli",
        "dream",
        *args,
        "--weights",
        "random",
        "--iterations",
        "100000",
        "--image-size",
        "32",
        "--batch-views",
        "1",
        "--texture-size",
        "2",
        "--checkpoint-every",
        "1",
        "--device",
        "cpu",
        "-o",
        str(tmp_path / "out"),
        "--json",
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(paths, process, seconds=240):
    deadline = time.time() + seconds
    while not all(p.exists() for p in paths):
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.2)


@pytest.mark.parametrize("jobs,signum", [(1, signal.SIGTERM), (2, signal.SIGTERM), (1, signal.SIGINT)])
def test_a_signal_saves_partial_results_and_exits_130(tmp_path, jobs, signum):
    meshes = ["builtin:cube", "builtin:torus", "builtin:sphere"]
    process = _dream(tmp_path, *meshes, "--jobs", str(jobs))
    running = ["cube", "torus"][:jobs]
    _wait_for([tmp_path / "out" / f"{name}-inception_4c.checkpoint.pt" for name in running], process)
    process.send_signal(signum)
    out, err = process.communicate(timeout=240)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    lines = {json.loads(line)["input"]: json.loads(line) for line in out.splitlines()}
    assert len(lines) == 3
    statuses = {k: v["status"] for k, v in lines.items()}
    assert statuses == {
        "builtin:cube": "interrupted",
        "builtin:torus": "interrupted" if jobs == 2 else "not-started",
        "builtin:sphere": "not-started",
    }
    for name in running:
        metrics = json.loads((tmp_path / "out" / f"{name}-inception_4c" / "metrics.json").read_text())
        assert metrics["status"] == "interrupted" and metrics["partial"] and 1 <= metrics["steps"] < 100000
        assert (tmp_path / "out" / f"{name}-inception_4c" / "dream.obj").exists()
    assert not (tmp_path / "out" / "sphere-inception_4c").exists()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
