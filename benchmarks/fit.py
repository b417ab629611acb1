"""`meshopt fit` figures: prints one JSON object per target on stdout.

Each target is fitted by the real command (`python -m meshopt_cli fit TARGET --json`) in its own
process, with the default preset unless told otherwise, on 2 CPU threads (OMP_NUM_THREADS), and the
wall time is measured around that process (start-up, target rendering, fit, evaluation and writing
the outputs included). Targets: the cube, an ellipsoid, a star-shaped blob (both defined below and
written as OBJ files) and the teapot.

    python benchmarks/fit.py                          # the issue's table
    python benchmarks/fit.py --targets teapot --preset fast --keep /tmp/fits
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGETS = ("cube", "ellipsoid", "blob", "teapot")


def ellipsoid():
    """Radii 1, 0.6 and 0.4 along x, y, z (icosphere with 2562 vertices)."""
    from meshopt_cli.mesh import builtin_shape

    v, f = builtin_shape("builtin:sphere:4")
    return v * np.array([1.0, 0.6, 0.4], np.float32), f


def blob():
    """Star-shaped (so genus 0): radius 0.7 plus six smooth lumps in fixed random directions,
    r(d) = 0.7 + Σ_k 0.35 exp(-(1 - d·c_k) / 0.12), on an icosphere with 2562 vertices."""
    from meshopt_cli.mesh import builtin_shape

    v, f = builtin_shape("builtin:sphere:4")
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(6, 3))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    radius = 0.7 + (0.35 * np.exp(-(1.0 - v @ centres.T) / 0.12)).sum(1)
    return (v * radius[:, None]).astype(np.float32), f


def target_source(name: str, folder: Path) -> str:
    if name in ("cube", "teapot"):
        return f"builtin:{name}"
    from meshopt_cli.mesh import save_obj

    vertices, faces = {"ellipsoid": ellipsoid, "blob": blob}[name]()
    path = folder / f"{name}.obj"
    save_obj(path, vertices, faces)
    return str(path)


def run_one(name: str, source: str, out: Path, args) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    command = [
        sys.executable,
        "-m",
        "meshopt_cli",
        "fit",
        source,
        "--preset",
        args.preset,
        "--device",
        args.device,
        "-o",
        str(out),
        "--name",
        name,
        "--force",
        "--json",
        "--quiet",
        *args.extra,
    ]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        return {
            "target": name,
            "error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}",
        }
    metrics = json.loads((out / name / "metrics.json").read_text())
    return {
        "target": name,
        "views": metrics["views"]["train"],
        "heldout_views": metrics["views"]["heldout"],
        "iterations": metrics["iterations"]["affine"] + metrics["iterations"]["vertices"],
        "heldout_iou": round(metrics["iou"]["heldout"], 4),
        "train_iou": round(metrics["iou"]["train"], 4),
        "voxel_iou": None if metrics["voxel_iou"] is None else round(metrics["voxel_iou"], 4),
        "voxel_iou_note": metrics["voxel_iou_note"],
        "carved_faces": metrics["template"]["carved_faces"],
        "relaxed_vertices": metrics["template"]["relaxed_vertices"],
        "seconds": round(seconds, 1),
        "fit_seconds": round(metrics["seconds"]["fit"], 1),
        "cpu_seconds": round(metrics["cpu_seconds"], 1),
        "threads": metrics["threads"],
        "device": metrics["device"],
        "backend": metrics["backend"],
        "preset": args.preset,
        "image_size": metrics["settings"]["image_size"],
        "template": metrics["template"]["source"],
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "machine": platform.processor() or platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="write the results here (default: a temporary folder)")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more flags for meshopt fit")
    args = parser.parse_args()
    args.extra = [a for a in args.extra if a != "--"]
    with tempfile.TemporaryDirectory() as scratch:
        out = args.keep or Path(scratch) / "out"
        for name in args.targets:
            source = target_source(name, Path(scratch))
            print(json.dumps(run_one(name, source, out, args)), flush=True)


if __name__ == "__main__":
    main()
