"""Mesh loading and turntable figures (issue 3): prints one JSON object per case.

- load_obj of a 1 M-face OBJ (plain v/f, and v/vt/vn records), in a fresh process: seconds for
  the load itself (torch already imported) and the process's peak resident memory.
- `meshopt render builtin:teapot` (90 frames, 256^2, anti-aliased), wall seconds including
  start-up, with the kernels already built.

    python benchmarks/mesh_io.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LOAD = """
import json, resource, sys, time
import torch
from meshopt_cli.mesh import load_obj
start = time.perf_counter()
v, f = load_obj(sys.argv[1])
seconds = time.perf_counter() - start
print(json.dumps({"faces": len(f), "vertices": len(v), "load_s": round(seconds, 3),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


def write_million_face_objs(folder: Path) -> dict[str, Path]:
    from meshopt_cli.mesh.builtins import icosphere

    vertices, faces = icosphere(8)
    faces = faces[:1_000_000] + 1
    v_text = "".join("v %.9g %.9g %.9g\n" % tuple(row) for row in vertices)
    plain = folder / "plain.obj"
    plain.write_text(v_text + ("f %d %d %d\n" * len(faces)) % tuple(faces.ravel()))
    uv = (vertices[:, :2] + 1) / 2
    vt_text = ("vt %.6f %.6f\n" * len(uv)) % tuple(uv.ravel())
    vn_text = ("vn %.6f %.6f %.6f\n" * len(vertices)) % tuple(vertices.ravel())
    records = ("f %d/%d/%d %d/%d/%d %d/%d/%d\n" * len(faces)) % tuple(np.repeat(faces.ravel(), 3))
    full = folder / "uv_normals.obj"
    full.write_text(v_text + vt_text + vn_text + records)
    return {"plain v/f": plain, "v/vt/vn": full}


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        for kind, path in write_million_face_objs(Path(folder)).items():
            result = subprocess.run([sys.executable, "-c", LOAD, str(path)], capture_output=True, text=True, check=True)
            record = json.loads(result.stdout)
            record.update(case="load_obj 1M faces", records=kind, file_mb=round(path.stat().st_size / 2**20))
            print(json.dumps(record), flush=True)
        command = [sys.executable, "-m", "meshopt_cli", "render", "builtin:teapot", "-o", str(Path(folder) / "t.gif"), "-q"]
        subprocess.run(command + ["--frames", "1"], check=True)  # make sure the kernels are built
        start = time.perf_counter()
        subprocess.run(command + ["--force"], check=True)
        print(
            json.dumps(
                {
                    "case": "meshopt render builtin:teapot",
                    "frames": 90,
                    "size": 256,
                    "wall_s": round(time.perf_counter() - start, 2),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
