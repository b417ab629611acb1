"""What benchmarks/style.py and benchmarks/dream.py share: their arguments, the mesh as the commands
normalise it, and the JSON figures of a run of the textured loop (seconds per step after warm-up,
its split, peak memory). Each script only builds its network and loss."""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def parse_arguments(extra: tuple[str, ...] = ()) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mesh", default="builtin:sphere:4")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    for name in extra:
        parser.add_argument(name, default=None)
    return parser.parse_args()


def load(args, texture_size: int):
    """(device, mesh, vertices [V, 3] in the commands' normalised frame, faces [F, 3], textures [F, T, T, T, 3])."""
    import numpy as np
    import torch

    from meshopt_cli.mesh import box_normalization, load_mesh

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    mesh = load_mesh(args.mesh)
    centre, scale = box_normalization(mesh.vertices)
    vertices = torch.tensor((mesh.vertices - centre) * scale, dtype=torch.float32, device=device)
    faces = torch.tensor(np.asarray(mesh.faces, np.int64), device=device)
    textures = torch.tensor(mesh.texture_cubes(texture_size), device=device)
    return device, mesh, vertices, faces, textures


def precision_of(args, device):
    """The backbone's :class:`~meshopt_cli.precision.Precision` for ``--precision`` on ``device``."""
    from meshopt_cli import precision

    return precision.choose(args.precision, device)


def run_and_report(args, device, mesh, settings, preset_iterations: int, network_name: str, optimize, **extra) -> None:
    """Time ``optimize() -> TexturedResult`` and print one JSON object (``extra`` added to it)."""
    import torch

    from meshopt_cli import precision
    from meshopt_cli.render import get_backend

    started = time.perf_counter()
    result = optimize()
    total = time.perf_counter() - started
    w = args.warmup
    steps = result.step_seconds[w:]
    out = {
        "mesh": args.mesh,
        "faces": int(mesh.num_faces),
        "preset": args.preset,
        "device": str(device),
        "backend": get_backend(device).name,
        "threads": torch.get_num_threads(),
        "image_size": settings.image_size,
        "batch_views": settings.batch_views,
        "texture_size": settings.texture_size,
        "precision": precision_of(args, device).name,
        "cpu": precision.cpu_model(),
        "cpu_bf16_instructions": list(precision.cpu_bf16_instructions()),
        "timed_steps": len(steps),
        "seconds_per_step_mean": round(statistics.mean(steps), 4),
        "seconds_per_step_median": round(statistics.median(steps), 4),
        "renderer_forward_per_step": round(statistics.mean(result.render_seconds[w:]), 4),
        f"{network_name}_forward_per_step": round(statistics.mean(result.loss_seconds[w:]), 4),
        "backward_and_adam_per_step": round(statistics.mean(result.backward_seconds[w:]), 4),
        "total_seconds_incl_warmup": round(total, 3),
        "estimated_seconds_for_preset": round(statistics.mean(steps) * preset_iterations, 1),
        **{k: v(result) if callable(v) else v for k, v in extra.items()},
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 3),
    }
    if device.type == "cuda":
        out["peak_cuda_gb"] = round(torch.cuda.max_memory_allocated(device) / 1024**3, 3)
    json.dump(out, sys.stdout)
    print()
