"""The CUDA kernels (kernels/rasterize_cuda.cu).

* Wherever nvcc exists, the CUDA extension is built from a clean cache through ``native.load``
  (in a subprocess, for fixed GPU architectures, so that no GPU is needed): a compile error fails.
* Wherever a GPU exists, the CUDA backend must equal the native CPU backend: forward maps
  bitwise (face indices, ties included, and every float: both run the same operations without
  FMA), gradients entry by entry with equal nonzero patterns (conftest.assert_gradients_close),
  on random scenes and on the named edge cases of kernel_scenes.py; the ops reject bad inputs
  with RuntimeError; the backward pass raises torch's determinism error when deterministic
  algorithms are requested (its float atomics sum in no fixed order).
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import assert_gradients_close
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_scenes import EDGE_SCENES, compare_backends, icosphere_scene, random_scene, size_scene

from meshopt_cli.render import native

REPO = pathlib.Path(__file__).resolve().parent.parent

has_gpu = torch.cuda.is_available() and torch.cuda.device_count() > 0
needs_gpu = pytest.mark.skipif(not has_gpu, reason="needs a CUDA device")


# ----------------------------------------------------------------------------- compiling


def find_nvcc() -> pathlib.Path | None:
    homes = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    candidates = [pathlib.Path(home) / "bin" / "nvcc" for home in homes if home]
    on_path = shutil.which("nvcc")
    if on_path:
        candidates.append(pathlib.Path(os.path.realpath(on_path)))
    return next((c for c in candidates if c.is_file()), None)


def nvcc_version(nvcc: pathlib.Path) -> tuple[int, int]:
    text = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True, timeout=60).stdout
    match = re.search(r"release (\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


@pytest.mark.slow
def test_cuda_sources_compile(tmp_path):
    """Build the CUDA extension with native.load('cuda') into an empty cache (about 2 minutes)."""
    nvcc = find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found")
    if torch.version.cuda is None:
        pytest.skip("this torch has no CUDA support to build against")
    version = nvcc_version(nvcc)
    if version[0] != int(torch.version.cuda.split(".")[0]):
        pytest.skip(f"nvcc {version[0]}.{version[1]} does not match torch's CUDA {torch.version.cuda}")
    # one architecture (Hopper, the lent H200's) keeps the build near 90 s on 2 cores
    arch_list = "9.0" if version >= (11, 8) else "8.0"
    env = dict(os.environ)
    env.update(
        TORCH_EXTENSIONS_DIR=str(tmp_path / "cache"),
        TORCH_CUDA_ARCH_LIST=arch_list,
        CUDA_HOME=str(nvcc.parent.parent),
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    script = (
        "from meshopt_cli.render import native\n"
        "module = native.load('cuda')\n"
        "missing = [f for f in ('forward', 'backward_xy', 'backward_depth', 'backward_textures') if not hasattr(module, f)]\n"
        "assert not missing, missing\n"
        "print('built', native.extension_name('cuda'))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    output = result.stdout + result.stderr
    assert result.returncode == 0, "CUDA build failed:\n" + output[-8000:]
    assert "built meshopt_cuda_" in output


def test_default_cuda_arch_list(monkeypatch):
    """Without TORCH_CUDA_ARCH_LIST and without a GPU the build names its own architectures."""
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    if has_gpu:
        expected = {"%d.%d" % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
        assert set(native.cuda_arch_list().split(";")) == expected
    else:
        assert native.cuda_arch_list() == native.DEFAULT_CUDA_ARCH_LIST
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.6")
    name_86 = native.extension_name("cuda")
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")
    assert native.extension_name("cuda") != name_86  # builds for other GPUs do not share a cache entry


# ----------------------------------------------------------------------------- CUDA against CPU


@pytest.fixture(scope="module")
def backends():
    cpu = native.backend_for("cpu")
    assert cpu is not None, "the native CPU kernels failed to build"
    cuda = native._wrap(native.load("cuda"))  # a build error raises here instead of a fallback
    return cpu, cuda


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("texture_size", [1, 2, 3, 4, 5, 6])
def test_cuda_matches_cpu_texture_sizes(backends, texture_size):
    compare_backends(*backends, "cuda", random_scene(texture_size, 1, 40, 37, texture_size), 37, seed=texture_size)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("fill_back", [False, True])
@pytest.mark.parametrize("light", [False, True])
def test_cuda_matches_cpu_batch(backends, fill_back, light):
    scene = random_scene(11, 3, 60, 64, 3, fill_back=fill_back, light=light)
    maps = compare_backends(*backends, "cuda", scene, 64, eps=1e-3, seed=3)
    assert (maps[0] >= 0).any() and (maps[0] < 0).any()


@needs_gpu
@pytest.mark.cuda
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 3),
    count=st.integers(1, 80),
    size=st.integers(1, 70),
    texture_size=st.integers(1, 6),
    fill_back=st.booleans(),
    light=st.booleans(),
)
def test_cuda_matches_cpu_random(backends, seed, batch, count, size, texture_size, fill_back, light):
    scene = random_scene(seed, batch, count, size, texture_size, fill_back=fill_back, light=light)
    compare_backends(*backends, "cuda", scene, size, seed=seed)


@needs_gpu
@pytest.mark.cuda
def test_cuda_matches_cpu_crowded_tiles(backends):
    """Far more faces per 16 x 16 tile than a raster block stages at once (256)."""
    scene = random_scene(21, 2, 900, 20, 2, fill_back=True, light=True)
    compare_backends(*backends, "cuda", scene, 20, seed=21)


@needs_gpu
@pytest.mark.cuda
def test_cuda_matches_cpu_without_faces(backends):
    faces = torch.zeros(2, 0, 9)
    textures = torch.zeros(2, 0, 2, 2, 2, 3)
    maps = compare_backends(*backends, "cuda", (faces, textures, None, torch.rand(2, 3)), 16)
    assert (maps[0] == -1).all()


@needs_gpu
@pytest.mark.cuda
@pytest.mark.slow
def test_cuda_matches_cpu_icosphere_512(backends):
    scene = icosphere_scene(level=5)
    assert scene[0].shape[1] == 2 * 20480
    maps = compare_backends(*backends, "cuda", scene, 512, eps=1e-3)
    assert (maps[0] >= 0).sum() > 10000


@needs_gpu
@pytest.mark.cuda
def test_cuda_on_another_device(backends):
    """The kernels run on the tensors' device, not on the current one."""
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    device = f"cuda:{torch.cuda.device_count() - 1}"
    assert torch.cuda.current_device() != torch.cuda.device_count() - 1
    compare_backends(*backends, device, random_scene(2, 2, 30, 48, 2, fill_back=True, light=True), 48)


