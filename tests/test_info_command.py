"""`meshopt info`: the report's sections and keys, versions, backend choice, kernel and weights
detection, and robustness. No test builds a kernel, loads weights or touches the network."""

import importlib.metadata
import json
import os
import platform
import socket
from pathlib import Path

import numpy
import pytest
import torch
import torchvision

import meshopt_cli
from meshopt_cli.commands import info
from meshopt_cli.optimize import backbones
from meshopt_cli.render import native

KEYS = {
    "meshopt": {"version", "installed_version", "location"},
    "versions": {"python", "platform", "torch", "torchvision", "numpy", "trimesh", "pillow", "typer", "rich"},
    "cpu": {"model", "machine", "logical_cpus", "usable_cpus", "torch_threads"},
    "cuda": {"available", "torch_cuda", "device_count", "devices"},
    "precision": {"cpu_bf16_instructions", "auto"},
    "renderer": {
        "MESHOPT_BACKEND",
        "selected",
        "cpu",
        "cuda",
        "kernel_sources",
        "extensions_root",
        "cxx",
        "ninja",
        "nvcc",
        "cuda_home",
    },
    "weights": {"checkpoint_dir", "backbones", "offline", "MESHOPT_OFFLINE"},
}
KERNEL_KEYS = {"extension", "build_dir", "built", "file", "loaded", "backend", "reason"}


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Empty extension and weights caches under tmp_path, no meshopt variables, no network."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:1]}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "extensions"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # so that get_dir() follows TORCH_HOME
    for variable in ("MESHOPT_BACKEND", "MESHOPT_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)


def test_collect_has_every_section_and_key_and_is_json():
    data = info.collect()
    assert tuple(data) == info.SECTIONS == ("meshopt", "versions", "cpu", "cuda", "precision", "renderer", "weights")
    for section, keys in KEYS.items():
        assert isinstance(data[section], dict), data[section]
        assert set(data[section]) == keys, section
    for kind in ("cpu", "cuda"):
        assert KERNEL_KEYS <= set(data["renderer"][kind])
    assert "arch_list" in data["renderer"]["cuda"]
    assert json.loads(json.dumps(data)) == data


def test_versions_are_those_of_the_installed_packages():
    data = info.collect()
    versions = data["versions"]
    assert data["meshopt"]["version"] == meshopt_cli.__version__
    assert data["meshopt"]["location"] == str(Path(meshopt_cli.__file__).resolve().parent)
    assert versions["torch"] == torch.__version__
    assert versions["torchvision"] == torchvision.__version__
    assert versions["numpy"] == importlib.metadata.version("numpy") == numpy.__version__
    assert versions["pillow"] == importlib.metadata.version("pillow")
    assert versions["python"] == platform.python_version()
    assert info.distribution_version("meshopt-no-such-distribution") == "not installed"


def test_cpu_and_cuda_facts():
    data = info.collect()
    assert data["cpu"]["logical_cpus"] == os.cpu_count()
    assert data["cpu"]["torch_threads"] == torch.get_num_threads()
    assert data["cpu"]["model"]
    assert data["cuda"]["available"] is torch.cuda.is_available()
    assert data["cuda"]["torch_cuda"] == torch.version.cuda
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert data["cuda"]["device_count"] == count == len(data["cuda"]["devices"])
    for index, device in enumerate(data["cuda"]["devices"]):
        assert device["name"] == torch.cuda.get_device_name(index)
        assert device["capability"] == "%d.%d" % torch.cuda.get_device_capability(index)
        assert device["memory_gib"] > 0


def test_json_run_prints_exactly_one_object(capsys):
    assert info.run(json_output=True) == 0
    out = capsys.readouterr().out
    parsed = json.loads(out)  # raises on anything but one JSON document
    assert out.startswith("{") and out.rstrip().endswith("}")
    assert parsed == json.loads(json.dumps(info.collect()))
    assert {section: set(parsed[section]) for section in info.SECTIONS} == KEYS


def test_text_run_has_a_heading_per_section(capsys):
    assert info.run() == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for section in info.SECTIONS:
        assert section in lines, section  # a heading on a line of its own
    for label in ("torch", "cpu backend", "cuda backend", "cpu kernels", "CUDA_HOME", "vgg16", "googlenet", "MESHOPT_OFFLINE"):
        assert any(line.strip().startswith(label) for line in lines), label
    assert meshopt_cli.__version__ in out and torch.__version__ in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_reference_backend_is_reported(monkeypatch):
    monkeypatch.setenv("MESHOPT_BACKEND", "reference")
    renderer = info.collect()["renderer"]
    assert renderer["MESHOPT_BACKEND"] == "reference" and renderer["selected"] == "reference"
    assert renderer["cpu"]["backend"] == renderer["cuda"]["backend"] == "reference"
    assert "MESHOPT_BACKEND=reference" in renderer["cpu"]["reason"]


def test_invalid_backend_is_reported_not_raised(monkeypatch):
    monkeypatch.setenv("MESHOPT_BACKEND", "fast")
    data = info.collect()
    assert data["renderer"]["cpu"]["backend"] == "invalid"
    assert "'fast'" in data["renderer"]["cpu"]["reason"]
    assert "invalid" in info.format_text(data)


def test_kernels_built_flag_follows_the_extension_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(native, "_loaded", {})  # as in a fresh process: nothing loaded yet
    name = native.extension_name("cpu")
    build_dir = tmp_path / "extensions" / name
    cpu = info.collect()["renderer"]["cpu"]
    assert cpu["extension"] == name and cpu["build_dir"] == str(build_dir)
    assert cpu["built"] is False and cpu["file"] is None and cpu["loaded"] is False
    assert not (tmp_path / "extensions").exists()  # collect() creates nothing

    build_dir.mkdir(parents=True)
    (build_dir / f"{name}.so").write_bytes(b"")
    cpu = info.collect()["renderer"]["cpu"]
    assert cpu["built"] is True and cpu["file"] == str(build_dir / f"{name}.so")
    assert cpu["backend"] == "native" and cpu["reason"] == "kernels built"
    other = info.collect()["renderer"]["cuda"]
    assert other["extension"] == native.extension_name("cuda") and other["built"] is False


def test_unbuilt_kernels_without_a_compiler_mean_the_reference_backend(monkeypatch):
    monkeypatch.setattr(native, "_loaded", {})
    monkeypatch.setattr(native.shutil, "which", lambda name, *args, **kwargs: None)
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    renderer = info.collect()["renderer"]
    assert renderer["cxx"] is None and renderer["ninja"] is None
    assert renderer["cpu"]["built"] is False
    assert renderer["cpu"]["backend"] == "reference"
    assert "C++ compiler" in renderer["cpu"]["reason"]


def test_extensions_root_is_where_torch_builds(monkeypatch, tmp_path):
    from torch.utils import cpp_extension

    monkeypatch.setattr(os, "makedirs", lambda *args, **kwargs: None)  # torch's function creates the folder
    name = native.extension_name("cpu")
    assert native.extensions_root() / name == Path(cpp_extension._get_build_directory(name, False))
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR")
    assert native.extensions_root() / name == Path(cpp_extension._get_build_directory(name, False))


def test_weights_cache_shows_which_backbones_are_present(monkeypatch, tmp_path):
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / backbones.weights_file_name("vgg16")).write_bytes(b"")
    data = info.collect()
    weights = data["weights"]
    assert weights["checkpoint_dir"] == str(checkpoints)
    found = {entry["name"]: entry for entry in weights["backbones"]}
    assert found["vgg16"]["cached"] is True and found["vgg16"]["size_bytes"] == 0
    assert found["vgg16"]["used_by"] == "style"
    assert found["googlenet"]["cached"] is False and found["googlenet"]["used_by"] == "dream"
    assert weights["offline"] is False and weights["MESHOPT_OFFLINE"] is None
    lines = info.format_text(data).splitlines()
    assert any(line.split()[:2] == ["vgg16", "present"] for line in lines)
    assert any(line.split()[:2] == ["googlenet", "missing"] for line in lines)

    monkeypatch.setenv("MESHOPT_OFFLINE", "1")
    assert info.collect()["weights"]["offline"] is True


