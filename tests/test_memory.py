"""The memory budget (meshopt_cli/memory.py): sizes, estimates against measured peaks, refusals
before anything is allocated, split work that gives the same results, --jobs capped."""

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import meshopt_in_process
from PIL import Image

from meshopt_cli import memory
from meshopt_cli.mesh import load_mesh, normalize_vertices
from meshopt_cli.mesh.builtins import icosphere
from meshopt_cli.mesh.cubes import sample_cubes
from meshopt_cli.turntable import gif_bytes, render_views

REPO = Path(__file__).resolve().parent.parent


def textured_sphere(folder: Path, subdivisions: int = 4) -> Path:
    """An icosphere OBJ (20·4^s faces: 5120 for s = 4) with spherical UVs into a 64² noise PNG."""
    vertices, faces = icosphere(subdivisions)
    u = 0.5 + np.arctan2(vertices[:, 0], vertices[:, 2]) / (2 * np.pi)
    v = 0.5 + np.arcsin(np.clip(vertices[:, 1], -1, 1)) / np.pi
    lines = ["mtllib s.mtl", "usemtl paint"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"vt {a:.6f} {b:.6f}" for a, b in zip(u, v)]
    lines += [f"f {a + 1}/{a + 1} {b + 1}/{b + 1} {c + 1}/{c + 1}" for a, b, c in faces]
    (folder / "s.obj").write_text("\n".join(lines) + "\n")
    (folder / "s.mtl").write_text("newmtl paint\nKd 1 1 1\nmap_Kd s.png\n")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / "s.png")
    return folder / "s.obj"


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    "text, expected",
    [("4G", 4 << 30), ("512M", 512 << 20), ("1.5G", 3 << 29), ("2GiB", 2 << 30), ("64k", 64 << 10), ("1000", 1000)],
)
def test_parse_size(text, expected):
    assert memory.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "4X", "-1G", "G", "nan", "0", "4 G B", "inf"])
def test_parse_size_refuses(text):
    with pytest.raises(ValueError):
        memory.parse_size(text)


@pytest.mark.parametrize("value", ["4X", "-2G", "lots", "0"])
def test_bad_max_memory_is_one_usage_line(tmp_path, value):
    ran = meshopt_in_process("render", "builtin:cube", "--max-memory", value, "-o", tmp_path / "o")
    assert ran.returncode == 2
    assert ran.stderr.count("\n") == 1 and "--max-memory" in ran.stderr and "Traceback" not in ran.stderr
    assert not (tmp_path / "o").exists()


def test_available_memory_is_bounded_by_meminfo():
    free, source = memory.available_memory()
    meminfo = memory._meminfo("MemAvailable")
    assert free > 0 and source
    if meminfo is not None:
        assert free <= meminfo
    assert memory.default_budget(1) > memory.default_budget(4) > memory.PROCESS_BASELINE


# ---------------------------------------------------------------- refusals before allocating


def test_settings_over_budget_refused_at_once(tmp_path):
    started = time.perf_counter()
    ran = meshopt_in_process("render", "builtin:cube", "--size", "4000", "--max-memory", "4G", "-o", tmp_path / "o")
    assert time.perf_counter() - started < 1.0
    assert ran.returncode == 2
    line = ran.stderr.strip()
    assert "\n" not in line and "--max-memory" in line and "--size" in line and "4.0G" in line, line


def test_texture_size_64_refused_within_4g_in_under_a_second(tmp_path):
    mesh = textured_sphere(tmp_path)
    started = time.perf_counter()
    ran = meshopt_in_process(  # --texture cubes: a UV-textured mesh is otherwise drawn through its image
        "render", mesh, "--texture", "cubes", "--texture-size", "64", "--max-memory", "4G", "-o", tmp_path / "o", "-q"
    )
    seconds = time.perf_counter() - started
    assert ran.returncode == 1
    line = ran.stderr.strip()
    assert "\n" not in line and "--texture-size" in line and "--max-memory" in line, line
    # 5120 faces x 64^3 x 3 floats = 15.0 GiB of cubes alone
    assert "texture cubes 15.0G" in line, line
    assert seconds < 1.0, seconds
    assert not (tmp_path / "o" / "s").exists()