@needs_gpu
@pytest.mark.cuda
def test_cuda_rasterize_autograd_matches_cpu():
    """End to end through rasterize_rgbad: images and gradients of faces, textures and light."""
    from meshopt_cli.render import get_backend, rasterize_rgbad

    # a fallback (build failure, MESHOPT_BACKEND=reference) would compare the reference with the CPU kernels
    assert native.requested_backend() == "native", "MESHOPT_BACKEND asks for the reference backend"
    assert get_backend(torch.device("cuda")) is native.backend_for("cuda"), "not the native CUDA backend"
    assert native.module_loaded("cuda"), "the CUDA kernels are not loaded"
    faces, textures, light, background = random_scene(7, 2, 30, 40, 3, fill_back=True, light=True, specials=False)
    faces = faces.reshape(2, -1, 3, 3)
    results = []
    for device in ("cpu", "cuda"):
        f = faces.to(device).requires_grad_(True)
        t = textures.to(device).requires_grad_(True)
        lt = light.to(device).requires_grad_(True)
        out = rasterize_rgbad(f, t, image_size=40, face_light=lt, fill_back=True, background_color=background.to(device))
        weights = [
            torch.linspace(0.5, 1.5, out[k].numel(), device=device).reshape(out[k].shape) for k in ("rgb", "alpha", "depth")
        ]
        loss = sum((w * out[k]).sum() for w, k in zip(weights, ("rgb", "alpha", "depth")))
        loss.backward()
        results.append(([out[k].detach().cpu() for k in ("rgb", "alpha", "depth")], [x.grad.cpu() for x in (f, t, lt)]))
    (images_cpu, grads_cpu), (images_cuda, grads_cuda) = results
    for e, a in zip(images_cpu, images_cuda):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-5)
    for name, e, a in zip(("faces", "textures", "light"), grads_cpu, grads_cuda):
        assert_gradients_close(a, e, name, rtol=0)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("wrap", ["repeat", "mirrored_repeat", "clamp_to_edge", "clamp_to_border"])