def test_failing_probes_read_unknown(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("probe broke")

    monkeypatch.setattr(torch, "get_num_threads", broken)
    monkeypatch.setattr(torch.cuda, "is_available", broken)
    monkeypatch.setattr(backbones, "describe_weights", broken)
    data = info.collect()
    assert data["cpu"]["torch_threads"] == "unknown (RuntimeError: probe broke)"
    assert data["cuda"]["available"] == "unknown (RuntimeError: probe broke)" and data["cuda"]["devices"] == []
    assert data["weights"] == "unknown (RuntimeError: probe broke)"
    text = info.format_text(data)
    assert "unknown (RuntimeError: probe broke)" in text and text.splitlines()[-2] == "weights"
    json.dumps(data)


def test_collect_leaves_the_environment_as_it_was(monkeypatch):
    monkeypatch.delenv("CUDA_HOME", raising=False)
    before = dict(os.environ)
    info.collect()
    assert dict(os.environ) == before


def test_cuda_devices_are_listed_in_the_text():
    data = info.collect()
    data["cuda"] = {
        "available": True,
        "torch_cuda": "12.4",
        "device_count": 1,
        "devices": [{"index": 0, "name": "Fake GPU", "memory_gib": 79.6, "capability": "9.0"}],
    }
    rows = [line.split(None, 1) for line in info.format_text(data).splitlines() if line.strip().startswith("cuda:0")]
    assert rows == [["cuda:0", "Fake GPU, 79.6 GiB, compute 9.0"]]


def test_precision_says_what_auto_picks_and_why(monkeypatch):
    from meshopt_cli import precision

    monkeypatch.setattr(precision, "cpu_bf16_instructions", lambda: ())
    section = info.collect()["precision"]
    assert section["cpu_bf16_instructions"] == []
    assert section["auto"]["cpu"]["uses"] == "fp32" and "neither AMX-BF16 nor AVX512-BF16" in section["auto"]["cpu"]["reason"]
    monkeypatch.setattr(precision, "cpu_bf16_instructions", lambda: ("avx512_bf16",))
    section = info.collect()["precision"]
    assert section["auto"]["cpu"]["uses"] == "bf16" and "AVX512_BF16" in section["auto"]["cpu"]["reason"]
    assert any(line.split()[:4] == ["auto", "on", "cpu", "bf16"] for line in info.format_text(info.collect()).splitlines())
