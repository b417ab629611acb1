"""--precision: bf16 autocast of the backbones gives the fp32 losses and gradients to bf16 rounding;
auto picks by the CPU's instruction set; bf16 where it cannot run fast is a usage error."""

import json

import pytest
import torch
from conftest import meshopt_in_process as meshopt

from meshopt_cli import precision
from meshopt_cli.optimize.backbones import GoogLeNetFeatures, VGG16Features
from meshopt_cli.optimize.image_losses import dream_loss, gram_matrices, style_loss

CPU = torch.device("cpu")


@pytest.fixture
def no_bf16_cpu(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_instructions", lambda: ())


@pytest.fixture
def amx_cpu(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_instructions", lambda: ("amx_bf16",))


def test_auto_picks_fp32_without_the_instructions_and_bf16_with_them(no_bf16_cpu):
    chosen = precision.choose("auto", CPU)
    assert chosen.name == "fp32" and "neither AMX-BF16 nor AVX512-BF16" in chosen.reason
    assert precision.choose("fp32", CPU).name == "fp32"
    with pytest.raises(ValueError, match="--precision bf16: .* use --precision fp32"):
        precision.choose("bf16", CPU)


def test_auto_picks_bf16_on_an_amx_cpu(amx_cpu):
    chosen = precision.choose("auto", CPU)
    assert chosen.bf16 and "AMX_BF16" in chosen.reason


def test_flags_are_read_not_guessed(monkeypatch):
    precision.cpu_flags.cache_clear()
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16", "sse2"}))
    assert precision.cpu_bf16_instructions() == ("avx512_bf16",)
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "avx2"}))
    assert precision.cpu_bf16_instructions() == ()


def _cosine(a, b):
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def test_vgg_style_loss_in_bf16_matches_fp32():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 64, 64)
    style = torch.rand(1, 3, 64, 64)
    alpha = (torch.rand(2, 64, 64) > 0.3).float()
    results = []
    for bf16 in (False, True):
        net = VGG16Features(weights="random", seed=1, bf16=bf16)
        grams = [g.detach() for g in gram_matrices(net(style))]
        x = images.clone().requires_grad_(True)
        features = net(x)
        assert all(f.dtype == torch.float32 for f in features.values())  # losses never see bf16
        loss = style_loss(features, grams, alpha)
        loss.backward()
        results.append((loss.item(), x.grad))
    (l32, g32), (l16, g16) = results
    assert l16 == pytest.approx(l32, rel=0.05)
    assert _cosine(g16, g32) >= 0.99


def test_googlenet_dream_loss_in_bf16_matches_fp32():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 64, 64)
    results = []
    for bf16 in (False, True):
        net = GoogLeNetFeatures("inception_4c", weights="random", seed=1, bf16=bf16)
        x = images.clone().requires_grad_(True)
        out = net(x)
        assert out.dtype == torch.float32
        loss = dream_loss(out)
        loss.backward()
        results.append((loss.item(), x.grad))
    (l32, g32), (l16, g16) = results
    assert l16 == pytest.approx(l32, rel=0.05)
    assert _cosine(g16, g32) >= 0.99


def _style_run(tmp_path, precision_name, *extra):
    from PIL import Image

    Image.new("RGB", (32, 32), (220, 30, 30)).save(tmp_path / "red.png")
    result = meshopt(
        "style",
        "builtin:sphere",
        tmp_path / "red.png",
        "--weights",
        "random",
        "--iterations",
        "8",
        "--image-size",
        "32",
        "--batch-views",
        "1",
        "--texture-lr",
        "0.3",
        "--precision",
        precision_name,
        "-q",
        "--json",
        "-o",
        tmp_path / precision_name,
        *extra,
    )
    assert result.returncode == 0, result.stderr
    return json.loads((tmp_path / precision_name / "sphere-red" / "metrics.json").read_text())


def test_a_style_run_in_bf16_follows_the_fp32_run(tmp_path, amx_cpu):
    """The command's run: same seeds, the same loss curve to bf16 rounding (random VGG weights give
    the paper's absolute style term little pull, so the curve is compared, not its descent; see the
    next test). The normalised style term pulls hard, so bf16 rounding there moves the trajectory
    by a few percent within 8 steps: this comparison of curves uses the absolute one."""
    m32 = _style_run(tmp_path, "fp32", "--style-normalization", "none")
    m16 = _style_run(tmp_path, "bf16", "--style-normalization", "none")
    assert m16["precision"]["used"] == "bf16" and m32["precision"]["used"] == "fp32"
    assert m16["settings"]["precision"] == "bf16"
    c32, c16 = m32["loss_curves"]["total"], m16["loss_curves"]["total"]
    assert len(c16) == len(c32) == 8
    assert c16 == pytest.approx(c32, rel=0.02)
    assert m16["seconds"]["vgg_forward_per_step"] > 0  # the split is still measured under autocast


def test_style_optimization_in_bf16_lowers_the_loss_like_fp32():
    """Adam on an image's logits against a style image's Gram matrices, 15 steps."""
    drops = []
    for bf16 in (False, True):
        net = VGG16Features(weights="random", seed=1, bf16=bf16)
        style = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0))
        grams = [g.detach() for g in gram_matrices(net(style))]
        logits = torch.zeros(1, 3, 48, 48, requires_grad=True)
        optimizer = torch.optim.Adam([logits], lr=0.1)
        curve = []
        for _ in range(15):
            loss = style_loss(net(torch.sigmoid(logits)), grams)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            curve.append(loss.item())
        drops.append(curve[-1] / curve[0])
    assert drops[0] < 0.3 and drops[1] < 0.3  # fp32 measured 0.187
    assert drops[1] == pytest.approx(drops[0], rel=0.05)


def test_bf16_where_it_cannot_run_is_one_line_exit_2(tmp_path, no_bf16_cpu):
    result = meshopt(
        "dream", "builtin:sphere", "--weights", "random", "--precision", "bf16", "--device", "cpu", "-o", tmp_path / "out"
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "--precision bf16" in lines[0] and "fp32" in lines[0]
    assert not (tmp_path / "out").exists()


def test_auto_never_fails_without_bf16(tmp_path, no_bf16_cpu):
    result = meshopt(
        "dream",
        "builtin:sphere",
        "--weights",
        "random",
        "--iterations",
        "1",
        "--image-size",
        "32",
        "--batch-views",
        "1",
        "-q",
        "-o",
        tmp_path / "out",
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "out" / "sphere-inception_4c" / "metrics.json").read_text())
    assert metrics["precision"]["asked"] == "auto" and metrics["precision"]["used"] == "fp32"
