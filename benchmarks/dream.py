"""Seconds per step and peak memory of `meshopt dream` (preset ``fast`` by default) on a ~5k-face mesh.

Usage: python benchmarks/dream.py [--mesh builtin:sphere:4] [--preset fast] [--steps 20] [--threads 2]
       [--device cpu] [--weights random] [--layer inception_4c]
Prints one JSON object: mean/median seconds per step (after 2 warm-up steps), the split into
renderer forward, GoogLeNet forward and backward + Adam, and peak resident memory (ru_maxrss) in GB
(peak CUDA memory too on a GPU). Random GoogLeNet weights cost the same time as ImageNet ones.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mesh", default="builtin:sphere:4")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--layer", default=None)
    args = parser.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from meshopt_cli.commands.style import normalization
    from meshopt_cli.mesh import load_mesh
    from meshopt_cli.optimize.backbones import GoogLeNetFeatures
    from meshopt_cli.optimize.dream import DreamLoss, initial_textures, resolve_settings
    from meshopt_cli.optimize.textured import optimize_textured
    from meshopt_cli.render import get_backend

    device = torch.device(args.device)
    settings = resolve_settings(args.preset, {"iterations": args.steps + args.warmup, "layer": args.layer})
    mesh = load_mesh(args.mesh)
    centre, scale = normalization(np.asarray(mesh.vertices, np.float64))
    vertices = torch.tensor((mesh.vertices - centre) * scale, dtype=torch.float32, device=device)
    faces = torch.tensor(np.asarray(mesh.faces, np.int64), device=device)
    textures = initial_textures(torch.tensor(mesh.texture_cubes(settings.texture_size), device=device), settings.init_bias)
    network = GoogLeNetFeatures(settings.layer, weights=args.weights, progress=False).to(device)
    loss = DreamLoss(network, faces, settings.length_weight)
    started = time.perf_counter()
    result = optimize_textured(vertices, faces, textures, settings.loop_settings(), loss, (0.5, 0.5, 0.5),
                               light_intensity=(settings.ambient, settings.directional),
                               random_background=settings.random_background)
    total = time.perf_counter() - started
    w = args.warmup
    steps = result.step_seconds[w:]
    out = {
        "mesh": args.mesh, "faces": int(mesh.num_faces), "preset": args.preset, "layer": settings.layer,
        "device": str(device), "backend": get_backend(device).name, "threads": torch.get_num_threads(),
        "image_size": settings.image_size, "batch_views": settings.batch_views, "texture_size": settings.texture_size,
        "timed_steps": len(steps),
        "seconds_per_step_mean": round(statistics.mean(steps), 4),
        "seconds_per_step_median": round(statistics.median(steps), 4),
        "renderer_forward_per_step": round(statistics.mean(result.render_seconds[w:]), 4),
        "googlenet_forward_per_step": round(statistics.mean(result.loss_seconds[w:]), 4),
        "backward_and_adam_per_step": round(statistics.mean(result.backward_seconds[w:]), 4),
        "total_seconds_incl_warmup": round(total, 3),
        "estimated_seconds_for_preset": round(statistics.mean(steps) * resolve_settings(args.preset).iterations, 1),
        "mean_activation_sq_first_last": [round(result.curves["activation"][0], 5), round(result.curves["activation"][-1], 5)],
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, 3),
    }
    if device.type == "cuda":
        out["peak_cuda_gb"] = round(torch.cuda.max_memory_allocated(device) / 1024 ** 3, 3)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
