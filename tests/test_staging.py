"""Result folders appear whole or not at all: staging folders left by killed runs are removed by the
next run on that --out, and a lost race says so."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import meshopt_in_process

from meshopt_cli.export import OWNER_FILE, WrittenMeanwhile, remove_abandoned_staging, staged_folder

REPO = Path(__file__).resolve().parent.parent

KILLED_WHILE_SAVING = """
import os, signal, sys
from meshopt_cli.export import staged_folder
with staged_folder(sys.argv[1]) as staging:
    (staging / "turntable.gif").write_bytes(b"GIF89a" + bytes(100000))
    os.kill(os.getpid(), signal.SIGKILL)
"""


def staging_folders(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.endswith((".partial", ".old")))


def test_a_run_killed_while_saving_leaves_staging_that_the_next_run_removes(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_SAVING, str(out / "cube")], env=env, timeout=120)
    assert killed.returncode == -9
    left = staging_folders(out)
    assert len(left) == 1 and left[0].startswith(".cube.") and not (out / "cube").exists()
    result = meshopt_in_process("render", "builtin:cube", "--frames", "1", "--size", "16", "-o", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert staging_folders(out) == [] and (out / "cube" / "turntable.gif").is_file()
    assert not (out / "cube" / OWNER_FILE).exists()  # the owner file never reaches a result


def test_only_folders_of_dead_processes_on_this_host_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owners = {
        ".a.x1.partial": {"host": socket.gethostname(), "pid": dead.pid},  # gone: removed
        ".b.x2.partial": {"host": socket.gethostname(), "pid": os.getppid()},  # alive: kept
        ".c.x3.old": {"host": "another-machine", "pid": dead.pid},  # another host's: kept
    }
    for name, owner in owners.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / OWNER_FILE).write_text(json.dumps(owner))
    (tmp_path / ".d.x4.partial").mkdir()  # no owner file (an older meshopt): kept
    (tmp_path / "e.partial").mkdir()  # not a staging folder: kept
    assert remove_abandoned_staging([tmp_path]) == [tmp_path / ".a.x1.partial"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.x2.partial", ".c.x3.old", ".d.x4.partial", "e.partial"]


def test_the_losing_side_of_a_race_is_told_what_happened(tmp_path):
    with pytest.raises(WrittenMeanwhile, match="was written by another run while this one worked"):
        with staged_folder(tmp_path / "cube") as staging:
            (staging / "mine.txt").write_text("mine")
            (tmp_path / "cube").mkdir()  # the other run finished first
            (tmp_path / "cube" / "theirs.txt").write_text("theirs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cube"]
    assert sorted(p.name for p in (tmp_path / "cube").iterdir()) == ["theirs.txt"]
