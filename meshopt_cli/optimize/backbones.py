"""Frozen torchvision feature extractors for the image losses of ``style`` (VGG16) and ``dream``
(GoogLeNet).

Both modules take images ``[B, 3, H, W]`` with values in [0, 1] (RGB) and apply torchvision's
ImageNet input normalisation themselves (``(x - mean) / std`` with
``IMAGENET_MEAN = (0.485, 0.456, 0.406)``, ``IMAGENET_STD = (0.229, 0.224, 0.225)``).
Their parameters are frozen (``requires_grad=False``), they stay in eval mode (``.train()`` is a
no-op), and the network is cut after the deepest layer asked for, so no compute is spent on layers
nobody reads. Gradients flow to the *input* images.

Weights (the ``weights`` argument, the CLI's ``--weights``):

- ``"imagenet"`` (default): torchvision's ImageNet weights through its weights API
  (``VGG16_Weights.IMAGENET1K_V1``, ``GoogLeNet_Weights.IMAGENET1K_V1``), downloaded once and
  cached by torch in ``<torch hub dir>/checkpoints/`` (``$TORCH_HOME/hub/checkpoints``, by default
  ``~/.cache/torch/hub/checkpoints``). When the file is not cached and cannot be downloaded, a
  :class:`WeightsError` says which file to put where.
- a path to a local state dict (``torch.save``): the full torchvision model's state dict, or for VGG16
  also the ``features`` part alone (keys ``0.weight`` ...); a ``{"state_dict": ...}`` / ``{"model":
  ...}`` wrapper and a ``module.`` prefix are accepted. Keys of layers beyond the cut are ignored.
- ``"random"``: torchvision's own random initialisation, seeded by ``seed``, loaded through the same
  state-dict path as the others (for smoke tests; no file, no network).

Set ``MESHOPT_OFFLINE=1`` to never attempt a download.

``bf16=True`` (``--precision``, :mod:`meshopt_cli.precision`) runs the network under
``torch.autocast(dtype=torch.bfloat16)`` with its weights and input in channels-last layout; the
normalisation before it and the outputs after it are float32, so the losses never see bf16.

:func:`describe_weights` reports the cache directory and which ImageNet files are present.
"""

from __future__ import annotations

import os
import socket
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Mapping, Sequence
from urllib.parse import urlparse

import torch
import torch.nn as nn
import torchvision

from meshopt_cli.mesh.shipped import local
from meshopt_cli.optimize.layer_names import GOOGLENET_DEFAULT_LAYER, GOOGLENET_LAYERS, googlenet_layer  # noqa: F401

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: VGG16 layer name -> index in ``vgg16().features`` of the ReLU that follows that convolution.
#: A feature "conv3_3" is the ReLU output after conv3_3 (what style transfer calls relu3_3).
VGG16_LAYERS: "OrderedDict[str, int]" = OrderedDict(
    [
        ("conv1_1", 1),
        ("conv1_2", 3),
        ("conv2_1", 6),
        ("conv2_2", 8),
        ("conv3_1", 11),
        ("conv3_2", 13),
        ("conv3_3", 15),
        ("conv4_1", 18),
        ("conv4_2", 20),
        ("conv4_3", 22),
        ("conv5_1", 25),
        ("conv5_2", 27),
        ("conv5_3", 29),
    ]
)
#: The style loss's layers (the paper's): ReLU outputs after conv1_2, conv2_2, conv3_3, conv4_3.
VGG16_STYLE_LAYERS = ("conv1_2", "conv2_2", "conv3_3", "conv4_3")

#: Stays float32 under bf16: with the stem in bf16 too, input gradients of the dream loss drift to a
#: cosine of 0.978 against fp32 (random weights, 64-224 px); with it in fp32, 0.990 at 64 px.
_GOOGLENET_FP32_STEM = frozenset({"conv1", "maxpool1", "conv2", "conv3"})
#: The stem and blocks of torchvision's GoogLeNet, in forward order (its attribute names).
_GOOGLENET_SEQUENCE = (
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
    "inception4d",
    "inception4e",
    "maxpool4",
    "inception5a",
    "inception5b",
)

_PROBE_HOST_TIMEOUT_S = 5.0  # reachability check of the download host before a download
_DOWNLOAD_SOCKET_TIMEOUT_S = 60.0  # a stalled download fails instead of hanging


class WeightsError(ValueError):
    """Backbone weights cannot be loaded; the message is one line meant for the user."""


# ----------------------------------------------------------------------------- weights