def test_texture_size_over_its_bound_says_why(tmp_path):
    ran = meshopt_in_process("render", "builtin:cube", "--texture-size", "65", "-o", tmp_path / "o")
    assert ran.returncode == 2 and "texture-size must be in [1, 64]" in ran.stderr and "per face" in ran.stderr


def test_textured_commands_refuse_huge_views_before_loading_networks(tmp_path):
    for command in (["style", "builtin:sphere", tmp_path / "none.png"], ["dream", "builtin:sphere"]):
        ran = meshopt_in_process(
            *command, "--weights", "random", "--image-size", "1024", "--batch-views", "64", "--max-memory", "4G", "-o", tmp_path
        )
        assert ran.returncode == 2, ran.stderr
        assert "--batch-views or --image-size" in ran.stderr and "--max-memory" in ran.stderr, ran.stderr


def test_uv_texture_jobs_are_estimated_by_their_image_not_by_cubes(tmp_path):
    from meshopt_cli.commands.style import COMMAND

    settings = COMMAND.resolve("fast", overrides={"texture": "uv", "texture_size": 32, "texture_resolution": 2048})[0]
    uv = COMMAND.memory(settings, None).parts
    cubes = COMMAND.resolve("fast", overrides={"texture_size": 32})[0]
    assert "texture parameters" in COMMAND.memory(cubes, None).parts and "texture parameters" not in uv
    assert uv["texture image"] == 8 * 2048 * 2048 * 3 * 4  # logits, gradient, Adam's moments and the mip pyramids
    # a huge image is refused before anything is loaded, naming the flag that sets it
    ran = meshopt_in_process(
        "style", "builtin:sphere", tmp_path / "none.png", "--weights", "random", "--texture", "uv",
        "--texture-resolution", "4096", "--max-memory", "1G", "-o", tmp_path / "o",
    )  # fmt: skip
    assert ran.returncode == 2 and "--texture-resolution" in ran.stderr and "\n" not in ran.stderr.strip(), ran.stderr


def test_fit_refuses_huge_image_size(tmp_path):
    ran = meshopt_in_process(
        "fit", "builtin:cube", "--image-size", "1024", "--batch-views", "24", "--max-memory", "2G", "-o", tmp_path
    )
    assert ran.returncode == 2 and "--max-memory" in ran.stderr, ran.stderr


def _limit_address_space(gigabytes: float):
    def apply():
        limit = int(gigabytes * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def test_subprocess_under_address_limit_refuses_instead_of_crashing(tmp_path):
    """With 6 GiB of address space (torch alone maps about 3.3), the default budget follows the
    limit: --texture-size 32 on 5120 faces (1.9 GiB of cubes, more with the frames) is refused with
    one line and exit status 1, never a MemoryError or a kill."""
    mesh = textured_sphere(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO), TORCH_EXTENSIONS_DIR=os.environ.get("TORCH_EXTENSIONS_DIR", ""))
    if not env["TORCH_EXTENSIONS_DIR"]:
        del env["TORCH_EXTENSIONS_DIR"]
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "meshopt_cli",
            "render",
            str(mesh),
            "--texture",
            "cubes",
            "--texture-size",
            "48",
            "-o",
            str(tmp_path / "o"),
            "-q",
        ],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=_limit_address_space(6),
        timeout=120,
    )
    assert ran.returncode == 1, (ran.returncode, ran.stderr)
    assert "MemoryError" not in ran.stderr and "Traceback" not in ran.stderr
    assert ran.stderr.strip().count("\n") == 0 and "--texture-size" in ran.stderr, ran.stderr


# ---------------------------------------------------------------- split work, same results


def test_chunked_cube_sampling_equals_unchunked():
    rng = np.random.default_rng(1)
    image = rng.random((37, 53, 3), dtype=np.float32)
    uvs = rng.random((300, 3, 2), dtype=np.float32) * 1.4 - 0.2
    whole = sample_cubes(image, uvs, 5, samples=10**9)
    for samples in (1, 125, 1000, 4099):
        assert np.array_equal(sample_cubes(image, uvs, 5, samples=samples), whole), samples


