"""Memory figures of the budget (meshopt_cli/memory.py), one JSON object per line on stdout.

* ``render`` of a 2 M-face sphere (trimesh's UV sphere saved as OBJ in the temp folder; 90 frames
  of 256², the defaults): wall and CPU seconds, peak resident memory of the child, the frames per
  batch and the estimate it chose.
* ``render --texture-size 64 --max-memory 4G`` of a 5120-face textured sphere: how it ends and how
  fast (the cubes alone would be 15 GiB).
* The peak resident memory of each command's default run on a small mesh (``builtin:teapot``;
  ``--weights random`` and 20 iterations for fit/style/dream, whose peak is reached in the first
  step).

Every child runs under ``RLIMIT_AS`` (``--address-limit``, default 10 GiB) so that no case can take
the machine down; its peak comes from ``os.wait4``'s resource usage. Run from the repository root:
``python benchmarks/memory.py [--threads 2] [--skip-big]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def run(args: list[str], limit: int, threads: int) -> dict:
    """``python -m meshopt_cli ARGS`` in a child limited to ``limit`` bytes of address space."""

    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "meshopt_cli", *args, "-q"],
        env=env,
        preexec_fn=apply,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return {
        "args": args,
        "exit": child.returncode,
        "wall_s": round(time.perf_counter() - started, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_gb": round(usage.ru_maxrss * 1024 / 1e9, 3),
        "stderr": stderr.strip()[-400:],
    }


def load() -> float:
    return round(os.getloadavg()[0], 2)


def big_sphere(folder: Path) -> Path:
    path = folder / "sphere2m.obj"
    if not path.exists():
        import trimesh

        mesh = trimesh.creation.uv_sphere(radius=1.0, count=[708, 708])  # 1,999,392 faces
        mesh.export(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--address-limit", type=float, default=10.0, help="GiB of address space per child")
    parser.add_argument("--skip-big", action="store_true", help="leave out the 2 M-face render")
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "meshopt-memory-bench")
    options = parser.parse_args()
    limit = int(options.address_limit * (1 << 30))
    folder = options.folder
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "out"

    def emit(case: str, figures: dict, **extra) -> None:
        print(json.dumps({"case": case, **figures, **extra, "load_1min": load(), "threads": options.threads}), flush=True)

    if not options.skip_big:
        mesh = big_sphere(folder)
        figures = run(["render", str(mesh), "-o", str(out), "--force"], limit, options.threads)
        metrics = json.loads((out / mesh.stem / "metrics.json").read_text()) if figures["exit"] == 0 else {}
        emit("render 2M faces, 90 frames 256px", figures, faces=1999392, memory=metrics.get("memory"))

    from test_memory import textured_sphere

    textured = textured_sphere(folder)
    figures = run(
        ["render", str(textured), "--texture-size", "64", "--max-memory", "4G", "-o", str(out), "--force"], limit, options.threads
    )
    emit("render 5120 faces --texture-size 64 --max-memory 4G", figures)

    small = "builtin:teapot"
    image = folder / "style.png"
    if not image.exists():
        from PIL import Image

        Image.effect_noise((128, 128), 64).convert("RGB").save(image)
    for args in (
        ["render", small],
        ["fit", small, "--iterations", "20"],
        ["style", small, str(image), "--weights", "random", "--iterations", "20"],
        ["dream", small, "--weights", "random", "--iterations", "20"],
    ):
        emit(f"{args[0]} default run", run([*args, "-o", str(out), "--force"], limit, options.threads))


if __name__ == "__main__":
    main()
