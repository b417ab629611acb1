"""Renderer speed and memory: prints one JSON object per case on stdout.

Each case renders a mesh with anti-aliasing (internal size 2S) and back-propagates a realistic
loss (silhouettes: 1 - IoU against a smaller, shifted copy of the mesh; rgb: MSE against a render
of that copy with other textures), so that the backward pass sees the gradient pattern of a real
optimization mid-way: the target pokes out of the current silhouette on one side.

    python benchmarks/render.py                       # the issue's table on CPU, 2 threads
    python benchmarks/render.py --device cuda --backends native
    python benchmarks/render.py --meshes ico20480 --sizes 256 --backends native reference
    python benchmarks/render.py --isolate       # one process per case: per-case peak memory
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

from meshopt_cli.render import Renderer, get_backend

MESHES = ("ico1280", "ico20480", "ico81920", "soup")
EYE_DISTANCE = 2.2  # a unit sphere then fills about 90% of the image width


def icosphere(faces: int):
    """Unit icosphere with 20 * 4^k faces -> vertices [V, 3], faces [F, 3]."""
    import trimesh

    level = {1280: 3, 20480: 5, 81920: 6}[faces]
    mesh = trimesh.creation.icosphere(subdivisions=level, radius=1.0)
    return torch.tensor(mesh.vertices, dtype=torch.float32), torch.tensor(mesh.faces, dtype=torch.int64)


def triangle_soup(count: int = 5000, seed: int = 0):
    """Random, overlapping, differently sized triangles in a unit ball."""
    generator = torch.Generator().manual_seed(seed)
    centres = (torch.rand(count, 1, 3, generator=generator) * 2 - 1) * 0.8
    spread = torch.rand(count, 1, 1, generator=generator) * 0.3 + 0.02
    corners = centres + torch.randn(count, 3, 3, generator=generator) * spread
    return corners.reshape(-1, 3), torch.arange(count * 3).reshape(count, 3)


def load_mesh(name: str):
    return triangle_soup() if name == "soup" else icosphere(int(name[3:]))


def peak_memory_reset(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    else:
        try:  # Linux: "5" resets the peak resident set size (VmHWM) of this process
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
        except OSError:
            pass


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed(function, device: str, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def run_case(backend: str, device: str, mesh: str, size: int, mode: str, repeats: int, warmup: int) -> dict:
    os.environ["MESHOPT_BACKEND"] = backend
    vertices, faces = load_mesh(mesh)
    vertices, faces = vertices[None].to(device), faces[None].to(device)
    renderer = Renderer(image_size=size, anti_aliasing=True)
    renderer.eye = (0.0, 0.0, -EYE_DISTANCE)
    textures = torch.rand(1, faces.shape[1], 4, 4, 4, 3, device=device, generator=None)
    moved = vertices * 0.9 + torch.tensor([0.15, 0.1, 0.0], device=device)
    with torch.no_grad():
        if mode == "silhouettes":
            target = renderer(moved, faces, mode="silhouettes")
        else:
            target = renderer(moved, faces, torch.rand_like(textures), mode="rgb")
    params = vertices.clone().requires_grad_(True)
    tex = textures.clone().requires_grad_(mode == "rgb")

    def render():
        if mode == "silhouettes":
            return renderer(params, faces, mode="silhouettes")
        return renderer(params, faces, tex, mode="rgb")

    def loss_of(image):
        if mode == "silhouettes":
            intersection = (image * target).sum()
            union = (image + target - image * target).sum()
            return 1 - intersection / union
        return ((image - target) ** 2).mean()

    def forward():
        with torch.no_grad():
            render()

    def forward_backward():
        params.grad = None
        tex.grad = None
        loss_of(render()).backward()

    peak_memory_reset(device)
    forward_ms = timed(forward, device, repeats, warmup)
    backward_ms = timed(forward_backward, device, repeats, warmup)
    coverage = float(render().detach().mean() if mode == "silhouettes" else 0.0)
    return {
        "backend": get_backend(torch.device(device)).name,
        "device": device if not device.startswith("cuda") else torch.cuda.get_device_name(),
        "threads": torch.get_num_threads(),
        "mesh": mesh,
        "faces": int(faces.shape[1]),
        "image_size": size,
        "internal_size": 2 * size,
        "mode": mode if mode == "silhouettes" else "rgb_T4",
        "forward_ms": round(forward_ms, 2),
        "forward_backward_ms": round(backward_ms, 2),
        "peak_memory_mb": round(peak_memory_mb(device), 1),  # CPU: the process's peak RSS, torch included
        "silhouette_coverage": round(coverage, 3) if mode == "silhouettes" else None,
        "repeats": repeats,
        "machine": platform.processor() or platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=["native"], choices=["native", "reference"])
    parser.add_argument("--meshes", nargs="+", default=list(MESHES), choices=MESHES)
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 256, 512])
    parser.add_argument("--modes", nargs="+", default=["silhouettes", "rgb"], choices=["silhouettes", "rgb"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--isolate", action="store_true", help="run every case in a fresh process, so that peak_memory_mb is that case's own peak"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for backend in args.backends:
        for mesh in args.meshes:
            for size in args.sizes:
                for mode in args.modes:
                    if args.isolate:
                        command = [
                            sys.executable,
                            __file__,
                            "--device",
                            args.device,
                            "--threads",
                            str(args.threads),
                            "--backends",
                            backend,
                            "--meshes",
                            mesh,
                            "--sizes",
                            str(size),
                            "--modes",
                            mode,
                            "--repeats",
                            str(args.repeats),
                            "--warmup",
                            str(args.warmup),
                        ]
                        print(subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip(), flush=True)
                        continue
                    print(json.dumps(run_case(backend, args.device, mesh, size, mode, args.repeats, args.warmup)), flush=True)


if __name__ == "__main__":
    main()
