"""`meshopt reconstruct train` (issue 13): the decoder's box, a step that lowers the loss, exact
resume, Ctrl-C saves, DDP on two gloo processes taking the steps of one, and the encoder in bf16."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from meshopt_cli import stop
from meshopt_cli.reconstruct import dataset as fmt
from meshopt_cli.reconstruct import train as train_module
from meshopt_cli.reconstruct.model import Reconstructor, undeformed
from meshopt_cli.reconstruct.train import TrainLoopSettings, as_float_images, train
from tests.conftest import meshopt_in_process

SIZE = 16


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two procedural classes of 4 objects at 16 px (3 train, 1 test each: no val)."""
    folder = tmp_path_factory.mktemp("reconstruct-data")
    ran = meshopt_in_process(
        "reconstruct", "dataset", "--procedural", "--classes", "box,cross", "--objects", "4", "--image-size", SIZE,
        "--val-fraction", "0", "--test-fraction", "0.25", "-o", folder, "--quiet",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    return folder


@pytest.fixture(autouse=True)
def fresh_flag():
    stop.reset()
    yield
    stop.reset()


def test_decoder_vertices_stay_inside_the_box_whatever_the_network_says():
    torch.manual_seed(0)
    model = Reconstructor(SIZE)
    with torch.no_grad():
        for layer in (model.decoder.linear_bias, model.decoder.linear_centroids):
            layer.weight.normal_(0, 50.0)
            layer.bias.normal_(0, 50.0)
        vertices = model.reconstruct(torch.rand(8, 4, SIZE, SIZE))
    assert vertices.shape == (8, 642, 3)
    assert 0.45 < float(vertices.abs().max()) <= 0.5  # pushed to the walls (float32 sigmoid saturates at 1), not past
    with torch.no_grad():
        for layer in (model.decoder.linear_bias, model.decoder.linear_centroids):
            layer.weight.zero_()
            layer.bias.zero_()
        still = model.reconstruct(torch.rand(2, 4, SIZE, SIZE))
    template, _ = undeformed()
    assert torch.allclose(still[0], template, atol=1e-3)  # zero outputs: the sphere of radius 0.25


def fixed_batch(data):
    split = fmt.load_split(data, "train")
    objects, views_a, views_b = np.arange(4), np.array([0, 5, 11, 20]), np.array([3, 9, 15, 23])
    return (
        as_float_images(split.images[objects, views_a], SIZE, "cpu"),
        as_float_images(split.images[objects, views_b], SIZE, "cpu"),
        fmt.view_eyes(views_a),
        fmt.view_eyes(views_b),
    )


def test_one_step_lowers_the_loss_on_a_fixed_batch(data):
    torch.manual_seed(0)
    model = Reconstructor(SIZE, lambda_smoothness=0.001)
    optimizer = torch.optim.Adam(model.parameter_groups(1e-4))
    batch = fixed_batch(data)
    before = model(*batch)
    assert set(before) == {"loss", "silhouette", "smoothness"} and 0 < float(before["silhouette"].detach()) < 1
    before["loss"].backward()
    optimizer.step()
    with torch.no_grad():
        after = model(*batch)
    assert float(after["loss"]) < float(before["loss"].detach()) - 1e-3


def test_the_fused_adam_takes_the_unfused_step(data):
    """The training loop's fused Adam (one kernel over all parameters) moves every weight as the
    textbook Adam does, moments and both parameter groups' rates included, up to float rounding."""
    import copy

    torch.manual_seed(0)
    fused_model = Reconstructor(SIZE)
    plain_model = copy.deepcopy(fused_model)
    start = copy.deepcopy(fused_model.state_dict())
    fused = train_module.adam(fused_model, 1e-3, torch.device("cpu"))
    plain = torch.optim.Adam(plain_model.parameter_groups(1e-3), foreach=False)
    assert fused.defaults["fused"] and not plain.defaults["fused"]
    batch = fixed_batch(data)
    for _ in range(3):  # the same gradients into both (Adam magnifies float noise in tiny gradients)
        fused.zero_grad()
        fused_model(*batch)["loss"].backward()
        for p, q in zip(fused_model.parameters(), plain_model.parameters()):
            q.grad = p.grad.clone()
        fused.step()
        plain.step()
    plain_state = plain_model.state_dict()
    for name, a in fused_model.state_dict().items():
        assert torch.allclose(a, plain_state[name], rtol=1e-5, atol=1e-6), name
    moved = [name for name, a in fused_model.state_dict().items() if not torch.equal(a, start[name])]
    assert {"encoder.conv1.weight", "decoder.linear_bias.weight", "decoder.linear_centroids.weight"} <= set(moved)


SMALL = TrainLoopSettings(iterations=6, batch_size=4, learning_rate=1e-3, lr_reduce_point=0.5, image_size=SIZE, seed=3)


def test_resume_continues_exactly(data, tmp_path):
    """6 steps straight = 3 steps, a stop (checkpoint), then --resume for the rest: same losses, same weights."""
    split = fmt.load_split(data, "train")
    straight = train(split, SMALL, torch.device("cpu"))
    calls = []

    def stop_after_three():
        calls.append(1)
        return len(calls) > 3

    checkpoint = tmp_path / "checkpoint.pt"
    first = train(split, SMALL, torch.device("cpu"), checkpoint=checkpoint, should_stop=stop_after_three, meta={"x": 1})
    assert first.interrupted and first.step == 3 and checkpoint.is_file()
    resumed = train(split, SMALL, torch.device("cpu"), checkpoint=checkpoint, resume=True, meta={"x": 1})
    assert resumed.step == 6 and len(resumed.losses) == 6
    assert resumed.losses == straight.losses
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="different x"):
        train(split, SMALL, torch.device("cpu"), checkpoint=checkpoint, resume=True, meta={"x": 2})


