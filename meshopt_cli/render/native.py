"""Builds and loads the native kernels (``kernels/``) with ``torch.utils.cpp_extension``.

The CPU extension is built on first use into torch's extension cache (a one-line status on
stderr while it builds); the CUDA extension likewise, the first time a CUDA tensor is rendered.
When a build fails, :func:`backend_for` warns once and returns None so that the caller falls
back to the reference backend.
"""
from __future__ import annotations

import hashlib
import logging
import os
import pathlib
import platform
import shutil
import sys
import warnings
from types import SimpleNamespace

import torch

_PACKAGE_DIR = pathlib.Path(__file__).resolve().parent.parent
_CANDIDATE_KERNEL_DIRS = (_PACKAGE_DIR.parent / "kernels", _PACKAGE_DIR / "_kernels")

CPU_SOURCES = ("rasterize_cpu.cpp",)
CUDA_SOURCES = ("rasterize_cuda.cu",)
HEADERS = ("rasterizer_math.h", "rasterizer_ops.h")
# No FMA contraction: the forward pass must round exactly like the reference backend.
# -fopenmp: at::parallel_for is a header template that runs serially unless OpenMP is on.
CPU_FLAGS = ["-O3", "-ffp-contract=off", "-fopenmp", "-march=native"]
CUDA_FLAGS = ["-O3", "--fmad=false"]
# GPU architectures of a CUDA build when TORCH_CUDA_ARCH_LIST is unset and no GPU is visible (with
# a GPU, torch builds for the visible devices): Turing, Ampere, Hopper, and PTX for newer GPUs.
DEFAULT_CUDA_ARCH_LIST = "7.5;8.0;9.0+PTX"

_loaded: dict = {}


def kernel_dir() -> pathlib.Path:
    """Where the kernel sources are: the repository's ``kernels/`` or the wheel's copy."""
    for candidate in _CANDIDATE_KERNEL_DIRS:
        if (candidate / CPU_SOURCES[0]).is_file():
            return candidate
    raise FileNotFoundError("meshopt kernel sources not found (looked in " + ", ".join(map(str, _CANDIDATE_KERNEL_DIRS)) + ")")


def _cpu_signature() -> str:
    """Tells machines apart for -march=native builds that share a cache directory."""
    flags = ""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line
                break
    except OSError:
        pass
    return platform.machine() + flags


def cuda_arch_list() -> str:
    """The GPU architectures a CUDA build targets: TORCH_CUDA_ARCH_LIST, else the visible GPUs
    (what torch picks), else DEFAULT_CUDA_ARCH_LIST."""
    chosen = os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip()
    if chosen and chosen != "native":
        return chosen
    count = _visible_gpus()
    if count == 0:
        return DEFAULT_CUDA_ARCH_LIST
    return ";".join(sorted({"%d.%d" % torch.cuda.get_device_capability(i) for i in range(count)}))


def _visible_gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def extension_name(kind: str) -> str:
    """A name that changes whenever the sources, flags, torch version, CPU or GPU targets change."""
    sources = CPU_SOURCES if kind == "cpu" else CUDA_SOURCES
    digest = hashlib.sha256()
    directory = kernel_dir()
    for name in sources + HEADERS:
        digest.update((directory / name).read_bytes())
    flags = CPU_FLAGS if kind == "cpu" else CUDA_FLAGS
    digest.update(" ".join(flags).encode())
    digest.update(torch.__version__.encode())
    digest.update(_cpu_signature().encode())
    if kind == "cuda":
        digest.update(cuda_arch_list().encode())
    return f"meshopt_{kind}_{digest.hexdigest()[:12]}"


