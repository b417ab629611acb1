"""The backend seam (``native``'s public API): ``get_backend`` renders with what it decides and
``meshopt info`` reports it through the same functions, without reading native's private state."""

import ast
import os
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from meshopt_cli.commands import info
from meshopt_cli.render import native, reference
from meshopt_cli.render.rasterize import get_backend


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """As in a new process with an empty extension cache: nothing loaded, nothing built."""
    monkeypatch.setattr(native, "_loaded", {})
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "extensions"))
    monkeypatch.delenv("MESHOPT_BACKEND", raising=False)
    return tmp_path / "extensions"


@pytest.mark.parametrize("value, expected", [(None, "native"), (" Reference ", "reference"), ("NATIVE", "native")])
def test_requested_backend_reads_the_variable(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("MESHOPT_BACKEND", raising=False)
    else:
        monkeypatch.setenv("MESHOPT_BACKEND", value)
    assert native.requested_backend() == native.backend_setting() == expected


def test_an_invalid_setting_raises_in_get_backend_and_reads_invalid_in_the_choice(monkeypatch):
    monkeypatch.setenv("MESHOPT_BACKEND", "Fast")
    assert native.backend_setting() == "fast"
    with pytest.raises(ValueError, match=r"^MESHOPT_BACKEND must be 'native' or 'reference', got 'fast'$"):
        native.requested_backend()
    with pytest.raises(ValueError, match="MESHOPT_BACKEND"):
        get_backend(torch.device("cpu"))
    assert native.backend_choice("cpu") == (
        "invalid",
        "MESHOPT_BACKEND must be 'native' or 'reference', got 'fast': rendering fails",
    )


def test_reference_is_chosen_and_used_when_asked_for(monkeypatch, fresh):
    monkeypatch.setenv("MESHOPT_BACKEND", "reference")
    assert get_backend(torch.device("cpu")) is reference
    assert native.backend_choice("cpu") == ("reference", "MESHOPT_BACKEND=reference")
    assert native.backend_state("cpu") is None and not native.module_loaded("cpu")  # nothing was built


def test_nothing_built_in_a_fresh_cache(fresh):
    name = native.extension_name("cpu")
    assert native.build_status("cpu") == {"extension": name, "build_dir": str(fresh / name), "built": False, "file": None}
    assert native.kernels_built("cpu") is False and native.backend_state("cpu") is None
    assert native.backend_choice("cpu", tools={"cxx": "/usr/bin/c++", "ninja": "/usr/bin/ninja"}) == (
        "native",
        "kernels not built yet; built on first use, about 30 s",
    )
    assert native.backend_choice("cpu", tools={"cxx": None, "ninja": "/usr/bin/ninja"}) == (
        "reference",
        "kernels not built and no C++ compiler found to build them",
    )
    assert not fresh.exists()  # asking created nothing

    (fresh / name).mkdir(parents=True)
    (fresh / name / f"{name}.so").write_bytes(b"")
    assert native.build_status("cpu")["file"] == str(fresh / name / f"{name}.so")
    assert native.kernels_built("cpu") is True
    assert native.backend_choice("cpu") == ("native", "kernels built")


def test_a_failed_build_is_what_both_sides_then_see(monkeypatch, fresh):
    def broken(kind, verbose=False):
        raise RuntimeError("Error building extension: c++: not found")

    monkeypatch.setattr(native, "load", broken)
    with pytest.warns(RuntimeWarning, match="reference backend"):
        assert get_backend(torch.device("cpu")) is reference
    assert native.backend_state("cpu") is False
    assert native.backend_choice("cpu") == ("reference", "the native build failed in this process")
    assert info.collect()["renderer"]["cpu"]["backend"] == "reference"


def test_a_loaded_backend_is_what_both_sides_then_see(native_backend, monkeypatch):
    monkeypatch.delenv("MESHOPT_BACKEND", raising=False)
    assert get_backend(torch.device("cpu")) is native_backend
    assert native.backend_state("cpu") is True and native.module_loaded("cpu")
    assert native.kernels_built("cpu") is True
    assert native.backend_choice(torch.device("cpu")) == ("native", "loaded in this process")
    cpu = info.collect()["renderer"]["cpu"]
    assert (cpu["backend"], cpu["reason"], cpu["loaded"]) == ("native", "loaded in this process", True)


def test_the_cuda_choice_says_when_there_is_no_device(monkeypatch, fresh):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert native.kernel_kind("cuda:1") == native.kernel_kind(torch.device("cuda")) == "cuda"
    assert native.kernel_kind("cpu") == "cpu"
    _, reason = native.backend_choice("cuda", tools={"cxx": "c++", "ninja": "ninja", "nvcc": None})
    assert reason == "kernels not built and no nvcc found to build them; no CUDA device here"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.setattr(torch.cuda, "is_available", lambda: 1 / 0)  # a broken driver: no device, no raise
        assert native.backend_choice("cuda", built=True) == ("native", "kernels built; no CUDA device here")


def test_info_uses_only_the_public_seam():
    tree = ast.parse(Path(info.__file__).read_text())
    private = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "native"
        and node.attr.startswith("_")
    }
    assert private == set()
    text = Path(info.__file__).read_text()
    for derived in ("in this process", "kernels built", "found to build them", "'native' or 'reference'"):
        assert derived not in text  # the choice and its reasons come from native, not re-derived here