def _imagenet_weights(arch: str):
    if arch == "vgg16":
        return torchvision.models.VGG16_Weights.IMAGENET1K_V1
    if arch == "googlenet":
        return torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1
    raise ValueError(f"unknown backbone {arch!r} (valid: vgg16, googlenet)")


def checkpoint_dir() -> Path:
    """Where torchvision caches downloaded weights: ``torch.hub.get_dir()/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_file_name(arch: str) -> str:
    """File name of the ImageNet weights of ``arch`` ("vgg16" | "googlenet") in the cache, taken
    from the torchvision weights enum's URL (e.g. ``vgg16-397923af.pth``)."""
    return os.path.basename(urlparse(_imagenet_weights(arch).url).path)


def describe_weights() -> dict:
    """Where ImageNet weights are cached and which are present (JSON-serialisable)::

    {"checkpoint_dir": "...", "backbones": [{"name": "vgg16", "file": "vgg16-397923af.pth",
      "url": "...", "path": "...", "cached": true, "size_bytes": 553433881}, ...]}
    """
    directory = checkpoint_dir()
    entries = []
    for arch in ("vgg16", "googlenet"):
        path = directory / weights_file_name(arch)
        cached = path.is_file()
        entries.append(
            {
                "name": arch,
                "file": path.name,
                "url": _imagenet_weights(arch).url,
                "path": str(path),
                "cached": cached,
                "size_bytes": path.stat().st_size if cached else None,
            }
        )
    return {"checkpoint_dir": str(directory), "backbones": entries}


def _offline_message(arch: str, reason: str) -> str:
    w = _imagenet_weights(arch)
    return (
        f"ImageNet weights for {arch} are not cached and cannot be downloaded ({reason}): "
        f"put {weights_file_name(arch)} (from {w.url}) into {checkpoint_dir()}/, "
        f"or pass --weights FILE (a state dict) or --weights random"
    )


def _network_reachable(url: str, timeout: float = _PROBE_HOST_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the URL's host opens within ``timeout`` seconds (name resolution
    included: it runs in a daemon thread, so a resolver that hangs cannot hang the caller)."""
    parsed = urlparse(url)
    host, port = parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return bool(result and result[0])


def _load_imagenet_state_dict(arch: str, progress: bool) -> dict:
    """The ImageNet state dict of ``arch`` via torchvision's weights API (cached by torch)."""
    w = _imagenet_weights(arch)
    cached = checkpoint_dir() / weights_file_name(arch)
    if not cached.is_file():
        if os.environ.get("MESHOPT_OFFLINE", "").strip() not in ("", "0"):
            raise WeightsError(_offline_message(arch, "MESHOPT_OFFLINE is set"))
        if not _network_reachable(w.url):
            raise WeightsError(_offline_message(arch, f"{urlparse(w.url).hostname} unreachable"))
    previous_timeout = socket.getdefaulttimeout()
    if previous_timeout is None:
        socket.setdefaulttimeout(_DOWNLOAD_SOCKET_TIMEOUT_S)
    try:
        return w.get_state_dict(progress=progress, check_hash=True)
    except Exception as exc:  # noqa: BLE001 - download, hash or unpickling failure
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        if cached.is_file():
            raise WeightsError(
                f"cached weights {cached} cannot be read ({reason}); delete the file to download "
                f"it again, or pass --weights FILE or --weights random"
            ) from None
        raise WeightsError(_offline_message(arch, f"download failed: {reason}")) from None
    finally:
        if previous_timeout is None:
            socket.setdefaulttimeout(None)