def test_train_command_writes_the_run_and_a_stop_saves_a_checkpoint(data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    args = ("reconstruct", "train", data, "-o", run, "--iterations", "4", "--batch-size", "2", "--image-size", SIZE)
    real = train_module.draw_batch
    drawn = []

    def draw_then_stop(*a, **k):  # Ctrl-C during the second step
        drawn.append(1)
        if len(drawn) == 2:
            stop.request("SIGINT")
        return real(*a, **k)

    monkeypatch.setattr(train_module, "draw_batch", draw_then_stop)
    ran = meshopt_in_process(*args, "--checkpoint-every", "0")
    assert ran.returncode == 130, ran.stderr
    assert "interrupted at step 2/4" in ran.stderr and "--resume" in ran.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["step"] == 2
    monkeypatch.setattr(train_module, "draw_batch", real)
    again = meshopt_in_process(*args)
    assert again.returncode == 2 and "holds a run" in again.stderr
    resumed = meshopt_in_process(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "done" and metrics["step"] == 4 and metrics["final_loss"] > 0
    assert {"model.pt", "checkpoint.pt", "loss.png", "metrics.json"} <= {p.name for p in run.iterdir()}
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    refused = meshopt_in_process(*args, "--force", "--max-memory", "900M")
    assert refused.returncode == 2 and "reconstruct train needs about" in refused.stderr and "900" in refused.stderr
    other = meshopt_in_process(*args, "--resume", "--lr", "0.5")
    assert other.returncode == 2 and "different settings" in other.stderr
    nowhere = tmp_path / "never"
    missing = meshopt_in_process("reconstruct", "train", tmp_path / "no-data", "-o", nowhere)
    assert missing.returncode == 2 and "no such folder" in missing.stderr and not nowhere.exists()


def test_ddp_on_two_gloo_processes_takes_the_steps_of_one(data, tmp_path):
    """torchrun with 2 CPU processes (each half of the global batch of 4) = 1 process with 4."""
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS="1")
    common = ["reconstruct", "train", str(data), "--iterations", "3", "--batch-size", "4", "--image-size", str(SIZE)]
    common += ["--lr", "0.001", "--seed", "5", "--checkpoint-every", "3", "--quiet", "--device", "cpu"]
    one = subprocess.run(
        [sys.executable, "-m", "meshopt_cli", *common, "-o", str(tmp_path / "one")], env=env, capture_output=True, text=True
    )
    assert one.returncode == 0, one.stderr
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two = subprocess.run(
        [*launcher, "-m", "meshopt_cli", *common, "-o", str(tmp_path / "two")], env=env, capture_output=True, text=True
    )
    assert two.returncode == 0, two.stderr
    a = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)
    assert b["meta"]["world"] == 2 and a["meta"]["world"] == 1
    assert np.allclose(a["state"]["losses"], b["state"]["losses"], rtol=1e-4, atol=1e-6)
    # Adam moves a weight by about lr a step whatever its gradient's size, so where one run's gradient
    # is exactly 0 (a dead ReLU) and the other's is float noise, single weights part by a step:
    # compare the whole update (from the shared initial weights) instead
    init = train_module.build_model(TrainLoopSettings(image_size=SIZE, seed=5), SIZE).state_dict()
    names = list(a["state"]["model"])
    update = torch.cat([(a["state"]["model"][n] - init[n]).flatten() for n in names])
    apart = torch.cat([(a["state"]["model"][n] - b["state"]["model"][n]).flatten() for n in names])
    assert float(update.norm()) > 0.1
    assert float(apart.norm() / update.norm()) < 1e-2
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["processes"] == 2


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def test_the_encoder_in_bf16_gives_the_fp32_loss_and_gradients(data):
    """--precision bf16 runs only the encoder under autocast: the vertices stay float32, the loss
    and the gradients of the first convolution and of the decoder agree with fp32 to bf16 rounding."""
    batch = fixed_batch(data)
    results = []
    for bf16 in (False, True):
        torch.manual_seed(0)
        model = Reconstructor(SIZE)
        model.encoder_bf16 = bf16
        vertices = model.reconstruct(batch[0])
        assert vertices.dtype == torch.float32
        loss = model(*batch)["loss"]
        loss.backward()
        grads = model.encoder.conv1.weight.grad.clone(), model.decoder.linear_bias.weight.grad.clone()
        results.append((loss.item(), vertices.detach(), *grads))
    (l32, v32, conv32, dec32), (l16, v16, conv16, dec16) = results
    assert 0 < (v16 - v32).abs().max() < 1e-3  # bf16 did run, and moved the vertices by its rounding only
    assert l16 == pytest.approx(l32, rel=0.02)  # (the rasterized silhouettes may not change at all)
    assert _cosine(conv16, conv32) >= 0.99 and _cosine(dec16, dec32) >= 0.99