def test_frame_chunks_give_identical_gif_frames():
    mesh = load_mesh("builtin:teapot")
    vertices, faces = mesh.to_torch()
    vertices = normalize_vertices(vertices)
    textures = torch.rand(len(faces), 3, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    frames = {n: render_views(vertices, faces, textures, frames=7, image_size=48, batch_size=n) for n in (1, 3, 7)}
    assert frames[1].std() > 0
    for n in (3, 7):
        assert np.array_equal(frames[n], frames[1]), n
    assert gif_bytes(frames[3]) == gif_bytes(frames[1])


def test_uniform_mesh_renders_with_one_sample_per_face(tmp_path):
    """An untextured mesh renders from 1³ cubes (what metrics.json records), the same GIF as T³."""
    ran = meshopt_in_process("render", "builtin:teapot", "--frames", "4", "--size", "48", "-o", tmp_path / "a", "-q")
    assert ran.returncode == 0, ran.stderr
    record = json.loads((tmp_path / "a" / "teapot" / "metrics.json").read_text())["memory"]
    assert record["texture_size_used"] == 1 and record["estimate"]["total"] <= record["budget"]
    mesh = load_mesh("builtin:teapot")
    vertices, faces = mesh.to_torch()
    vertices = normalize_vertices(vertices)
    t4 = render_views(vertices, faces, torch.from_numpy(mesh.texture_cubes(4)), frames=4, image_size=48)
    t1 = render_views(vertices, faces, torch.from_numpy(mesh.texture_cubes(1)), frames=4, image_size=48)
    assert np.array_equal(t4, t1)


def test_frames_per_chunk_shrinks_with_the_budget():
    args = (10_000, 20_000, 4, 90, 256)
    roomy = memory.frames_per_chunk(10 << 30, *args)
    tight = memory.frames_per_chunk(memory.turntable_estimate(*args, 2, cubes_held=False).total, *args)
    assert roomy == 8 and tight == 2
    assert memory.frames_per_chunk(1, *args) == 1


# ---------------------------------------------------------------- estimates against measured peaks


PEAK_CHILD = """
import sys
from pathlib import Path
import numpy as np, torch
from meshopt_cli import memory
from meshopt_cli.mesh.builtins import icosphere
from meshopt_cli.mesh.cubes import sample_cubes
from meshopt_cli.turntable import gif_bytes, render_views

case, chunk = sys.argv[1], int(sys.argv[2])
vertices, faces = icosphere(5)  # 20480 faces
v, f = torch.from_numpy(np.asarray(vertices, np.float32)), torch.from_numpy(np.asarray(faces, np.int64))
render_views(v, f, None, frames=1, image_size=8)  # load the kernels first
rng = np.random.default_rng(2)
image, uvs = rng.random((64, 64, 3), dtype=np.float32), rng.random((5120, 3, 2), dtype=np.float32)
Path("/proc/self/clear_refs").write_text("5")
before = memory.process_status("VmRSS")
if case == "turntable":
    cubes = torch.rand(len(f), 6, 6, 6, 3)
    gif_bytes(render_views(v, f, cubes, frames=12, image_size=160, batch_size=chunk))
elif case == "carve":  # the stood-up torus and a web across its hole, from 24 training views
    from meshopt_cli.mesh import builtin_shape
    from meshopt_cli.optimize.carve import CARVE_IMAGE_SIZE, faces_to_carve
    from meshopt_cli.optimize.views import render_silhouettes, training_views
    ring_v, ring_f = (torch.from_numpy(np.ascontiguousarray(a[:, [0, 2, 1]])) for a in builtin_shape("builtin:torus"))
    web_v = v * torch.tensor([0.25, 0.25, 0.02])
    mesh_v, mesh_f = torch.cat([ring_v, web_v]), torch.cat([ring_f.long(), f + len(ring_v)])
    views = training_views(24)
    masks = render_silhouettes(ring_v, ring_f.long(), views, CARVE_IMAGE_SIZE, anti_aliasing=False) > 0.5
    assert faces_to_carve(mesh_v, mesh_f, views, masks, 3).any()
elif case == "relax":  # the 20480-face sphere against its own silhouettes from 24 training views
    from meshopt_cli.optimize.relax import RELAX_IMAGE_SIZE, relax_unheld
    from meshopt_cli.optimize.views import render_silhouettes, training_views
    views = training_views(24)
    masks = render_silhouettes(v, f, views, RELAX_IMAGE_SIZE, anti_aliasing=False) > 0.5
    assert relax_unheld(v, f, views, masks).moved > 0
else:
    sample_cubes(image, uvs, 24)
print(memory.process_status("VmHWM") - before)
"""


def _peak_of(case: str, chunk: int = 1) -> int:
    """Bytes of resident memory a case added at its peak, in a fresh process (a long-lived one
    reuses pages it freed earlier), VmHWM reset through /proc/self/clear_refs."""
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("cannot reset the peak resident memory here (/proc/self/clear_refs)")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="2")
    ran = subprocess.run(
        [sys.executable, "-c", PEAK_CHILD, case, str(chunk)], capture_output=True, text=True, env=env, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    return int(ran.stdout.split()[-1])


@pytest.mark.parametrize("chunk", [1, 4])
def test_turntable_estimate_against_measured_peak(chunk):
    """The estimate is at least the measured peak and at most 3× it (textured cubes, 20480 faces)."""
    estimate = memory.turntable_estimate(10242, 20480, 6, 12, 160, chunk)
    measured = _peak_of("turntable", chunk)
    assert measured <= estimate.total <= 3 * measured, (measured, estimate.as_dict())


def test_cube_sampling_peak_is_the_cubes_not_the_scratch():
    """Sampling 5120 faces at T = 24 keeps its scratch near 32 MB: the peak is within 1.5× the cubes."""
    cubes = memory.cube_bytes(5120, 24)
    measured = _peak_of("cubes")
    assert cubes * 0.9 <= measured <= 1.5 * cubes + (40 << 20), (measured, cubes)


def test_carve_estimate_against_measured_peak():
    """The carve's estimate holds its measured peak, within 3× (a 20480-face web across a torus)."""
    from meshopt_cli.mesh import builtin_shape

    ring_v, ring_f = builtin_shape("builtin:torus")
    estimate = memory.carve_bytes(24, len(ring_f), len(ring_v), len(ring_f) + 20480, len(ring_v) + 10242, 256)
    measured = _peak_of("carve")
    assert measured <= estimate <= 3 * measured, (measured, estimate)


def test_relax_estimate_against_measured_peak():
    """The final relaxation's estimate holds its measured peak, within 3× (the 20480-face sphere)."""
    estimate = memory.relax_bytes(24, 20480, 10242, 20480, 10242, 256)
    measured = _peak_of("relax")
    assert measured <= estimate <= 3 * measured, (measured, estimate)


# ---------------------------------------------------------------- --jobs


def test_jobs_capped_to_the_cores_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "usable_cores", lambda: 2)
    workers, warning = memory.cap_jobs(20, 20, None, memory.MINIMUM_BUDGET)
    assert workers == 2 and warning.startswith("--jobs 20 capped to 2") and "core" in warning


def test_jobs_capped_by_memory(monkeypatch):
    monkeypatch.setattr(memory, "usable_cores", lambda: 64)
    monkeypatch.setattr(memory, "available_memory", lambda: (10 << 30, "MemAvailable"))
    workers, warning = memory.cap_jobs(20, 20, None, 2 << 30)  # 60% of 10 GiB holds 3 workers of 2 GiB
    assert workers == 3 and "capped to 3" in warning and "2.0G" in warning
    assert memory.cap_jobs(2, 20, None, 1 << 30) == (2, None)


def test_jobs_20_capped_in_a_real_run(tmp_path):
    if memory.usable_cores() >= 20:
        pytest.skip("this machine has 20 cores")
    meshes = [f"builtin:sphere:{1 + k % 2}" for k in range(20)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "meshopt_cli",
            "render",
            *meshes,
            "--jobs",
            "20",
            "--frames",
            "2",
            "--size",
            "16",
            "-o",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    warnings = [line for line in ran.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and f"--jobs 20 capped to {memory.usable_cores()}" in warnings[0], ran.stderr
    assert f"on {memory.usable_cores()} workers" in ran.stderr
