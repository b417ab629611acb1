"""The frozen torchvision feature extractors (VGG16 for style, GoogLeNet for dream), with random or
local weights only: no test touches the network (downloads are patched to fail loudly)."""

import socket

import pytest
import torch
import torch.nn as nn
import torchvision

from meshopt_cli.optimize import backbones as bb
from meshopt_cli.optimize.backbones import GoogLeNetFeatures, VGG16Features, WeightsError

MEAN = torch.tensor(bb.IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(bb.IMAGENET_STD).view(1, 3, 1, 1)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any download or connection attempt fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:1]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv("MESHOPT_OFFLINE", raising=False)


@pytest.fixture(scope="module")
def vgg():
    return VGG16Features(weights="random", seed=0)


@pytest.fixture(scope="module")
def goog():
    return GoogLeNetFeatures(weights="random", seed=0)


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


# ----------------------------------------------------------------------------- shapes, layers


def test_vgg_shapes_layers_and_truncation(vgg, images):
    out = vgg(images)
    assert list(out) == ["conv1_2", "conv2_2", "conv3_3", "conv4_3"]
    assert [tuple(t.shape) for t in out.values()] == [(2, 64, 64, 64), (2, 128, 32, 32), (2, 256, 16, 16), (2, 512, 8, 8)]
    assert len(vgg.features) == 23  # cut right after relu4_3, nothing of conv5 / classifier
    assert isinstance(vgg.features[22], nn.ReLU)
    assert all((t >= 0).all() for t in out.values())  # ReLU outputs
    small = VGG16Features(["conv1_2"], weights="random")
    assert len(small.features) == 4


def test_googlenet_shape_truncation_and_layer_names(goog, images):
    out = goog(images)
    assert tuple(out.shape) == (2, 512, 4, 4)
    assert goog.layer == "inception_4c"
    assert hasattr(goog, "inception4c") and not hasattr(goog, "inception4d")
    assert not hasattr(goog, "fc") and not hasattr(goog, "aux1")
    assert GoogLeNetFeatures("inception4a", weights="random").layer == "inception_4a"  # torchvision spelling


def test_unknown_layers_list_the_valid_ones():
    with pytest.raises(ValueError) as err:
        GoogLeNetFeatures("inception_9z", weights="random")
    msg = str(err.value)
    assert "inception_9z" in msg and all(name in msg for name in bb.GOOGLENET_LAYERS)
    with pytest.raises(ValueError, match="conv4_3"):
        VGG16Features(["conv9_9"], weights="random")


# ----------------------------------------------------------------------------- behaviour


def test_normalisation_is_applied(vgg, goog, images):
    expected = vgg.features((images - MEAN) / STD)  # the trunk on ImageNet-normalised input
    assert torch.allclose(vgg(images)["conv4_3"], expected, atol=1e-5)
    assert not torch.allclose(vgg.features(images), expected, atol=1e-3)
    # GoogLeNet: ImageNet normalisation then torchvision's transform_input = (x - 0.5) / 0.5
    x = images * 2 - 1
    for name in (
        "conv1",
        "maxpool1",
        "conv2",
        "conv3",
        "maxpool2",
        "inception3a",
        "inception3b",
        "maxpool3",
        "inception4a",
        "inception4b",
        "inception4c",
    ):
        x = getattr(goog, name)(x)
    assert torch.allclose(goog(images), x, atol=1e-4)


def test_parameters_frozen_and_eval_mode(vgg, goog):
    for model in (vgg, goog):
        assert all(not p.requires_grad for p in model.parameters())
        model.train()
        assert not model.training and not any(m.training for m in model.modules())


def test_gradients_flow_to_the_input(vgg, goog, images):
    x = images.clone().requires_grad_(True)
    sum(t.square().mean() for t in vgg(x).values()).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    x.grad = None
    goog(x).square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_random_weights_deterministic_per_seed(vgg, goog, images):
    again = VGG16Features(weights="random", seed=0)
    assert torch.equal(again(images)["conv2_2"], vgg(images)["conv2_2"])
    other = VGG16Features(weights="random", seed=1)
    assert not torch.equal(other.features[0].weight, vgg.features[0].weight)
    assert torch.equal(GoogLeNetFeatures(weights="random", seed=0)(images), goog(images))
    # random GoogLeNet activations have a usable scale (not vanished)
    assert goog(images).square().mean() > 1e-3


# ----------------------------------------------------------------------------- weights files


def test_saved_state_dicts_load_from_a_path(vgg, goog, images, tmp_path):
    full = tmp_path / "vgg.pt"
    torch.save(vgg.state_dict(), full)  # keys "features.N.*", as torchvision's full model
    features_only = tmp_path / "vgg_features.pt"
    torch.save(vgg.features.state_dict(), features_only)  # keys "N.*"
    wrapped = tmp_path / "vgg_wrapped.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in vgg.state_dict().items()}}, wrapped)
    reference = vgg(images)
    for path in (full, features_only, str(wrapped)):
        loaded = VGG16Features(weights=path)(images)
        assert all(torch.equal(loaded[k], reference[k]) for k in reference)
    gpath = tmp_path / "goog.pt"
    torch.save(goog.state_dict(), gpath)
    assert torch.equal(GoogLeNetFeatures(weights=gpath)(images), goog(images))


