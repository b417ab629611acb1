"""Batch figures (issue 7): prints one JSON object per case.

- 100 meshes of 1000 faces each (tori with random bumps, written as OBJ) through
  ``meshopt render DIR/*.obj --frames 8 --jobs 2``: wall seconds of the whole command, start-up
  included, against the same command on 1 mesh (the start-up alone), and with ``--jobs 1``.
- ``meshopt --help``: wall seconds of the whole process (median of 5).

Run with the kernels already built (any earlier render builds them):

    python benchmarks/batch.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MESHOPT = [sys.executable, "-m", "meshopt_cli"]


def torus_obj(path: Path, rng: np.random.Generator, rings: int = 25, sides: int = 20) -> None:
    """A bumpy torus with ``2 * rings * sides`` (1000) triangles."""
    u, v = np.meshgrid(np.arange(rings) * 2 * np.pi / rings, np.arange(sides) * 2 * np.pi / sides, indexing="ij")
    r = 0.35 * (1 + 0.15 * rng.standard_normal(u.shape))
    points = np.stack([(1 + r * np.cos(v)) * np.cos(u), r * np.sin(v), (1 + r * np.cos(v)) * np.sin(u)], -1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(rings), np.arange(sides), indexing="ij")
    a, b = i * sides + j, ((i + 1) % rings) * sides + j
    c, d = ((i + 1) % rings) * sides + (j + 1) % sides, i * sides + (j + 1) % sides
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)]) + 1
    path.write_text("".join("v %.6f %.6f %.6f\n" % tuple(p) for p in points) + "".join("f %d %d %d\n" % tuple(f) for f in faces))


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr}")
    return seconds


def main() -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        meshes = []
        for k in range(100):
            meshes.append(folder / f"mesh{k:03d}.obj")
            torus_obj(meshes[-1], rng)
        common = ["render", "--frames", "8", "-q", "--device", "cpu"]
        one = timed(MESHOPT + common + [str(meshes[0]), "-o", str(folder / "one")])
        results = {}
        for jobs in (2, 1):
            results[jobs] = timed(
                MESHOPT + common + [str(m) for m in meshes] + ["--jobs", str(jobs), "-o", str(folder / f"out{jobs}")]
            )
        written = len(list((folder / "out2").glob("*/turntable.gif")))
        print(
            json.dumps(
                {
                    "case": "render 100 meshes x 1000 faces, --frames 8",
                    "meshes_written": written,
                    "jobs2_seconds": round(results[2], 2),
                    "jobs1_seconds": round(results[1], 2),
                    "one_mesh_seconds": round(one, 2),
                    "per_mesh_after_startup_jobs1": round((results[1] - one) / 99, 3),
                    "target_seconds": 60,
                    "cpu_threads": os.cpu_count(),
                }
            )
        )
    helps = [timed(MESHOPT + ["--help"]) for _ in range(5)]
    print(
        json.dumps(
            {
                "case": "meshopt --help",
                "median_seconds": round(statistics.median(helps), 3),
                "max_seconds": round(max(helps), 3),
                "target_seconds": 1.0,
            }
        )
    )


if __name__ == "__main__":
    main()
