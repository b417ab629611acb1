"""Cluster figures (issue 14): prints one JSON object per case.

- 100 meshes of 1000 faces each (benchmarks/batch.py's bumpy tori) through
  ``meshopt render DIR/*.obj --frames 8``, wall seconds of the whole command: ``--jobs 2`` and
  ``--cluster local`` (a Ray instance started for the run, on 127.0.0.1: its start-up and shutdown
  included), and Ray's start-up and shutdown alone (``ray.init`` as ``--cluster local`` calls it);
  medians of ``REPEAT`` (3) alternated runs.
- The bytes a style batch ships per input (the mesh; the style image once for the batch), as the
  driver counts them (its closing ``cluster: sent ...`` line), from a small run on ``--cluster local``.

Run with the kernels already built (any earlier render builds them), Ray installed
(``pip install 'meshopt[ray]'``) and nothing else busy:

    python benchmarks/cluster.py
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batch import torus_obj  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MESHOPT = [sys.executable, "-m", "meshopt_cli"]
REPEAT = int(os.environ.get("REPEAT", "3"))  # runs of each render case (medians reported)
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
ENV.pop("RAY_ADDRESS", None)
STARTUP = """
import json, time
t0 = time.perf_counter()
from meshopt_cli import cluster
ray = cluster._import_ray("local")
t1 = time.perf_counter()
cluster._connect(ray, "local")
t2 = time.perf_counter()
ray.shutdown()
t3 = time.perf_counter()
print(json.dumps({"import_seconds": round(t1 - t0, 2), "init_seconds": round(t2 - t1, 2), "shutdown_seconds": round(t3 - t2, 2)}))
"""


def timed(command: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=ENV)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr}")
    return seconds, result


def load() -> float:
    return round(os.getloadavg()[0], 2)


def render_case(folder: Path) -> dict:
    rng = np.random.default_rng(0)
    meshes = []
    for k in range(100):
        meshes.append(folder / f"mesh{k:03d}.obj")
        torus_obj(meshes[-1], rng)
    common = MESHOPT + ["render", *map(str, meshes), "--frames", "8", "-q", "--device", "cpu", "--force"]
    load_before = load()
    runs = {"jobs2": [], "cluster": [], "startup": []}
    for _ in range(REPEAT):  # alternated, so that a change in the machine's load touches both alike
        runs["jobs2"].append(timed(common + ["--jobs", "2", "-o", str(folder / "jobs2")])[0])
        runs["cluster"].append(timed(common + ["--cluster", "local", "-o", str(folder / "cluster")])[0])
        startup, result = timed([sys.executable, "-c", STARTUP])
        runs["startup"].append(startup)
    jobs2, cluster, startup = (statistics.median(runs[k]) for k in ("jobs2", "cluster", "startup"))
    parts = json.loads(result.stdout)
    written = [len(list((folder / name).glob("*/turntable.gif"))) for name in ("jobs2", "cluster")]
    return {
        "case": "render 100 meshes x 1000 faces, --frames 8: --jobs 2 vs --cluster local (whole command)",
        "meshes_written": written,
        "jobs2_seconds": round(jobs2, 2),
        "cluster_local_seconds": round(cluster, 2),
        "runs": {k: [round(x, 2) for x in v] for k, v in runs.items()},
        "ratio": round(cluster / jobs2, 3),  # of the medians
        "ratio_per_pair": [round(c / j, 3) for c, j in zip(runs["cluster"], runs["jobs2"])],
        "target_ratio": 1.5,
        "ray_startup_alone_seconds": parts,  # of the last run
        "ray_startup_process_seconds": round(startup, 2),  # python -c: import, ray.init, ray.shutdown
        "cpu_threads": os.cpu_count(),
        "load_average_1min": [load_before, load()],
    }


def shipped_case(folder: Path) -> dict:
    rng = np.random.default_rng(1)
    meshes = []
    for k in range(4):
        meshes.append(folder / f"style{k}.obj")
        torus_obj(meshes[-1], rng)
    image = folder / "painting.png"
    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(image)
    _, result = timed(
        MESHOPT
        + ["style", *map(str, meshes), str(image), "--weights", "random", "--iterations", "1", "--image-size", "32"]
        + ["--batch-views", "1", "--device", "cpu", "--cluster", "local", "-o", str(folder / "styled")]
    )
    line = re.search(
        r"cluster: sent ([\d,]+) bytes per input and ([\d,]+) bytes shared by the inputs once; received ([\d,]+) bytes",
        result.stderr,
    )
    sent, shared, received = (int(x.replace(",", "")) for x in line.groups())
    return {
        "case": "style 4 meshes x 1000 faces + one 256x256 PNG on --cluster local: bytes shipped",
        "sent_per_input_bytes": sent,
        "mesh_file_bytes": [m.stat().st_size for m in meshes],
        "sent_once_for_the_batch_bytes": shared,
        "style_image_bytes": image.stat().st_size,
        "received_per_input_bytes": received,
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(render_case(Path(tmp))), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(shipped_case(Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