def test_an_unwritable_kernel_cache_is_one_warning_naming_the_variable(monkeypatch):
    """It used to read "meshopt: warning: meshopt: native CPU kernels unavailable (...)" without the variable."""
    import warnings

    def refuse(kind, verbose=False):
        raise PermissionError(13, "Permission denied", "/ro/cache/meshopt_cpu_x")

    monkeypatch.setattr(native, "load", refuse)
    monkeypatch.delitem(native._loaded, "backend:cpu", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert native.backend_for("cpu") is None
    monkeypatch.delitem(native._loaded, "backend:cpu", raising=False)  # the next test builds for real
    (message,) = [str(w.message) for w in caught]
    assert message.startswith("native CPU kernels unavailable (") and "set TORCH_EXTENSIONS_DIR to a writable folder" in message


def test_each_checkout_gets_its_own_kernel_cache_entry(monkeypatch, tmp_path):
    """Two installs of the same sources (a checkout and a CI clone, two virtual environments) used to
    share one cache entry, whose build file names each one's paths: each rebuilt it after the other."""
    here = native.kernel_dir()
    copy = tmp_path / "kernels"
    copy.mkdir()
    for path in here.iterdir():
        if path.is_file():
            (copy / path.name).write_bytes(path.read_bytes())
    name = native.extension_name("cpu")
    assert native.extension_name("cpu") == name  # deterministic for one install
    monkeypatch.setattr(native, "kernel_dir", lambda: copy)
    assert native.extension_name("cpu") != name
    monkeypatch.setattr(native, "kernel_dir", lambda: here)
    monkeypatch.setattr(native.torch, "__file__", str(tmp_path / "other-venv" / "torch" / "__init__.py"))
    assert native.extension_name("cpu") != name


def test_builds_run_the_ninja_package_whatever_comes_first_on_path(monkeypatch, fresh, tmp_path):
    """An activated venv and a bare ``.venv/bin/meshopt`` found different ninjas (1.13, 1.11), which
    rebuilt the kernels after each other; the build sees the package's first, and PATH comes back."""
    import ninja
    from torch.utils import cpp_extension

    decoy = tmp_path / "bin"
    decoy.mkdir()
    (decoy / "ninja").write_text("#!/bin/sh\nexit 1\n")
    (decoy / "ninja").chmod(0o755)
    monkeypatch.setenv("PATH", f"{decoy}{os.pathsep}{os.environ['PATH']}")
    before = os.environ["PATH"]
    seen = {}

    def fake_load(**kwargs):
        seen["ninja"] = shutil.which("ninja")
        return "module"

    monkeypatch.setattr(cpp_extension, "load", fake_load)
    assert native.load("cpu") == "module"
    assert Path(seen["ninja"]).parent == Path(ninja.BIN_DIR)
    assert os.environ["PATH"] == before
    assert Path(native.toolchain()["ninja"]).parent == Path(ninja.BIN_DIR)


class _RecordedTimer:
    """threading.Timer's stand-in: records what it was given; ``fire`` runs it as the interval would."""

    made = []

    def __init__(self, interval, function, args=()):
        self.interval, self.function, self.args = interval, function, args
        self.started = self.cancelled = False
        _RecordedTimer.made.append(self)

    def start(self):
        self.started = True

    def cancel(self):
        self.cancelled = True

    def fire(self):
        if self.started and not self.cancelled:
            self.function(*self.args)


@pytest.mark.parametrize("cached, build_runs", [(False, True), (True, True), (True, False)])
def test_a_build_says_so_on_stderr_even_when_a_stale_cached_one_is_rebuilt(monkeypatch, fresh, cached, build_runs):
    """Nothing cached: the line comes at once. Cached: loading takes a fraction of a second, so the
    line comes only when the load outlasts REBUILD_NOTICE_SECONDS (ninja found it stale)."""
    from torch.utils import cpp_extension

    name = native.extension_name("cpu")
    if cached:
        (fresh / name).mkdir(parents=True)
        (fresh / name / f"{name}.so").write_bytes(b"")
    said = []
    _RecordedTimer.made = []
    monkeypatch.setattr(native, "_say", said.append)
    monkeypatch.setattr(native.threading, "Timer", _RecordedTimer)

    def fake_load(**kwargs):
        if build_runs:
            for timer in _RecordedTimer.made:
                timer.fire()  # the build outlasts the interval
        return "module"

    monkeypatch.setattr(cpp_extension, "load", fake_load)
    assert native.load("cpu") == "module"
    if not cached:
        assert said == ["meshopt: building CPU kernels (first run only, about 30 s)..."] and not _RecordedTimer.made
    else:
        (timer,) = _RecordedTimer.made
        assert timer.interval == native.REBUILD_NOTICE_SECONDS and timer.cancelled
        assert said == (
            ["meshopt: rebuilding CPU kernels (the cached build is out of date for this install, about 30 s)..."]
            if build_runs
            else []
        )


def test_a_cuda_build_without_a_visible_gpu_names_the_default_architectures_and_puts_the_variable_back(monkeypatch, fresh):
    from torch.utils import cpp_extension

    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    monkeypatch.setattr(native, "_visible_gpus", lambda: 0)
    seen = {}

    def fake_load(**kwargs):
        seen["arch"] = os.environ.get("TORCH_CUDA_ARCH_LIST")
        return "module"

    monkeypatch.setattr(cpp_extension, "load", fake_load)
    assert native.load("cuda") == "module"
    assert seen["arch"] == native.DEFAULT_CUDA_ARCH_LIST and "TORCH_CUDA_ARCH_LIST" not in os.environ