def _ensure_cuda_home() -> None:
    """Point torch at the CUDA toolkit of the nvcc on PATH (which may be a wrapper script) and keep
    cpp_extension's import from logging a guess on machines without a GPU."""
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return
    candidates = [pathlib.Path("/usr/local/cuda")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(pathlib.Path(os.path.realpath(nvcc)).parent.parent)
    for home in candidates:
        if (home / "bin" / "nvcc").is_file() and (home / "include").is_dir():
            os.environ["CUDA_HOME"] = str(home)
            if "torch.utils.cpp_extension" in sys.modules:
                sys.modules["torch.utils.cpp_extension"].CUDA_HOME = str(home)
            return


def load(kind: str = "cpu", verbose: bool = False):
    """Build (first time only) and import the ``cpu`` or ``cuda`` extension module."""
    if kind in _loaded:
        return _loaded[kind]
    _ensure_cuda_home()  # before cpp_extension's import, which otherwise logs a guess
    from torch.utils import cpp_extension

    name = extension_name(kind)
    directory = kernel_dir()
    build_dir = pathlib.Path(cpp_extension._get_build_directory(name, verbose=False))
    if not any(build_dir.glob(f"{name}*.so")) and not any(build_dir.glob(f"{name}*.pyd")):
        print(f"meshopt: building {kind.upper()} kernels (first run only, about a minute)...", file=sys.stderr, flush=True)
    sources = [str(directory / s) for s in (CPU_SOURCES if kind == "cpu" else CUDA_SOURCES)]
    # without a visible GPU torch cannot pick the architectures itself: name them for this build
    default_arch = kind == "cuda" and not os.environ.get("TORCH_CUDA_ARCH_LIST") and not _visible_gpus()
    if default_arch:
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_CUDA_ARCH_LIST
    try:
        module = cpp_extension.load(
            name=name,
            sources=sources,
            extra_cflags=CPU_FLAGS if kind == "cpu" else ["-O3"],
            extra_cuda_cflags=CUDA_FLAGS if kind == "cuda" else None,
            extra_include_paths=[str(directory)],
            extra_ldflags=["-fopenmp"] if kind == "cpu" else None,
            verbose=verbose,
        )
    finally:
        if default_arch:
            del os.environ["TORCH_CUDA_ARCH_LIST"]
    _loaded[kind] = module
    return module


def backend_for(device: torch.device):
    """A backend object (reference.py's contract) on ``device``, or None when it cannot be built."""
    kind = "cuda" if torch.device(device).type == "cuda" else "cpu"
    key = "backend:" + kind
    if key in _loaded:
        return _loaded[key]
    try:
        backend = _wrap(load(kind))
    except Exception as error:  # a missing or broken compiler must never stop a render
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        warnings.warn(
            f"meshopt: native {kind.upper()} kernels unavailable ({reason}); using the slower reference backend",
            RuntimeWarning,
            stacklevel=3,
        )
        backend = None
    _loaded[key] = backend
    return backend


def _wrap(module) -> SimpleNamespace:
    """Adapt the extension to reference.py's function signatures."""

    def forward(faces, textures, image_size, near, far, eps, background, light=None, fill_back=False):
        need_rgb = textures is not None
        empty = faces.new_empty(0)
        return tuple(module.forward(faces.contiguous(), textures.contiguous() if need_rgb else empty, int(image_size),
                                    float(near), float(far), float(eps), background.contiguous(),
                                    light.contiguous() if light is not None else empty, bool(fill_back), need_rgb))

    def backward_xy(faces, face_index, image, grad_image, eps):
        return module.backward_xy(faces.contiguous(), face_index.contiguous(), image.contiguous(), grad_image.contiguous(), float(eps))

    def backward_depth(faces, face_index, grad_depth):
        return module.backward_depth(faces.contiguous(), face_index.contiguous(), grad_depth.contiguous())

    def backward_textures(faces, face_index, weights, depth, grad_rgb, textures, light, fill_back, eps):
        empty = faces.new_empty(0)
        grad_textures, grad_light = module.backward_textures(
            faces.contiguous(), face_index.contiguous(), weights.contiguous(), depth.contiguous(), grad_rgb.contiguous(),
            textures.contiguous(), light.contiguous() if light is not None else empty, bool(fill_back), float(eps))
        return grad_textures, (grad_light if light is not None else None)

    return SimpleNamespace(name="native", forward=forward, backward_xy=backward_xy,
                           backward_depth=backward_depth, backward_textures=backward_textures)
