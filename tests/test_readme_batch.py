"""The README's "Batch use" examples, run as written (bash) on a folder of small meshes."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from meshopt_cli.mesh import builtin_shape

README = Path(__file__).resolve().parents[1] / "README.md"
SCANS = {"a": "builtin:cube", "sub/b": "builtin:torus", "c d": "builtin:sphere"}  # a nested file and a space in a name


def batch_examples() -> list[str]:
    section = README.read_text().split("## Batch use", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def write_scans(folder: Path) -> None:
    for name, source in SCANS.items():
        vertices, faces = builtin_shape(source)
        path = folder / "scans" / f"{name}.obj"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "".join("v %f %f %f\n" % tuple(v) for v in vertices) + "".join("f %d %d %d\n" % tuple(f + 1) for f in faces)
        )


def run_block(block: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    return subprocess.run(["bash", "-e", "-c", block], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def gifs(folder: Path) -> list[str]:
    return sorted(p.parent.name for p in folder.glob("*/turntable.gif"))


def test_the_section_has_the_four_examples():
    blocks = batch_examples()
    assert len(blocks) == 4
    assert "xargs -0" in blocks[1] and "parallel" in blocks[2] and "jq" in blocks[3]


@pytest.fixture
def scans(tmp_path):
    if not shutil.which("meshopt", path=os.path.dirname(sys.executable)):
        pytest.skip("the meshopt console script is not installed next to this Python")
    write_scans(tmp_path)
    return tmp_path


def test_find_into_stdin_with_jobs_and_skip_existing(scans):
    block = batch_examples()[0]
    done = run_block(block, scans)
    assert done.returncode == 0, done.stderr
    assert gifs(scans / "previews") == ["a", "b", "c d"]
    assert Image.open(scans / "previews" / "a" / "turntable.gif").n_frames == 24  # the preview preset
    before = (scans / "previews" / "a" / "metrics.json").read_bytes()
    again = run_block(block, scans)
    assert again.returncode == 0 and (scans / "previews" / "a" / "metrics.json").read_bytes() == before


def test_xargs(scans):
    done = run_block(batch_examples()[1], scans)
    assert done.returncode == 0, done.stderr
    assert gifs(scans / "thumbs") == ["a", "b", "c d"]


def test_gnu_parallel(scans):
    if not shutil.which("parallel"):
        pytest.skip("GNU parallel is not installed here")
    done = run_block(batch_examples()[2], scans)
    assert done.returncode == 0, done.stderr
    assert gifs(scans / "gallery") == ["a", "b", "c d"]


def test_json_into_jq(scans):
    if not shutil.which("jq"):
        pytest.skip("jq is not installed here")
    done = run_block(batch_examples()[3], scans)
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in (scans / "ious.tsv").read_text().splitlines()]
    assert sorted(name for name, _ in rows) == ["a", "c d"]  # scans/*.obj: the shell's glob is not recursive
    assert all(0.5 < float(iou) <= 1.0 for _, iou in rows)
    assert (scans / "failed.txt").read_text() == "missing.obj\n"
