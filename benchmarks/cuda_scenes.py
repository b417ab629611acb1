"""Small CUDA scenes for compute-sanitizer (memcheck, racecheck, synccheck): every kernel of the
native CUDA backend runs forward and backward on a few tiny scenes, then the script checks that the
CUDA backend was the one used. Prints one JSON line. On a machine without CUDA (``--dry-run``) the
same scenes run on the CPU so that the script itself is exercised.

    compute-sanitizer --tool memcheck python benchmarks/cuda_scenes.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dry-run", action="store_true", help="run the scenes on the CPU")
    args = parser.parse_args()
    import torch

    from meshopt_cli.mesh import builtin_shape
    from meshopt_cli.render import Renderer, get_backend, get_points_from_angles

    device = torch.device("cpu" if args.dry_run else "cuda")
    backend = get_backend(device).name
    if not args.dry_run and backend != "native":
        raise SystemExit(f"the CUDA scenes ran on the {backend} backend, not the native CUDA kernels")
    scenes = 0
    # cube sizes 2 and 4 take the texture kernel's shared-memory path, 5 its global atomics
    for shape, size, batch, T in (("builtin:cube", 15, 1, 2), ("builtin:sphere", 33, 3, 4), ("builtin:teapot", 64, 2, 5)):
        v, f = builtin_shape(shape)
        v = torch.tensor(v, device=device)
        v = (v / v.abs().max())[None].expand(batch, -1, -1).contiguous().requires_grad_(True)
        f = torch.tensor(f, dtype=torch.int64, device=device)[None].expand(batch, -1, -1).contiguous()
        textures = torch.rand(batch, f.shape[1], T, T, T, 3, device=device, requires_grad=True)
        renderer = Renderer(image_size=size)
        renderer.eye = get_points_from_angles(
            torch.full((batch,), 2.732), torch.full((batch,), 30.0), torch.linspace(0, 300, batch)
        ).to(device)
        rgb, depth, alpha = renderer(v, f, textures)
        silhouettes = renderer(v, f, mode="silhouettes")
        fixed_textures = renderer(v, f, textures.detach())[0]  # light (through the normals) only
        (rgb.square().mean() + alpha.mean() + depth.mean() + silhouettes.mean() + fixed_textures.mean()).backward()
        assert torch.isfinite(v.grad).all() and torch.isfinite(textures.grad).all()
        scenes += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    print(json.dumps({"scenes": scenes, "device": str(device), "backend": backend}))


if __name__ == "__main__":
    main()
