"""Builds and loads the native kernels (``kernels/``) with ``torch.utils.cpp_extension``, and says
which backend renders on a device.

The CPU extension is built on first use into torch's extension cache (a one-line status on
stderr while it builds); the CUDA extension likewise, the first time a CUDA tensor is rendered.
When a build fails, :func:`backend_for` warns once and returns None so that the caller falls
back to the reference backend.

The backend seam, shared by ``rasterize.get_backend`` (which renders) and ``meshopt info`` (which
reports without building anything)::

    backend_setting() -> str              # MESHOPT_BACKEND, normalised, "native" when unset
    requested_backend() -> str            # the same, validated: "native" | "reference" (else ValueError)
    backend_choice(device) -> (name, reason)   # what rendering on device would use, and why
    backend_state(kind) -> True | False | None # backend_for's outcome in this process (None: not asked)
    module_loaded(kind) -> bool           # the extension module is imported in this process
    build_status(kind) -> {"extension", "build_dir", "built", "file"}; kernels_built(kind) -> bool
    toolchain() -> {"cxx", "ninja", "nvcc", "cuda_home"}; extensions_root() -> Path

``kind`` is ``"cpu"`` or ``"cuda"`` (:func:`kernel_kind` of a device).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pathlib
import platform
import shutil
import sys
import threading
import warnings
from types import SimpleNamespace

import torch

_PACKAGE_DIR = pathlib.Path(__file__).resolve().parent.parent
_CANDIDATE_KERNEL_DIRS = (_PACKAGE_DIR.parent / "kernels", _PACKAGE_DIR / "_kernels")

CPU_SOURCES = ("rasterize_cpu.cpp",)
# What a first build takes on 2 cores (measured: CPU 20-25 s, CUDA 70 s for one architecture, about
# 3 minutes for the three of DEFAULT_CUDA_ARCH_LIST): said in the status line and in `meshopt info`.
BUILD_TIME = {"cpu": "about 30 s", "cuda": "a few minutes"}
REBUILD_NOTICE_SECONDS = 3.0  # a cached build still loading after this is being rebuilt
CUDA_SOURCES = ("rasterize_cuda.cu",)
HEADERS = ("rasterizer_math.h", "rasterizer_ops.h")
# No FMA contraction: the forward pass must round exactly like the reference backend.
# -fopenmp: at::parallel_for is a header template that runs serially unless OpenMP is on.
CPU_FLAGS = ["-O3", "-ffp-contract=off", "-fopenmp", "-march=native"]
CUDA_FLAGS = ["-O3", "--fmad=false"]
# GPU architectures of a CUDA build when TORCH_CUDA_ARCH_LIST is unset and no GPU is visible (with
# a GPU, torch builds for the visible devices): Turing, Ampere, Hopper, and PTX for newer GPUs.
DEFAULT_CUDA_ARCH_LIST = "7.5;8.0;9.0+PTX"
#: The environment variable that picks the backend, and the values it may take.
BACKEND_VARIABLE = "MESHOPT_BACKEND"
BACKEND_NAMES = ("native", "reference")

# kind -> extension module; "backend:" + kind -> backend_for's result (None: the build failed)
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
    """A name that changes whenever the sources, flags, torch version, CPU or GPU targets change, and
    one per checkout and torch install: torch writes their paths into the build file, so two installs
    sharing one cache entry rebuilt it (about 25 s, silently) each time the other had run."""
    sources = CPU_SOURCES if kind == "cpu" else CUDA_SOURCES
    digest = hashlib.sha256()
    directory = kernel_dir()
    digest.update(str(directory.resolve()).encode())
    digest.update(str(pathlib.Path(torch.__file__).resolve().parent).encode())
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


def _package_ninja_dir() -> str | None:
    """The folder of the ``ninja`` package's own binary (a dependency), or None without it.

    Builds run that one, not whichever ``ninja`` comes first on PATH: an activated virtual
    environment puts the package's (1.13) first and a bare ``.venv/bin/meshopt`` finds the
    system's (1.11), and the two disagree on the build log, so each rebuilt the kernels (about
    25 s, silently) after the other had run."""
    try:
        import ninja
    except ImportError:
        return None
    folder = getattr(ninja, "BIN_DIR", None)
    if folder and any((pathlib.Path(folder) / name).is_file() for name in ("ninja", "ninja.exe")):
        return str(folder)
    return None


@contextlib.contextmanager
def _build_environment(kind: str):
    """The environment of one build, put back afterwards: the ``ninja`` package's binary first on
    PATH (:func:`_package_ninja_dir`), and, for a CUDA build without a visible GPU, where torch
    cannot pick the architectures itself, :data:`DEFAULT_CUDA_ARCH_LIST`."""
    saved = {key: os.environ.get(key) for key in ("PATH", "TORCH_CUDA_ARCH_LIST")}
    ninja_dir = _package_ninja_dir()
    if ninja_dir:
        os.environ["PATH"] = os.pathsep.join([ninja_dir, saved["PATH"]] if saved["PATH"] else [ninja_dir])
    if kind == "cuda" and not saved["TORCH_CUDA_ARCH_LIST"] and not _visible_gpus():
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_CUDA_ARCH_LIST
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _build_notice(kind: str, cached: bool):
    """One status line on stderr when a build runs: at once when nothing is cached, else after
    :data:`REBUILD_NOTICE_SECONDS` (loading a cached build takes a fraction of that; longer means
    ninja found it stale and is compiling)."""
    duration = BUILD_TIME[kind]
    if not cached:
        _say(f"meshopt: building {kind.upper()} kernels (first run only, {duration})...")
        yield
        return
    timer = threading.Timer(
        REBUILD_NOTICE_SECONDS,
        _say,
        (f"meshopt: rebuilding {kind.upper()} kernels (the cached build is out of date for this install, {duration})...",),
    )
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _built_library(build_dir: pathlib.Path, name: str) -> pathlib.Path | None:
    found = sorted(build_dir.glob(f"{name}*.so")) + sorted(build_dir.glob(f"{name}*.pyd"))
    return found[0] if found else None


def load(kind: str = "cpu", verbose: bool = False):
    """Build (first time only) and import the ``cpu`` or ``cuda`` extension module."""
    if kind in _loaded:
        return _loaded[kind]
    _ensure_cuda_home()  # before cpp_extension's import, which otherwise logs a guess
    from torch.utils import cpp_extension

    name = extension_name(kind)
    directory = kernel_dir()
    build_dir = pathlib.Path(cpp_extension._get_build_directory(name, verbose=False))
    sources = [str(directory / s) for s in (CPU_SOURCES if kind == "cpu" else CUDA_SOURCES)]
    with _build_environment(kind), _build_notice(kind, cached=_built_library(build_dir, name) is not None):
        module = cpp_extension.load(
            name=name,
            sources=sources,
            extra_cflags=CPU_FLAGS if kind == "cpu" else ["-O3"],
            extra_cuda_cflags=CUDA_FLAGS if kind == "cuda" else None,
            extra_include_paths=[str(directory)],
            extra_ldflags=["-fopenmp"] if kind == "cpu" else None,
            verbose=verbose,
        )
    _loaded[kind] = module
    return module


def kernel_kind(device) -> str:
    """``"cuda"`` for a CUDA device (a ``torch.device``, a string such as ``"cuda:1"``, or the kind
    itself), else ``"cpu"``."""
    return "cuda" if torch.device(device).type == "cuda" else "cpu"


def backend_for(device: torch.device):
    """A backend object (reference.py's contract) on ``device``, or None when it cannot be built."""
    kind = kernel_kind(device)
    key = "backend:" + kind
    if key in _loaded:
        return _loaded[key]
    try:
        backend = _wrap(load(kind))
    except Exception as error:  # a missing or broken compiler must never stop a render
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        if isinstance(error, PermissionError) or "ermission denied" in str(error) or "ead-only file system" in str(error):
            reason += f"; the kernel cache {extensions_root()} is not writable: set TORCH_EXTENSIONS_DIR to a writable folder"
        warnings.warn(
            f"native {kind.upper()} kernels unavailable ({reason}); using the slower reference backend",
            RuntimeWarning,
            stacklevel=3,
        )
        backend = None
    _loaded[key] = backend
    return backend


def alert_nondeterministic(op: str) -> None:
    """torch's rule for an op without a deterministic implementation, applied to the CUDA backward
    ops (their float atomics add in no fixed order; docs/design.md, "Determinism"): raise when
    ``torch.use_deterministic_algorithms(True)``, warn with ``warn_only=True``, else nothing."""
    if not torch.are_deterministic_algorithms_enabled():
        return
    message = (
        f"meshopt {op} on CUDA does not have a deterministic implementation (it adds with float atomics), but "
        "torch.use_deterministic_algorithms(True) is set; run the backward pass on the CPU, whose kernels are "
        "deterministic, or pass warn_only=True"
    )
    if torch.is_deterministic_algorithms_warn_only_enabled():
        warnings.warn(message, UserWarning, stacklevel=3)
    else:
        raise RuntimeError(message)


def _wrap(module) -> SimpleNamespace:
    """Adapt the extension to reference.py's function signatures."""

    def forward(faces, textures, image_size, near, far, eps, background, light=None, fill_back=False):
        need_rgb = textures is not None
        empty = faces.new_empty(0)
        return tuple(
            module.forward(
                faces.contiguous(),
                textures.contiguous() if need_rgb else empty,
                int(image_size),
                float(near),
                float(far),
                float(eps),
                background.contiguous(),
                light.contiguous() if light is not None else empty,
                bool(fill_back),
                need_rgb,
            )
        )

    def backward_xy(faces, face_index, image, grad_image, eps):
        if faces.is_cuda:
            alert_nondeterministic("backward_xy")
        return module.backward_xy(
            faces.contiguous(), face_index.contiguous(), image.contiguous(), grad_image.contiguous(), float(eps)
        )

    def backward_depth(faces, face_index, grad_depth):
        if faces.is_cuda:
            alert_nondeterministic("backward_depth")
        return module.backward_depth(faces.contiguous(), face_index.contiguous(), grad_depth.contiguous())

    def backward_textures(faces, face_index, weights, depth, grad_rgb, textures, light, fill_back, eps, need_textures=True):
        if faces.is_cuda:
            alert_nondeterministic("backward_textures")
        empty = faces.new_empty(0)
        grad_textures, grad_light = module.backward_textures(
            faces.contiguous(),
            face_index.contiguous(),
            weights.contiguous(),
            depth.contiguous(),
            grad_rgb.contiguous(),
            textures.contiguous(),
            light.contiguous() if light is not None else empty,
            bool(fill_back),
            float(eps),
            bool(need_textures),
        )
        return (grad_textures if need_textures else None), (grad_light if light is not None else None)

    def mip_pyramid(image, levels):
        """``[Bi, H, W, 3]`` -> the packed pyramid ``[Bi total, 3]`` (``levels``: uv.mip_levels)."""
        return module.mip_pyramid(image.contiguous(), [int(x) for row in levels for x in row])

    def mip_pyramid_backward_(grad_packed, levels, images):
        """The image's gradient ``[Bi, H, W, 3]`` from the packed one, which it overwrites."""
        if not grad_packed.is_contiguous():
            raise ValueError("mip_pyramid_backward_ works in place: grad_packed must be contiguous")
        return module.mip_pyramid_backward_(grad_packed, [int(x) for row in levels for x in row], int(images))

    def shade_uv(faces, maps, uvs, pyramid, levels, light, background, wrap):
        """The UV path's rgb ``[B, S, S, 3]`` (:class:`meshopt_cli.render.uv.NativeShade`'s arguments)."""
        return module.shade_uv(*_uv_inputs(faces, maps, uvs, pyramid, levels, light, background, wrap))

    def shade_uv_backward(faces, maps, uvs, pyramid, levels, light, background, wrap, grad_rgb, needs):
        """Gradients of :func:`shade_uv` for (pyramid, uvs, light); None where ``needs`` says no."""
        if grad_rgb.is_cuda:
            alert_nondeterministic("shade_uv_backward")
        inputs = _uv_inputs(faces, maps, uvs, pyramid, levels, light, background, wrap)
        grads = module.shade_uv_backward(*inputs, grad_rgb.contiguous(), bool(needs[0]), bool(needs[1]))
        return tuple(grad if need and grad.numel() else None for grad, need in zip(grads, needs))

    return SimpleNamespace(
        name="native",
        forward=forward,
        backward_xy=backward_xy,
        backward_depth=backward_depth,
        backward_textures=backward_textures,
        mip_pyramid=mip_pyramid,
        mip_pyramid_backward_=mip_pyramid_backward_,
        shade_uv=shade_uv,
        shade_uv_backward=shade_uv_backward,
    )


def _uv_inputs(faces, maps, uvs, pyramid, levels, light, background, wrap) -> tuple:
    """shade_uv's positional arguments: contiguous tensors, the level table as a flat int list, the
    wrap mode as its index in ``uv.WRAPS``."""
    from meshopt_cli.render.uv import WRAPS

    face_index, weights, depth = maps
    return (
        faces.contiguous(),
        face_index.contiguous(),
        weights.contiguous(),
        depth.contiguous(),
        uvs.contiguous(),
        pyramid.contiguous(),
        [int(x) for row in levels for x in row],
        light.contiguous() if light is not None else weights.new_empty(0),
        background.contiguous(),
        WRAPS.index(wrap),
    )


# ----------------------------------------------------------------------------- the backend seam


def backend_setting() -> str:
    """MESHOPT_BACKEND as the renderer reads it (stripped, lower-case; ``"native"`` when unset),
    not validated."""
    return os.environ.get(BACKEND_VARIABLE, "native").strip().lower()


def requested_backend() -> str:
    """The backend MESHOPT_BACKEND asks for: ``"native"`` (the default) or ``"reference"``; a
    one-line ValueError naming the variable for anything else."""
    choice = backend_setting()
    if choice not in BACKEND_NAMES:
        raise ValueError(f"{BACKEND_VARIABLE} must be 'native' or 'reference', got {choice!r}")
    return choice


def module_loaded(kind: str) -> bool:
    """True when the ``kind`` extension module has been imported in this process."""
    return kind in _loaded


def backend_state(kind: str) -> bool | None:
    """:func:`backend_for`'s outcome for ``kind`` in this process: True (native), False (the build
    failed: the reference backend renders), None (not asked yet)."""
    key = "backend:" + kind
    return None if key not in _loaded else _loaded[key] is not None


def extensions_root() -> pathlib.Path:
    """torch's extension cache folder, as ``cpp_extension._get_build_directory`` computes it (which
    also creates it, so it is not called here)."""
    from torch.utils import cpp_extension

    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root is not None:
        return pathlib.Path(root)
    if torch.version.hip is not None:

        def key(version: str) -> str:
            return version.split("-", maxsplit=1)[0].replace(".", "")

        rocm = getattr(torch.version, "rocm", None)
        accelerator = f"rocm{key(rocm)}_hip{key(torch.version.hip)}" if rocm else f"rocm{key(torch.version.hip)}"
    elif torch.version.cuda is not None:
        accelerator = f"cu{torch.version.cuda.replace('.', '')}"
    else:
        accelerator = "cpu"
    python = f"py{sys.version_info.major}{sys.version_info.minor}{getattr(sys, 'abiflags', '')}"
    return pathlib.Path(cpp_extension.get_default_build_root()) / f"{python}_{accelerator}"


def build_status(kind: str, root: pathlib.Path | None = None) -> dict:
    """Where the ``kind`` extension is built and whether it is, without building or creating
    anything: ``{"extension": name, "build_dir": str, "built": bool, "file": str or None}``.
    ``root``: the extension cache folder (default :func:`extensions_root`). Raises when the kernel
    sources are missing."""
    name = extension_name(kind)
    build_dir = (extensions_root() if root is None else pathlib.Path(root)) / name
    found = _built_library(build_dir, name)
    return {
        "extension": name,
        "build_dir": str(build_dir),
        "built": found is not None,
        "file": str(found) if found is not None else None,
    }


def kernels_built(kind: str) -> bool:
    """True when the ``kind`` extension for these sources, flags and machine is in torch's cache."""
    return build_status(kind)["built"]


def toolchain() -> dict:
    """C++ compiler, ninja, nvcc and the CUDA_HOME a kernel build would use (paths or None; the
    environment is left as it was)."""
    saved = os.environ.get("CUDA_HOME")
    try:
        _ensure_cuda_home()  # load's choice; also keeps cpp_extension's import quiet
        from torch.utils import cpp_extension

        cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or cpp_extension.CUDA_HOME
    finally:
        if saved is None:
            os.environ.pop("CUDA_HOME", None)
        else:
            os.environ["CUDA_HOME"] = saved
    try:
        compiler = (
            cpp_extension.get_cxx_compiler() if hasattr(cpp_extension, "get_cxx_compiler") else os.environ.get("CXX", "c++")
        )
    except Exception:  # noqa: BLE001 - no compiler to report
        compiler = None
    nvcc = pathlib.Path(cuda_home) / "bin" / "nvcc" if cuda_home else None
    return {
        "cxx": shutil.which(compiler) if isinstance(compiler, str) else None,
        "ninja": shutil.which("ninja", path=_package_ninja_dir()) or shutil.which("ninja"),
        "nvcc": str(nvcc) if nvcc is not None and nvcc.is_file() else shutil.which("nvcc"),
        "cuda_home": cuda_home,
    }


def _cuda_available() -> bool:
    try:
        return torch.cuda.is_available() is True
    except Exception:  # noqa: BLE001 - a broken driver reads as no CUDA device
        return False


def backend_choice(device, *, built=None, tools: dict | None = None) -> tuple[str, str]:
    """``(name, reason)``: the backend that rendering on ``device`` would use, ``"native"``,
    ``"reference"`` or ``"invalid"`` (MESHOPT_BACKEND is neither: rendering raises), predicted
    without building anything. In the order ``get_backend`` decides: MESHOPT_BACKEND, then what
    :func:`backend_for` already found in this process, then whether the kernels are built, then
    whether the tools to build them are there. ``built`` (:func:`kernels_built`'s answer) and
    ``tools`` (:func:`toolchain`'s) are computed when not given."""
    kind = kernel_kind(device)
    try:
        choice = requested_backend()
    except ValueError as error:
        return "invalid", f"{error}: rendering fails"
    state = backend_state(kind)
    if choice == "reference":
        name, reason = "reference", f"{BACKEND_VARIABLE}=reference"
    elif state is not None:
        name, reason = ("native", "loaded in this process") if state else ("reference", "the native build failed in this process")
    else:
        if built is None:
            try:
                built = kernels_built(kind)
            except Exception:  # noqa: BLE001 - e.g. missing sources: not built
                built = False
        if built is True:
            name, reason = "native", "kernels built"
        else:
            tools = toolchain() if tools is None else tools
            needed = [("C++ compiler", tools.get("cxx")), ("ninja", tools.get("ninja"))]
            if kind == "cuda":
                needed.append(("nvcc", tools.get("nvcc")))
            missing = [tool for tool, path in needed if not path]
            if missing:
                name, reason = "reference", f"kernels not built and no {', '.join(missing)} found to build them"
            else:
                name, reason = "native", f"kernels not built yet; built on first use, {BUILD_TIME[kind]}"
    if kind == "cuda" and not _cuda_available():
        reason += "; no CUDA device here"
    return name, reason