def _load_file_state_dict(path: Path) -> dict:
    """A state dict from a local file; unwraps ``{"state_dict": ...}`` / ``{"model": ...}`` and a
    ``module.`` (DataParallel) prefix."""
    disk = local(path)  # where it is read (see meshopt_cli/mesh/shipped.py)
    if not disk.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        obj = torch.load(disk, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
        raise WeightsError(f"{path}: not a readable PyTorch state dict ({reason})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: not a state dict (expected a mapping of names to tensors)")
    out = {}
    for k, v in obj.items():
        out[k[len("module.") :] if k.startswith("module.") else k] = v
    return out


def _apply_state_dict(
    module: nn.Module, state: Mapping[str, torch.Tensor], source: str, arch: str, alt_prefix: str | None = None
) -> None:
    """Load into the truncated ``module`` the keys it needs from ``state`` (extra keys, e.g. of
    the classifier or of layers past the cut, are ignored). ``alt_prefix``: keys may also come
    without it (a VGG ``features``-only state dict)."""
    needed = module.state_dict()
    if alt_prefix and not any(k in state for k in needed):
        state = {alt_prefix + k: v for k, v in state.items()}
    missing = [k for k in needed if k not in state]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise WeightsError(f"{source}: not a {arch} state dict (missing {shown})")
    for k, v in needed.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise WeightsError(
                f"{source}: not a {arch} state dict ({k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)})"
            )
    module.load_state_dict({k: state[k] for k in needed}, strict=True)


def _resolve_state_dict(arch: str, weights, seed: int, progress: bool, make_random) -> tuple[dict, str]:
    """(state dict, description of its source) for ``weights`` = "imagenet" | "random" | path."""
    if isinstance(weights, str) and weights == "imagenet":
        return _load_imagenet_state_dict(arch, progress), f"imagenet ({weights_file_name(arch)})"
    if isinstance(weights, str) and weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return make_random().state_dict(), f"random (seed {seed})"
    if isinstance(weights, (str, os.PathLike)):
        path = Path(weights).expanduser()
        return _load_file_state_dict(path), str(path)
    raise WeightsError(f"weights must be 'imagenet', 'random' or a file path, not {weights!r}")


class _Frozen(nn.Module):
    """Common part: ImageNet normalisation, frozen parameters, always eval mode, the number format.
    Subclasses implement ``_features(normalised images) -> tensor or dict of tensors``."""

    def __init__(self, bf16: bool = False) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.bf16 = bool(bf16)

    def _freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)
        if self.bf16:
            self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor):
        x = self.normalize(images)
        if not self.bf16:
            return self._features(x)
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            out = self._features(x.contiguous(memory_format=torch.channels_last))
        if isinstance(out, torch.Tensor):
            return out.float()
        return OrderedDict((name, value.float()) for name, value in out.items())

    def train(self, mode: bool = True):  # noqa: D401 - frozen: always eval
        """No-op: a frozen feature extractor stays in eval mode (BatchNorm running statistics)."""
        return super().train(False)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` in [0, 1] -> torchvision's ImageNet-normalised input."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W], got {tuple(images.shape)}")
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)


# ----------------------------------------------------------------------------- VGG16


class VGG16Features(_Frozen):
    """VGG16 (torchvision ``vgg16``, no batch norm) feature maps for the style loss.

    ``layers``: names from :data:`VGG16_LAYERS` (default :data:`VGG16_STYLE_LAYERS`); each feature
    is the **ReLU output** after that convolution (conv1_2 -> ``features[3]``, conv2_2 -> ``[8]``,
    conv3_3 -> ``[15]``, conv4_3 -> ``[22]``). The network is cut after the deepest one
    (``features[:23]`` for the defaults; the max-pools in between are kept).

    ``forward(images [B, 3, H, W] in [0, 1]) -> dict name -> [B, C, H', W']``, in the order of
    ``layers``; C = 64, 128, 256, 512 and H' = H, H/2, H/4, H/8 (floored) for the defaults.
    """

    def __init__(
        self,
        layers: Sequence[str] = VGG16_STYLE_LAYERS,
        weights="imagenet",
        *,
        seed: int = 0,
        progress: bool = True,
        bf16: bool = False,
    ) -> None:
        super().__init__(bf16)
        layers = tuple(layers)
        unknown = [n for n in layers if n not in VGG16_LAYERS]
        if unknown or not layers:
            raise ValueError(
                f"unknown VGG16 layer {unknown[0] if unknown else '(none given)'!r} (valid: {', '.join(VGG16_LAYERS)})"
            )
        self.layers = layers
        self._taps = {VGG16_LAYERS[n]: n for n in layers}
        depth = max(self._taps) + 1

        def make_random() -> nn.Module:
            # torchvision's VGG initialisation of the convolutions (kaiming normal, fan_out, zero
            # bias), on the trunk only: the 120M-parameter classifier would be thrown away
            holder = nn.Module()
            holder.features = _vgg16_trunk(depth)
            for m in holder.features.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.constant_(m.bias, 0)
            return holder

        state, self.weights_source = _resolve_state_dict("vgg16", weights, seed, progress, make_random)
        self.features = _vgg16_trunk(depth)
        # a full model's keys are "features.N.*"; a features-only dict has "N.*"
        _apply_state_dict(self, state, self.weights_source, "VGG16", alt_prefix="features.")
        self._freeze()

    def _features(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        found = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self._taps:
                found[self._taps[index]] = x
        return OrderedDict((n, found[n]) for n in self.layers)


def _vgg16_trunk(depth: int) -> nn.Sequential:
    """``vgg16().features[:depth]`` without building (and randomly initialising) the whole model;
    ReLUs are not in place so that every tapped output stays intact."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    modules: list[nn.Module] = []
    channels = 3
    for v in cfg:
        if v == "M":
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            modules += [nn.Conv2d(channels, v, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            channels = v
        if len(modules) >= depth:
            break
    return nn.Sequential(*modules[:depth])


# ----------------------------------------------------------------------------- GoogLeNet


def _googlenet_attr(layer: str) -> str:
    """torchvision's attribute name (``inception4c``) of a layer given in either spelling."""
    return googlenet_layer(layer).replace("_", "")


class GoogLeNetFeatures(_Frozen):
    """GoogLeNet (torchvision ``googlenet``, Inception v1) activations of one inception block, for
    DeepDream.

    ``layer``: one of :data:`GOOGLENET_LAYERS` (default ``inception_4c``; torchvision's spelling
    ``inception4c`` is accepted too); anything else is a ``ValueError`` listing the valid names.
    The network is cut after that block (no aux heads, no classifier).

    Input handling follows torchvision exactly: ImageNet normalisation, then the pretrained model's
    ``transform_input`` step (the ported weights expect ``(x - 0.5) / 0.5``; the two together are
    that), for every ``weights`` choice.

    ``forward(images [B, 3, H, W] in [0, 1]) -> [B, C, H', W']``; for ``inception_4c`` C = 512 and
    H' = ceil(H / 16) (4 for 64, 14 for 224).
    """

    def __init__(
        self,
        layer: str = GOOGLENET_DEFAULT_LAYER,
        weights="imagenet",
        *,
        seed: int = 0,
        progress: bool = True,
        bf16: bool = False,
    ) -> None:
        super().__init__(bf16)
        attr = _googlenet_attr(layer)
        self.layer = attr.replace("inception", "inception_")
        self._sequence = _GOOGLENET_SEQUENCE[: _GOOGLENET_SEQUENCE.index(attr) + 1]

        def make_random() -> nn.Module:
            # torchvision's GoogLeNet init (truncated normal, std 0.01) makes activations vanish
            # with depth (~1e-9 at inception_4c), which stalls Adam (its eps dominates); convs are
            # re-initialised with kaiming normal (fan_in, relu) instead, so that random features
            # have a scale of order 1 (BatchNorm in eval mode with running stats 0/1 is ~identity)
            model = torchvision.models.googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=False)
            for m in model.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            return model

        state, self.weights_source = _resolve_state_dict("googlenet", weights, seed, progress, make_random)
        # same attribute names as torchvision's model, so its state dict keys match; built on the
        # meta device (no wasted initialisation), then given real storage filled by the state dict
        with torch.device("meta"):
            trunk = torchvision.models.googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=False)
        for name in self._sequence:
            self.add_module(name, getattr(trunk, name).to_empty(device="cpu"))
        del trunk
        _apply_state_dict(self, state, self.weights_source, "GoogLeNet")
        self._freeze()

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        # torchvision's transform_input: ImageNet-normalised -> (x - 0.5) / 0.5
        x = torch.cat(
            [x[:, c : c + 1] * (s / 0.5) + (m - 0.5) / 0.5 for c, (m, s) in enumerate(zip(IMAGENET_MEAN, IMAGENET_STD))],
            dim=1,
        )
        for name in self._sequence:
            if self.bf16 and name in _GOOGLENET_FP32_STEM:
                with torch.autocast(x.device.type, enabled=False):
                    x = getattr(self, name)(x.float())
            else:
                x = getattr(self, name)(x)
        return x


def build_backbone(
    name: str, weights="imagenet", *, layers: Iterable[str] | str | None = None, seed: int = 0, progress: bool = True
) -> nn.Module:
    """Factory: ``name`` "vgg16" (``layers``: VGG16 layer names) or "googlenet" (``layers``: one
    inception block name)."""
    if name == "vgg16":
        return VGG16Features(
            VGG16_STYLE_LAYERS if layers is None else ((layers,) if isinstance(layers, str) else tuple(layers)),
            weights,
            seed=seed,
            progress=progress,
        )
    if name == "googlenet":
        if layers is not None and not isinstance(layers, str):
            layers = list(layers)
            if len(layers) != 1:
                raise ValueError("GoogLeNetFeatures takes exactly one layer")
            layers = layers[0]
        return GoogLeNetFeatures(layers or GOOGLENET_DEFAULT_LAYER, weights, seed=seed, progress=progress)
    raise ValueError(f"unknown backbone {name!r} (valid: vgg16, googlenet)")
