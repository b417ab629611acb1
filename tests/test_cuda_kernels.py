"""The CUDA kernels (kernels/rasterize_cuda.cu).

* Wherever nvcc exists, the CUDA extension is built from a clean cache through ``native.load``
  (in a subprocess, for fixed GPU architectures, so that no GPU is needed): a compile error fails.
* Wherever a GPU exists, the CUDA backend must equal the native CPU backend: face indices
  identical (ties included), floats to 1e-5, gradients to 1e-4 of the largest magnitude.

The comparison helpers take any two backends with reference.py's contract, so they also serve
to check other implementations of the same kernels.
"""

from __future__ import annotations

import math
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

from meshopt_cli.render import native

REPO = pathlib.Path(__file__).resolve().parent.parent
NEAR, FAR = 0.1, 100.0

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


# ----------------------------------------------------------------------------- scenes


def make_scene(
    seed: int,
    batch: int,
    count: int,
    size: int,
    texture_size: int,
    fill_back: bool = False,
    light: bool = False,
    specials: bool = True,
):
    """Random faces ``[B, F, 9]`` (F = count, doubled with fill_back), textures, light, background.

    ``specials`` puts in: zero-area and collinear faces, faces off-screen, a vertex behind the
    camera, non-finite coordinates, a duplicate (exact depth ties), two faces sharing an edge
    through pixel centres, and a face larger than the image.
    """
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(batch, count, 1, 2, generator=g) * 2.6 - 1.3
    spread = torch.where(torch.rand(batch, count, 1, 1, generator=g) < 0.7, 0.15, 0.8)
    xy = centre + (torch.rand(batch, count, 3, 2, generator=g) * 2 - 1) * spread
    z = 0.5 + 2.5 * torch.rand(batch, count, 3, 1, generator=g)
    faces = torch.cat((xy, z), dim=-1)  # [B, F, 3 vertices, 3]
    if specials and count >= 13:
        pixel = lambda i: (2 * i + 1 - size) / size  # NDC of pixel centre i
        faces[:, 0, 1] = faces[:, 0, 0]  # zero area
        faces[:, 1, 2] = (faces[:, 1, 0] + faces[:, 1, 1]) / 2  # collinear
        faces[:, 2, :, 0] += 3.0  # off-screen (right)
        faces[:, 3, :, 1] -= 3.0  # off-screen (below)
        faces[:, 4, 0, 2] = -1.0  # one vertex behind the camera
        faces[:, 5, 1, 0] = float("nan")
        faces[:, 6, 2, 1] = float("inf")
        faces[:, 8] = faces[:, 7]  # duplicate: face 7 must win every tie
        lo, hi = pixel(size // 4), pixel((3 * size) // 4)
        quad = torch.tensor([[lo, lo], [hi, lo], [hi, hi], [lo, hi]])
        faces[:, 9, :, :2] = quad[[0, 1, 2]]  # counter-clockwise in the unflipped frame
        faces[:, 10, :, :2] = quad[[0, 2, 3]]
        faces[:, 9:11, :, 2] = 1.25
        faces[:, 11] = torch.tensor([[-1.5, -1.5, 2.9], [3.0, -1.5, 2.9], [-1.5, 3.0, 2.9]])  # covers most of the image
        faces[:, 12] = faces[:, 12, [2, 1, 0]]  # make sure one random face is reversed
    cubes = count
    if fill_back:
        faces = torch.cat((faces, faces[:, :, [2, 1, 0]]), dim=1)
    faces = faces.reshape(batch, -1, 9).contiguous()
    textures = torch.rand(batch, cubes, texture_size, texture_size, texture_size, 3, generator=g)
    face_light = 0.25 + torch.rand(batch, faces.shape[1], 3, generator=g) if light else None
    background = torch.rand(batch, 3, generator=g)
    return faces, textures, face_light, background


def icosphere(level: int):
    """Unit icosphere: vertices ``[V, 3]``, faces ``[20 * 4^level, 3]`` (outward, counter-clockwise)."""
    t = (1 + 5**0.5) / 2
    vertices = [
        (-1, t, 0),
        (1, t, 0),
        (-1, -t, 0),
        (1, -t, 0),
        (0, -1, t),
        (0, 1, t),
        (0, -1, -t),
        (0, 1, -t),
        (t, 0, -1),
        (t, 0, 1),
        (-t, 0, -1),
        (-t, 0, 1),
    ]
    vertices = [tuple(c / math.sqrt(1 + t * t) for c in v) for v in vertices]
    faces = [
        (0, 11, 5),
        (0, 5, 1),
        (0, 1, 7),
        (0, 7, 10),
        (0, 10, 11),
        (1, 5, 9),
        (5, 11, 4),
        (11, 10, 2),
        (10, 7, 6),
        (7, 1, 8),
        (3, 9, 4),
        (3, 4, 2),
        (3, 2, 6),
        (3, 6, 8),
        (3, 8, 9),
        (4, 9, 5),
        (2, 4, 11),
        (6, 2, 10),
        (8, 6, 7),
        (9, 8, 1),
    ]
    for _ in range(level):
        cache: dict = {}

        def midpoint(i, j, cache=cache):
            key = (min(i, j), max(i, j))
            if key not in cache:
                m = [(a + b) / 2 for a, b in zip(vertices[i], vertices[j])]
                norm = math.sqrt(sum(c * c for c in m))
                vertices.append(tuple(c / norm for c in m))
                cache[key] = len(vertices) - 1
            return cache[key]

        faces = [
            f
            for a, b, c in faces
            for f in (
                (a, midpoint(a, b), midpoint(c, a)),
                (b, midpoint(b, c), midpoint(a, b)),
                (c, midpoint(c, a), midpoint(b, c)),
                (midpoint(a, b), midpoint(b, c), midpoint(c, a)),
            )
        ]
    return torch.tensor(vertices, dtype=torch.float32), torch.tensor(faces)


def icosphere_scene(level: int = 5, texture_size: int = 2, batch: int = 2):
    """The icosphere seen by the default camera (eye at z = -2.732, 30 degrees) from `batch` sides,
    with fill-back faces (2 x 20 * 4^level faces), textures and light."""
    vertices, faces = icosphere(level)
    views = []
    for b in range(batch):
        angle = 0.7 * b
        rotation = torch.tensor(
            [[math.cos(angle), 0.0, math.sin(angle)], [0.0, 1.0, 0.0], [-math.sin(angle), 0.0, math.cos(angle)]]
        )
        v = vertices @ rotation.T
        z = v[:, 2] + 2.732
        scale = math.tan(math.radians(30))
        views.append(torch.stack((v[:, 0] / (z * scale), v[:, 1] / (z * scale), z), dim=-1)[faces])  # [F, 3, 3]
    corners = torch.stack(views)
    corners = torch.cat((corners, corners[:, :, [2, 1, 0]]), dim=1)
    g = torch.Generator().manual_seed(5)
    textures = torch.rand(batch, faces.shape[0], texture_size, texture_size, texture_size, 3, generator=g)
    light = 0.5 + torch.rand(batch, corners.shape[1], 3, generator=g)
    return corners.reshape(batch, -1, 9).contiguous(), textures, light, torch.rand(batch, 3, generator=g)


# ----------------------------------------------------------------------------- comparisons


def assert_maps_equal(expected, actual):
    names = ("face_index", "weights", "depth", "rgb", "alpha")
    assert torch.equal(actual[0].cpu(), expected[0]), "face_index differs on %d pixels" % int(
        (actual[0].cpu() != expected[0]).sum()
    )
    for name, e, a in zip(names[1:], expected[1:], actual[1:]):
        a = a.cpu()
        assert a.shape == e.shape, name
        assert a.dtype == e.dtype, name
        torch.testing.assert_close(a, e, rtol=0, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")


def compare_backends(expected, actual, device, scene, size, eps=1e-4, seed=0):
    """forward (rgb and silhouettes) and every backward of two backends on one scene."""
    faces, textures, light, background = scene
    fill_back = faces.shape[1] != textures.shape[1]
    on = lambda t: None if t is None else t.to(device)
    args = (size, NEAR, FAR, eps)

    maps = expected.forward(faces, textures, *args, background, light, fill_back)
    assert_maps_equal(maps, actual.forward(on(faces), on(textures), *args, on(background), on(light), fill_back))
    silhouettes = expected.forward(faces, None, *args, background, None, False)
    assert_maps_equal(silhouettes, actual.forward(on(faces), None, *args, on(background), None, False))

    face_index, weights, depth, rgb, alpha = maps
    g = torch.Generator().manual_seed(seed)
    for name, image in (("alpha", alpha[..., None]), ("rgb", rgb), ("alpha+rgb", torch.cat((alpha[..., None], rgb), -1))):
        grad = torch.randn(image.shape, generator=g) * (torch.rand(image.shape, generator=g) < 0.6)
        assert_gradients_close(
            actual.backward_xy(on(faces), on(face_index), on(image.contiguous()), on(grad), eps),
            expected.backward_xy(faces, face_index, image.contiguous(), grad, eps),
            "backward_xy " + name,
            rtol=0,
        )
    grad_depth = torch.randn(depth.shape, generator=g)
    assert_gradients_close(
        actual.backward_depth(on(faces), on(face_index), on(grad_depth)),
        expected.backward_depth(faces, face_index, grad_depth),
        "backward_depth",
        rtol=0,
    )
    grad_rgb = torch.randn(rgb.shape, generator=g)
    expected_textures, expected_light = expected.backward_textures(
        faces, face_index, weights, depth, grad_rgb, textures, light, fill_back, eps
    )
    actual_textures, actual_light = actual.backward_textures(
        on(faces), on(face_index), on(weights), on(depth), on(grad_rgb), on(textures), on(light), fill_back, eps
    )
    assert_gradients_close(actual_textures, expected_textures, "backward_textures", rtol=0)
    assert_gradients_close(actual_light, expected_light, "backward_textures (light)", rtol=0)
    return maps


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
    compare_backends(*backends, "cuda", make_scene(texture_size, 1, 40, 37, texture_size), 37, seed=texture_size)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("fill_back", [False, True])
@pytest.mark.parametrize("light", [False, True])
def test_cuda_matches_cpu_batch(backends, fill_back, light):
    scene = make_scene(11, 3, 60, 64, 3, fill_back=fill_back, light=light)
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
    scene = make_scene(seed, batch, count, size, texture_size, fill_back=fill_back, light=light)
    compare_backends(*backends, "cuda", scene, size, seed=seed)


@needs_gpu
@pytest.mark.cuda
def test_cuda_matches_cpu_crowded_tiles(backends):
    """Far more faces per 16 x 16 tile than a raster block stages at once (256)."""
    scene = make_scene(21, 2, 900, 20, 2, fill_back=True, light=True)
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
    compare_backends(*backends, device, make_scene(2, 2, 30, 48, 2, fill_back=True, light=True), 48)


@needs_gpu
@pytest.mark.cuda
def test_cuda_rasterize_autograd_matches_cpu():
    """End to end through rasterize_rgbad: images and gradients of faces, textures and light."""
    from meshopt_cli.render import rasterize_rgbad

    faces, textures, light, background = make_scene(7, 2, 30, 40, 3, fill_back=True, light=True, specials=False)
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