def test_cuda_uv_textures_match_cpu(wrap):
    """The UV path (shade_uv and its backward) on CUDA against the CPU kernels through the Renderer:
    two batch items with their own images (odd sizes: every mip level's rounding), lit, fill-back,
    UVs beyond [0, 1]; pixels and the gradients of image, UVs and vertices."""
    from meshopt_cli.render import Renderer

    assert native.requested_backend() == "native", "MESHOPT_BACKEND asks for the reference backend"
    g = torch.Generator().manual_seed(5)
    vertices0 = (torch.rand(2, 90, 3, generator=g) * 2 - 1) * 0.9
    faces = torch.arange(90).reshape(1, 30, 3).expand(2, -1, -1)
    uvs0 = (torch.rand(2, 30, 3, 2, generator=g) * 2 - 1) * 2.5
    image0 = torch.rand(2, 37, 53, 3, generator=g)
    weight = torch.rand(2, 3, 48, 48, generator=g)
    results = []
    for device in ("cpu", "cuda"):
        v, uvs, image = (x.to(device).requires_grad_(True) for x in (vertices0, uvs0, image0))
        renderer = Renderer(image_size=48, texture_wrap=wrap, fill_back=True)
        rgb = renderer(v, faces.to(device), mode="rgb", uvs=uvs, texture_image=image)
        (rgb * weight.to(device)).sum().backward()
        results.append([x.detach().cpu() for x in (rgb, image.grad, uvs.grad, v.grad)])
    (rgb_cpu, *grads_cpu), (rgb_cuda, *grads_cuda) = results
    torch.testing.assert_close(rgb_cuda, rgb_cpu, rtol=0, atol=1e-5)
    for name, e, a in zip(("texture_image", "uvs", "vertices"), grads_cpu, grads_cuda):
        assert_gradients_close(a, e, name, exact_zeros=False)  # atomics: sums may cancel to rounding


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("name", sorted(EDGE_SCENES))
def test_cuda_matches_cpu_edge_scenes(backends, name):
    scene, size = EDGE_SCENES[name]()
    maps = compare_backends(*backends, "cuda", scene, size, eps=1e-3, seed=len(name))
    if name == "nothing-drawn":
        assert (maps[0] == -1).all()
    if name == "chunk-ties":
        assert maps[0][0].eq(0).all() and maps[0][1].eq(256).all() and maps[0][2].eq(255).all()
    if name == "full-image":
        assert (maps[0] >= 0).all()


@needs_gpu
@pytest.mark.cuda
def test_cuda_matches_cpu_size_1024(backends):
    scene, size = size_scene(1024)
    compare_backends(*backends, "cuda", scene, size, eps=1e-3, seed=1024)


@needs_gpu
@pytest.mark.cuda
def test_cuda_forward_repeats_bitwise_on_another_stream(backends):
    """Two runs agree bit for bit, on a non-default stream as on the default one."""
    _, cuda = backends
    faces, textures, light, background = (t.cuda() for t in random_scene(8, 2, 200, 96, 3, fill_back=True, light=True))
    args = (faces, textures, 96, 0.1, 100.0, 1e-4, background, light, True)
    first = cuda.forward(*args)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        second = cuda.forward(*args)
        grad = torch.ones_like(second[3])
        xy = cuda.backward_xy(faces, second[0], second[3], grad, 1e-4)
    torch.cuda.current_stream().wait_stream(stream)
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    expected = cuda.backward_xy(faces, first[0], first[3], torch.ones_like(first[3]), 1e-4)
    assert_gradients_close(xy, expected, "backward_xy on another stream")


@needs_gpu
@pytest.mark.cuda
def test_cuda_ops_reject_bad_inputs(backends):
    """Through the raw module: a CPU tensor, mixed devices, non-contiguous input, a wrong index dtype."""
    module = native.load("cuda")
    faces, textures, light, background = (t.cuda() for t in random_scene(9, 1, 20, 16, 2, light=True))
    empty = faces.new_empty(0)
    forward = lambda f=faces, t=textures, bg=background: module.forward(f, t, 16, 0.1, 100.0, 1e-4, bg, empty, False, True)
    face_index = forward()[0]
    image = torch.rand(1, 16, 16, 1, device="cuda")
    with pytest.raises(RuntimeError, match="faces must be a CUDA tensor"):
        forward(f=faces.cpu())
    with pytest.raises(RuntimeError, match="background must be on"):
        forward(bg=background.cpu())
    with pytest.raises(RuntimeError, match="faces must be contiguous"):
        module.backward_xy(faces.transpose(1, 2).contiguous().transpose(1, 2), face_index, image, image, 1e-4)
    with pytest.raises(RuntimeError, match="face_index must be Int"):
        module.backward_depth(faces, face_index.long(), torch.rand(1, 16, 16, device="cuda"))


@needs_gpu
@pytest.mark.cuda
def test_cuda_backward_raises_when_determinism_is_requested():
    from meshopt_cli.render import rasterize_rgbad

    faces = random_scene(10, 1, 20, 16, 2, specials=False)[0].reshape(1, -1, 3, 3).cuda().requires_grad_(True)
    alpha = rasterize_rgbad(faces, None, image_size=16, return_rgb=False, return_depth=False)["alpha"]
    torch.use_deterministic_algorithms(True)
    try:
        with pytest.raises(RuntimeError, match="does not have a deterministic implementation"):
            alpha.sum().backward()
    finally:
        torch.use_deterministic_algorithms(False)
