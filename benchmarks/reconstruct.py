"""Benchmarks of `meshopt reconstruct` (issue 13); JSON on stdout, one object per figure.

    python benchmarks/reconstruct.py steps [--batch 64] [--size 64] [--threads 2] [--device cpu] [--precision fp32|bf16|auto]
        one training step of the paper's setting (batch 64, two views each, 64 px with
        anti-aliasing): median seconds of the encoder, decoder, renderer forward, losses, backward
        and Adam parts, over --repeat steps after --warmup, on procedural objects' images.
    python benchmarks/reconstruct.py run --out DIR [--objects 300] [--preset fast|FILE.toml] [--views 24] [--classes A,B]
        the whole pipeline: the procedural dataset (DIR/data, made once), `train --preset`,
        `eval` (mean voxel IoU of the model beside the retrieval and template baselines, per class).

Every figure carries the load average (`os.getloadavg`) at its start and end: the development
machine is shared, and step times change several-fold with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def steps(args) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    from meshopt_cli.optimize.losses import flatten_loss, iou_loss
    from meshopt_cli.precision import choose, cpu_model
    from meshopt_cli.reconstruct import dataset as fmt
    from meshopt_cli.reconstruct import shapes
    from meshopt_cli.reconstruct.model import Reconstructor
    from meshopt_cli.reconstruct.train import adam, as_float_images

    device = torch.device(args.device)
    names = shapes.class_names()
    objects = [fmt.render_object(*shapes.generate(names[k % len(names)], k, subdivisions=3), args.size) for k in range(16)]
    images = np.stack(objects)  # [16, 24, 4, S, S]
    torch.manual_seed(0)
    model = Reconstructor(args.size).to(device)
    used = choose(args.precision, device)
    model.encoder_bf16 = used.bf16
    optimizer = adam(model, 1e-4, device)
    rng = np.random.default_rng(0)
    parts: dict[str, list[float]] = {
        k: [] for k in ("encoder", "decoder", "render_forward", "losses", "backward", "adam", "total")
    }

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    started_load = load()
    for step in range(args.warmup + args.repeat):
        pick, va, vb = rng.integers(0, 16, args.batch), rng.integers(0, 24, args.batch), rng.integers(0, 24, args.batch)
        a = as_float_images(images[pick, va], args.size, device)
        b = as_float_images(images[pick, vb], args.size, device)
        ea, eb = fmt.view_eyes(va, device), fmt.view_eyes(vb, device)
        sync()
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        z = model.encode(torch.cat((a, b)))
        sync()
        t1 = time.perf_counter()
        vertices = model.decoder(z)
        sync()
        t2 = time.perf_counter()
        model.renderer.eye = torch.cat((ea, ea, eb, eb))
        n = args.batch
        sil = model.renderer.render_silhouettes(torch.cat((vertices, vertices)), model.faces[None].expand(4 * n, -1, -1))
        sync()
        t3 = time.perf_counter()
        s_aa, s_ba, s_ab, s_bb = sil.split(n)
        loss = (iou_loss(s_aa, a[:, 3]) + iou_loss(s_ba, a[:, 3]) + iou_loss(s_ab, b[:, 3]) + iou_loss(s_bb, b[:, 3])) / 4
        loss = loss + 0.0 * flatten_loss(vertices, model.topology)
        sync()
        t4 = time.perf_counter()
        loss.backward()
        sync()
        t5 = time.perf_counter()
        optimizer.step()
        sync()
        t6 = time.perf_counter()
        if step >= args.warmup:
            for key, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t6 - t0)):
                parts[key].append(value)
    return {
        "benchmark": "reconstruct train step",
        "batch": args.batch,
        "images_encoded": 2 * args.batch,
        "silhouettes_rendered": 4 * args.batch,
        "image_size": args.size,
        "anti_aliasing": True,
        "threads": args.threads,
        "device": str(device),
        "cpu": cpu_model(),
        "precision": used.name,
        "steps_timed": args.repeat,
        "median_seconds": {k: round(statistics.median(v), 4) for k, v in parts.items()},
        "load_start": started_load,
        "load_end": load(),
    }


def meshopt(*words) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "meshopt_cli", *map(str, words)], env=env, capture_output=True, text=True, check=False
    )


def run(args) -> dict:
    out = Path(args.out)
    data, trained = out / "data", out / f"run-{Path(args.preset).stem}"  # a preset name or a .toml file
    record: dict = {
        "benchmark": "reconstruct pipeline",
        "preset": args.preset,
        "objects_per_class": args.objects,
        "classes": args.classes,
    }
    if not (data / "dataset.json").exists():
        start, begin = load(), time.perf_counter()
        classes = ("--classes", args.classes) if args.classes else ()
        made = meshopt(
            "reconstruct", "dataset", "--procedural", *classes, "--objects", args.objects, "-o", data, "--quiet", "--force"
        )
        if made.returncode:
            raise SystemExit(made.stderr)
        record["dataset"] = {"seconds": round(time.perf_counter() - begin, 1), "load_start": start, "load_end": load()}
    start, begin = load(), time.perf_counter()
    trainer = meshopt("reconstruct", "train", data, "-o", trained, "--preset", args.preset, "--force", "--quiet")
    if trainer.returncode:
        raise SystemExit(trainer.stderr)
    metrics = json.loads((trained / "metrics.json").read_text())
    record["train"] = {
        "seconds": round(time.perf_counter() - begin, 1),
        "steps": metrics["step"],
        "seconds_per_step": metrics["seconds_per_step"],
        "final_loss": metrics["final_loss"],
        "load_start": start,
        "load_end": load(),
    }
    start, begin = load(), time.perf_counter()
    evaluated = meshopt("reconstruct", "eval", trained, data, "--views", args.views, "--json", "--quiet")
    if evaluated.returncode:
        raise SystemExit(evaluated.stderr)
    report = json.loads(evaluated.stdout)
    record["eval"] = {
        "seconds": round(time.perf_counter() - begin, 1),
        "views": len(report["views"]),
        "load_start": start,
        "load_end": load(),
    }
    record["mean_voxel_iou"] = report["mean"]
    record["per_class"] = report["classes"]
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("steps")
    s.add_argument("--batch", type=int, default=64)
    s.add_argument("--size", type=int, default=64)
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--device", default="cpu")
    s.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16"))
    s.add_argument("--warmup", type=int, default=2)
    s.add_argument("--repeat", type=int, default=5)
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--objects", type=int, default=300)
    r.add_argument("--preset", default="fast")
    r.add_argument("--views", type=int, default=24)
    r.add_argument(
        "--classes", default="", help="procedural classes (default: the dataset preset's); e.g. car,airplane,chair,vase"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    print(json.dumps(steps(args) if args.what == "steps" else run(args)), flush=True)


if __name__ == "__main__":
    main()