def test_train_precision_is_chosen_recorded_and_refused_where_bf16_cannot_run(data, tmp_path, monkeypatch):
    from meshopt_cli import precision

    args = ("reconstruct", "train", data, "--iterations", "2", "--batch-size", "2", "--image-size", SIZE, "--quiet")
    monkeypatch.setattr(precision, "cpu_bf16_instructions", lambda: ())
    refused = meshopt_in_process(*args, "-o", tmp_path / "refused", "--precision", "bf16", "--device", "cpu")
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "--precision bf16" in lines[0] and "fp32" in lines[0]
    assert not (tmp_path / "refused").exists()
    auto = meshopt_in_process(*args, "-o", tmp_path / "auto", "--precision", "auto", "--device", "cpu")
    assert auto.returncode == 0, auto.stderr
    assert json.loads((tmp_path / "auto" / "metrics.json").read_text())["precision"]["used"] == "fp32"
    monkeypatch.setattr(precision, "cpu_bf16_instructions", lambda: ("avx512_bf16",))
    bf16 = meshopt_in_process(*args, "-o", tmp_path / "bf16", "--device", "cpu", "--precision", "auto")
    assert bf16.returncode == 0, bf16.stderr
    used = json.loads((tmp_path / "bf16" / "metrics.json").read_text())["precision"]
    assert used["asked"] == "auto" and used["used"] == "bf16" and "AVX512_BF16" in used["reason"]
    # the number format is not part of a run's identity: it may resume in the other one
    resumed = meshopt_in_process(*args[:4], "4", *args[5:], "-o", tmp_path / "bf16", "--resume", "--precision", "fp32")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((tmp_path / "bf16" / "metrics.json").read_text())["step"] == 4