def test_torchvision_full_model_state_dicts_load(images, tmp_path):
    """Keys and tap points match torchvision's own models (classifier / aux keys are ignored)."""
    torch.manual_seed(3)
    with torch.device("meta"):
        model = torchvision.models.vgg16()
    model.classifier = nn.Linear(2, 2)  # stand-in: keeps "classifier.*" keys, not 120M params
    model.to_empty(device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    torch.save(model.state_dict(), tmp_path / "vgg16_full.pth")
    ours = VGG16Features(weights=tmp_path / "vgg16_full.pth")(images)
    with torch.no_grad():
        expected = model.features[:23]((images - MEAN) / STD)
    assert torch.allclose(ours["conv4_3"], expected, atol=1e-5)

    g = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False).eval()
    torch.save(g.state_dict(), tmp_path / "googlenet_full.pth")
    ours = GoogLeNetFeatures("inception_3a", weights=tmp_path / "googlenet_full.pth")(images)
    with torch.no_grad():
        x = images * 2 - 1
        for name in ("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a"):
            x = getattr(g, name)(x)
    assert torch.allclose(ours, x, atol=1e-5)


def one_line(err):
    msg = str(err.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def test_bad_weights_files_give_one_clear_line(vgg, tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(WeightsError) as err:
        VGG16Features(weights=corrupt)
    assert str(corrupt) in one_line(err) and "state dict" in str(err.value)

    with pytest.raises(WeightsError) as err:
        VGG16Features(weights=tmp_path / "nope.pth")
    assert "not found" in one_line(err)

    goog_file = tmp_path / "goog.pth"
    torch.save(GoogLeNetFeatures("inception_3a", weights="random").state_dict(), goog_file)
    with pytest.raises(WeightsError) as err:
        VGG16Features(weights=goog_file)  # a state dict of the wrong network
    assert "not a VGG16 state dict" in one_line(err)

    torch.save({"features.0.weight": torch.zeros(64, 3, 5, 5)}, tmp_path / "shape.pth")
    with pytest.raises(WeightsError):
        VGG16Features(weights=tmp_path / "shape.pth")
    assert issubclass(WeightsError, ValueError)


# ----------------------------------------------------------------------------- ImageNet cache


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    assert bb.checkpoint_dir() == tmp_path / "torch" / "hub" / "checkpoints"
    return bb.checkpoint_dir()


def test_offline_without_cache_names_the_file_and_never_downloads(empty_torch_home, monkeypatch):
    calls = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(bb, "_network_reachable", lambda url, timeout=0: False)
    for cls, file in ((VGG16Features, "vgg16-397923af.pth"), (GoogLeNetFeatures, "googlenet-1378be20.pth")):
        with pytest.raises(WeightsError) as err:
            cls()
        msg = one_line(err)
        assert file in msg and str(empty_torch_home) in msg
        assert "--weights FILE" in msg and "--weights random" in msg
    assert calls == []

    monkeypatch.setattr(bb, "_network_reachable", lambda url, timeout=0: pytest.fail("probed"))
    monkeypatch.setenv("MESHOPT_OFFLINE", "1")
    with pytest.raises(WeightsError, match="MESHOPT_OFFLINE"):
        VGG16Features()
    assert calls == []


def test_failed_download_is_caught(empty_torch_home, monkeypatch):
    import urllib.error

    calls = []

    def fail(url, dst, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    monkeypatch.setattr(bb, "_network_reachable", lambda url, timeout=0: True)
    with pytest.raises(WeightsError) as err:
        GoogLeNetFeatures()
    msg = one_line(err)
    assert "download failed" in msg and "googlenet-1378be20.pth" in msg and str(empty_torch_home) in msg
    assert calls == [torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1.url]
    assert socket.getdefaulttimeout() is None  # the download timeout was restored


def test_probe_reports_unreachable_quickly(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    assert bb._network_reachable("https://download.pytorch.org/models/x.pth", timeout=0.5) is False


def test_cached_weights_are_used_and_a_corrupt_cache_is_reported(empty_torch_home, monkeypatch, goog, images):
    empty_torch_home.mkdir(parents=True)
    info = bb.describe_weights()
    assert info["checkpoint_dir"] == str(empty_torch_home)
    assert [b["cached"] for b in info["backbones"]] == [False, False]

    # a cached "imagenet" file is read from the cache without any network
    monkeypatch.setattr(bb, "_network_reachable", lambda url, timeout=0: pytest.fail("probed"))
    torch.save(goog.state_dict(), empty_torch_home / "googlenet-1378be20.pth")
    assert torch.equal(GoogLeNetFeatures()(images), goog(images))
    entries = {b["name"]: b for b in bb.describe_weights()["backbones"]}
    assert entries["googlenet"]["cached"] and entries["googlenet"]["size_bytes"] > 0
    assert not entries["vgg16"]["cached"]

    (empty_torch_home / "vgg16-397923af.pth").write_bytes(b"truncated download")
    with pytest.raises(WeightsError) as err:
        VGG16Features()
    assert "delete the file" in one_line(err) and "vgg16-397923af.pth" in str(err.value)


def test_build_backbone_factory(images):
    model = bb.build_backbone("googlenet", "random", layers="inception_3a")
    assert isinstance(model, GoogLeNetFeatures) and tuple(model(images).shape) == (2, 256, 8, 8)
    assert list(bb.build_backbone("vgg16", "random", layers=["conv2_2"])(images)) == ["conv2_2"]
    with pytest.raises(ValueError, match="valid: vgg16, googlenet"):
        bb.build_backbone("resnet", "random")
    with pytest.raises(WeightsError, match="imagenet"):
        VGG16Features(weights=3)
