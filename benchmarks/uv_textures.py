"""UV-mapped texture images against texture cubes: speed, fidelity, style step time. Prints one
JSON object per figure on stdout.

    python benchmarks/uv_textures.py                    # all three figures, CPU, 2 threads
    python benchmarks/uv_textures.py --figures speed psnr
    python benchmarks/uv_textures.py --figures speed --device cuda   # the speed figure on a GPU

* ``speed``: rgb forward + backward (vertices and texture) of a 20480-face icosphere at 256 px with
  anti-aliasing: a 1024² UV texture image against T = 4 cubes (the issue's target: at most 1.5x).
* ``psnr``: a "display" (a screen of 32 x 32 quads, and of one quad, with a detailed 512² texture:
  rings, stripes and text-like blocks) seen obliquely at 256 px, in UV mode and with 4³ cubes, against a reference
  computed without the rasterizer or the mip pyramid: per pixel 8 x 8 rays cast in numpy onto
  the screen's plane, the full-resolution texture read bilinearly at each hit, the same flat
  light, averaged (target: at least 30 dB in UV mode).
* ``colour`` (not in the default set: seven 150-step style runs): how far ``style --weights
  random --preset fast`` moves the mean colour of the sphere's views toward a procedural painting's
  (a warm sky over blue-green ground, and a mostly green meadow), cubes and ``--texture uv``, and
  with ``--colour-weight 0`` (the Gram terms alone) and the paper's absolute Gram loss.
* ``style``: seconds per step of ``meshopt style --preset fast --weights random`` on the sphere
  with ``--texture uv --texture-resolution 512`` against ``--texture cubes`` (target: at most 1.3x).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from meshopt_cli.render import Renderer


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


# ----------------------------------------------------------------------------- speed


def spherical_uvs(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    corners = vertices[faces]
    u = torch.atan2(corners[..., 2], corners[..., 0]) / (2 * math.pi) + 0.5
    v = torch.asin(corners[..., 1].clamp(-1, 1)) / math.pi + 0.5
    u = torch.where((u.amax(1, keepdim=True) - u) > 0.5, u + 1, u)
    return torch.stack((u, v), dim=-1)


def speed(repeats: int, device: str = "cpu", subdivisions: int = 5, texture: int = 1024) -> dict:
    import trimesh

    device = torch.device(device)
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions)
    vertices = torch.tensor(mesh.vertices, dtype=torch.float32)[None]
    faces = torch.tensor(mesh.faces)[None]
    uvs = spherical_uvs(vertices[0], faces[0])[None].contiguous().to(device)
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, texture, texture, 3, generator=generator).to(device).requires_grad_(True)
    cubes = torch.rand(1, faces.shape[1], 4, 4, 4, 3, generator=generator).to(device).requires_grad_(True)
    target = torch.rand(1, 3, 256, 256, generator=generator).to(device)
    renderer = Renderer(image_size=256)
    renderer.eye = (0.0, 0.0, -2.2)
    v = vertices.to(device).requires_grad_(True)
    faces = faces.to(device)

    def step(mode):
        if mode == "uv":
            rgb = renderer(v, faces, mode="rgb", uvs=uvs, texture_image=image)
        else:
            rgb = renderer(v, faces, cubes, mode="rgb")
        ((rgb - target) ** 2).mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times = {"uv": [], "cubes": []}
    for mode in ("uv", "cubes"):
        step(mode)  # warm-up (kernels built, allocator primed)
    for _ in range(repeats):  # interleaved, so that a load spike hits both
        for mode in ("uv", "cubes"):
            start = time.perf_counter()
            step(mode)
            times[mode].append(time.perf_counter() - start)
    median = {k: statistics.median(x) for k, x in times.items()}
    best = {k: min(x) for k, x in times.items()}
    return {
        "figure": "speed",
        "case": f"ico{faces.shape[1]}, 256 px with AA, rgb forward + backward (vertices and texture), {texture}² image",
        "device": str(device),
        "uv_1024_median_s": round(median["uv"], 4),
        "cubes_t4_median_s": round(median["cubes"], 4),
        "ratio_median": round(median["uv"] / median["cubes"], 3),
        "uv_1024_min_s": round(best["uv"], 4),
        "cubes_t4_min_s": round(best["cubes"], 4),
        "ratio_min": round(best["uv"] / best["cubes"], 3),
        "repeats": repeats,
        "target": "ratio <= 1.5",
        **machine(),
    }


# ----------------------------------------------------------------------------- fidelity


def display_texture(side: int = 512) -> np.ndarray:
    """[H, W, 3] in [0, 1]: rings, stripes and blocks of "text", a crisp logo-like pattern."""
    y, x = (np.mgrid[0:side, 0:side] + 0.5) / side
    rings = 0.5 + 0.5 * np.cos(2 * np.pi * 12 * np.hypot(x - 0.3, y - 0.35))
    stripes = (np.floor(x * 24) % 2).astype(float)
    text = ((np.floor(x * 64) % 3 != 0) & (np.floor(y * 48) % 4 == 1) & (y > 0.6)).astype(float)
    image = np.stack([0.2 + 0.7 * rings, 0.15 + 0.5 * stripes * (y < 0.6), 0.3 + 0.6 * text], -1)
    return np.clip(image, 0, 1).astype(np.float32)


def display_mesh(cells: int = 32):
    """A 2 x 2 screen in the z = 0 plane as cells x cells quads; UV (x + 1) / 2, (y + 1) / 2."""
    ticks = np.linspace(-1, 1, cells + 1)
    gx, gy = np.meshgrid(ticks, ticks, indexing="xy")
    vertices = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], -1).astype(np.float32)
    index = np.arange((cells + 1) ** 2).reshape(cells + 1, cells + 1)
    a, b = index[:-1, :-1].ravel(), index[:-1, 1:].ravel()
    c, d = index[1:, 1:].ravel(), index[1:, :-1].ravel()
    faces = np.concatenate([np.stack([a, b, c], -1), np.stack([a, c, d], -1)]).astype(np.int64)
    uvs = ((vertices[faces][..., :2] + 1) / 2).astype(np.float32)
    return vertices, faces, uvs


def bilinear(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Texel centres at ((i + 0.5) / W, 1 - (j + 0.5) / H), clamped to the edge."""
    h, w, _ = image.shape
    x = np.clip(u * w - 0.5, 0, w - 1)
    y = np.clip((1 - v) * h - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def ray_cast_reference(texture, eye, size, light_direction, background, samples=8, angle=30.0) -> np.ndarray:
    """[S, S, 3]: per pixel samples² rays from ``eye`` (looking at the origin, up +y, half field
    of view ``angle``) onto the plane z = 0 (|x|, |y| <= 1), lit flat like the renderer."""
    eye = np.asarray(eye, np.float64)
    z = -eye / np.linalg.norm(eye)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    tan = math.tan(math.radians(angle))
    offsets = (np.arange(samples) + 0.5) / samples
    column = (np.arange(size)[:, None] + offsets[None, :]).ravel()  # sub-sample positions in pixels
    ndc = 2 * column / size - 1
    px, py = np.meshgrid(ndc, -ndc, indexing="xy")  # row 0 at the top
    rays = px[..., None] * tan * x + py[..., None] * tan * y + z
    t = -eye[2] / rays[..., 2]
    hit = eye + t[..., None] * rays
    inside = (np.abs(hit[..., 0]) <= 1) & (np.abs(hit[..., 1]) <= 1) & (t > 0)
    normal = np.array([0.0, 0.0, -1.0]) if eye[2] < 0 else np.array([0.0, 0.0, 1.0])
    light = 0.5 + 0.5 * max(0.0, float(normal @ (np.asarray(light_direction) / np.linalg.norm(light_direction))))
    colour = bilinear(texture, (hit[..., 0] + 1) / 2, (hit[..., 1] + 1) / 2) * light
    colour = np.where(inside[..., None], colour, np.asarray(background))
    return colour.reshape(size, samples, size, samples, 3).mean(axis=(1, 3))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def fidelity(size: int = 256, cells: int = 32) -> dict:
    from meshopt_cli.mesh import Material, Mesh

    texture = display_texture()
    vertices, faces, uvs = display_mesh(cells)
    eye = (0.9, 0.5, -2.4)
    light = (0.0, 0.6, -0.8)
    background = (1.0, 1.0, 1.0)
    reference = ray_cast_reference(texture, eye, size, light, background)
    renderer = Renderer(image_size=size, background_color=background, light_direction=light, texture_wrap="clamp_to_edge")
    renderer.eye = eye
    v, f = torch.from_numpy(vertices)[None], torch.from_numpy(faces)[None]
    with torch.no_grad():
        uv_image = renderer(v, f, mode="rgb", uvs=torch.from_numpy(uvs)[None], texture_image=torch.from_numpy(texture)[None])
        mesh = Mesh(vertices=vertices, faces=faces, uvs=uvs, materials=[Material(name="screen", image=texture)])
        mesh.face_material = np.zeros(len(faces), np.int32)
        results = {}
        for t in (4, 8):
            cubes = torch.from_numpy(mesh.texture_cubes(t, wrapping="clamp_to_edge"))[None]
            results[t] = renderer(v, f, cubes, mode="rgb")
    as_numpy = lambda x: x[0].permute(1, 2, 0).numpy()  # noqa: E731
    return {
        "figure": "psnr",
        "case": f"display: {len(faces)} faces, 512² texture, {size} px with AA, oblique view; reference: 8x8 rays per pixel, numpy",
        "uv_psnr_db": round(psnr(as_numpy(uv_image), reference), 2),
        "cubes_t4_psnr_db": round(psnr(as_numpy(results[4]), reference), 2),
        "cubes_t8_psnr_db": round(psnr(as_numpy(results[8]), reference), 2),
        "target": "uv >= 30 dB",
        **machine(),
    }


# ----------------------------------------------------------------------------- style step


def style_steps(iterations: int) -> dict:
    from PIL import Image

    out = {}
    with tempfile.TemporaryDirectory() as folder:
        painting = Path(folder) / "painting.png"
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (128, 128, 3)).astype(np.uint8)).save(painting)
        for mode, extra in (("uv", ["--texture", "uv", "--texture-resolution", "512"]), ("cubes", ["--texture", "cubes"])):
            done = subprocess.run(
                [sys.executable, "-m", "meshopt_cli", "style", "builtin:sphere", str(painting), "--weights", "random"]
                + ["--preset", "fast", "--device", "cpu", "-q", "--iterations", str(iterations), "--name", mode]
                + ["--out", str(Path(folder) / "out")]
                + extra,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            metrics = json.loads((Path(folder) / "out" / mode / "metrics.json").read_text())
            steps = metrics["seconds"]
            out[mode] = steps["per_step"]
    return {
        "figure": "style",
        "case": f"meshopt style builtin:sphere --preset fast --weights random, {iterations} steps, 128 px views, 2 per step",
        "uv_512_s_per_step": out["uv"],
        "cubes_t4_s_per_step": out["cubes"],
        "ratio": round(out["uv"] / out["cubes"], 3),
        "target": "ratio <= 1.3",
        **machine(),
    }


def painting(path: Path, kind: str = "sky") -> np.ndarray:
    """A procedural painting, saved to ``path``; its mean colour. ``sky``: a warm, swirling sky over
    dark blue-green ground (two dominant, nearly opposite colours); ``meadow``: mostly green, light
    yellow-green grass over dark green with a few brown furrows."""
    from PIL import Image

    h, w = 256, 320
    y, x = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    if kind == "sky":
        swirl = np.sin(12 * x + 6 * np.sin(5 * y)) * 0.5 + 0.5
        top = np.stack([0.95 - 0.1 * swirl, 0.45 + 0.25 * swirl, 0.10 + 0.1 * swirl], -1)
        bottom = np.stack([0.10 + 0.1 * swirl, 0.25 + 0.15 * swirl, 0.45 + 0.2 * swirl], -1)
        image = np.where((y < 0.55 + 0.05 * np.sin(9 * x))[..., None], top, bottom)
    elif kind == "meadow":
        swirl = np.sin(15 * x + 4 * np.sin(7 * y)) * 0.5 + 0.5
        top = np.stack([0.55 + 0.15 * swirl, 0.80 + 0.1 * swirl, 0.25 + 0.1 * swirl], -1)
        bottom = np.stack([0.10 + 0.1 * swirl, 0.40 + 0.2 * swirl, 0.12 + 0.08 * swirl], -1)
        image = np.where((y < 0.4 + 0.08 * np.sin(7 * x))[..., None], top, bottom)
        furrow = (np.sin(40 * y + 3 * x) > 0.9) & (y > 0.5)
        image = np.where(furrow[..., None], np.array([0.45, 0.3, 0.15]), image)
    else:
        raise ValueError(kind)
    image = (image * 255).astype(np.uint8)
    Image.fromarray(image).save(path)
    return image.reshape(-1, 3).mean(0) / 255


COLOUR_RUNS = (
    ("sky", "target", []),
    ("sky", "target-uv", ["--texture", "uv"]),
    ("sky", "target-gram-only", ["--colour-weight", "0"]),
    ("sky", "none-gram-only", ["--style-normalization", "none", "--colour-weight", "0"]),
    ("meadow", "target", []),
    ("meadow", "target-uv", ["--texture", "uv"]),
    ("meadow", "target-gram-only", ["--colour-weight", "0"]),
)


def colour_shift():
    """``meshopt style builtin:sphere PAINTING --weights random --preset fast``: the mean colour of the
    rendered views (metrics.json's ``colours``) before and after, and its distance to the painting's,
    for each run of :data:`COLOUR_RUNS` (printed as they finish)."""
    with tempfile.TemporaryDirectory() as folder:
        means = {kind: painting(Path(folder) / f"{kind}.png", kind) for kind in ("sky", "meadow")}
        for kind, name, extra in COLOUR_RUNS:
            mean, path, run = means[kind], Path(folder) / f"{kind}.png", f"{kind}-{name}"
            done = subprocess.run(
                [sys.executable, "-m", "meshopt_cli", "style", "builtin:sphere", str(path), "--weights", "random"]
                + ["--preset", "fast", "--device", "cpu", "-q", "--name", run, "--out", str(Path(folder) / "out")]
                + extra,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            metrics = json.loads((Path(folder) / "out" / run / "metrics.json").read_text())
            before = np.array(metrics["colours"]["before"]["mean"])
            after = np.array(metrics["colours"]["after"]["mean"])
            yield {
                "figure": "colour",
                "case": f"style builtin:sphere, procedural painting {kind!r}, --weights random --preset fast {' '.join(extra)}".strip(),
                "painting_mean": [round(float(c), 3) for c in mean],
                "render_mean_before": before.round(3).tolist(),
                "render_mean_after": after.round(3).tolist(),
                "distance_to_painting_before": round(float(np.linalg.norm(before - mean)), 3),
                "distance_to_painting_after": round(float(np.linalg.norm(after - mean)), 3),
                "first_terms": {k: round(v[0], 4) for k, v in metrics["loss_curves"].items()},
                "final_terms": {k: round(v, 4) for k, v in metrics["final_loss_terms"].items()},
                "seconds": metrics["seconds"]["total"],
                **machine(),
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figures", nargs="+", default=["speed", "psnr", "style"], choices=["speed", "psnr", "style", "colour"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--device", default="cpu", help="speed figure only: cpu or cuda")
    parser.add_argument("--small", action="store_true", help="speed figure only: a 1280-face sphere, 64² image (smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for figure in args.figures:
        if figure == "speed":
            result = speed(args.repeats, args.device, *((2, 64) if args.small else (5, 1024)))
        elif figure == "psnr":
            for cells in (32, 1):  # a finely meshed screen, and the same screen as two triangles
                print(json.dumps(fidelity(cells=cells)), flush=True)
            continue
        elif figure == "colour":
            for line in colour_shift():
                print(json.dumps(line), flush=True)
            continue
        else:
            result = style_steps(args.iterations)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
