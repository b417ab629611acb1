"""The bad-input corpus against every command (render, fit, style, dream), as users meet it.

Every bad mesh or image is one line on stderr (``meshopt: error: FILE: problem``) and exit status 1,
a bad preset or TOML file is one line and exit status 2; never a traceback, nothing on stdout
without ``--json``, and nothing written: no result folder for the failed input and no staging
entries (``.NAME.*.partial``) left in ``--out``. The valid OBJ with negative (relative) indices
must give a result.

Speed (2 CPU cores, ~90 s for the file): importing torch and torchvision costs 2-4 s per process, so
the ~70 single-input runs go through a small *fork server*: one process imports meshopt once, then
forks a fresh child per run, whose stdout and stderr go to files and whose exit status is the
command's. Every child is a separate process, as ``python -m meshopt_cli`` would be. Each command
also runs the whole mesh corpus in one real ``python -m meshopt_cli ... --json`` call.

An unreadable file: root reads anything, so as root the run patches ``Path.read_bytes`` and
``open`` to refuse that one path with ``PermissionError(13, "Permission denied")``; otherwise the
file is ``chmod 0``.
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = os.geteuid() == 0
TIMEOUT = 240  # seconds for one run

FAST = {
    "render": ["--frames", "2", "--size", "16"],
    "fit": [
        "--iterations",
        "2",
        "--affine-iterations",
        "0",
        "--views",
        "4",
        "--heldout-views",
        "0",
        "--image-size",
        "16",
    ],  # and --preset fast unless a case gives its own --preset
    "style": ["--weights", "random", "--iterations", "1", "--image-size", "32", "--batch-views", "1"],
    "dream": ["--weights", "random", "--iterations", "1", "--image-size", "32", "--batch-views", "1"],
}
COMMANDS = list(FAST)
RESULT_NAME = {"render": "{}", "fit": "{}", "style": "{}-style", "dream": "{}-inception_4c"}  # OUT/<this>
STYLE_IMAGE = "style.png"  # a valid 32x32 style image in the corpus
VALID = "negative.obj"  # negative (relative) OBJ indices: valid


# ------------------------------------------------------------------------------------ the corpus


@dataclass(frozen=True)
class Item:
    file: str  # name in the corpus folder, given as is on the command line
    words: tuple  # the error line (file name removed, lowercased) says one of these


MESHES = {  # bad mesh inputs, for every command
    "empty": Item("empty.obj", ("empty",)),
    "binary-garbage": Item("garbage.obj", ("binary", "not a text", "not an obj")),
    "truncated": Item("truncated.obj", ("fewer than 3", "unparseable", "truncated", "incomplete", "out of range")),
    "missing-vertices": Item("missing-vertices.obj", ("out of range", "does not exist", "missing")),
    "nan-coordinates": Item("nan.obj", ("nan", "not finite")),
    "inf-coordinates": Item("inf.obj", ("infinite", "not finite")),
    "beyond-float32": Item("e39.obj", ("beyond the 32-bit floats",)),  # not "infinite": the file says 1e39
    "no-surface": Item("point.obj", ("no surface",)),  # every vertex at one point: blank renders, no fit
    "directory": Item("folder.obj", ("directory", "folder")),
    "unreadable": Item("locked.obj", ("permission",)),
    "wrong-extension": Item("model.xyz", ("unsupported", "file type", "extension")),
    "image-as-mesh": Item("photo.jpg", ("unsupported", "file type", "extension")),
}
MISSING = Item("does-not-exist.obj", ("no such",))  # only in the --json batch (cheap there)
IMAGES = {  # bad images, for `style MESH IMAGE` and `fit --images IMAGE --azimuth 0`
    "zero-byte-image": Item("zero.png", ("empty", "not an image")),
    "corrupt-image": Item("corrupt.png", ("not an image", "not a readable image", "cannot be read", "cannot identify")),
    "truncated-png": Item("cut.png", ("truncated", "not a readable image", "cannot be read")),
    "1x1-image": Item("tiny.png", ("too small",)),
}
USAGE = {  # bad settings, for every command: exit status 2
    "unknown-preset": (["--preset", "nope"], Item("nope", ("unknown preset",))),
    "bad-toml-config": (["--config", "bad.toml"], Item("bad.toml", ("toml",))),
    "bad-toml-preset": (["--preset", "bad.toml"], Item("bad.toml", ("toml",))),
}
SIZES = {  # sizes past their bounds or the memory budget: exit status 2 before anything runs (issue 16)
    ("render", "size-100000"): (["--size", "100000"], Item("size", ("must be in [1, 4096]",))),
    ("render", "texture-size-100000"): (["--texture-size", "100000"], Item("texture-size", ("must be in [1, 64]",))),
    ("render", "frames-10M"): (["--frames", "10000000"], Item("frames", ("must be in [1, 3600]",))),
    ("render", "gif-over-budget"): (["--size", "4096", "--max-memory", "4G"], Item("--max-memory", ("budget of 4.0g",))),
    ("render", "max-memory-not-a-size"): (["--max-memory", "lots"], Item("--max-memory", ("a size",))),
    ("render", "max-memory-below-the-program"): (["--max-memory", "100M"], Item("--max-memory", ("meshopt itself",))),
    ("fit", "image-size-100000"): (["--image-size", "100000"], Item("image-size", ("must be in [1, 1024]",))),
    ("fit", "views-over-budget"): (
        ["--image-size", "1024", "--batch-views", "64", "--max-memory", "2G"],
        Item("--max-memory", ("--batch-views",)),
    ),
    ("style", "image-size-100000"): (["--image-size", "100000"], Item("image-size", ("must be in [16, 1024]",))),
    ("style", "batch-views-100000"): (["--batch-views", "100000"], Item("batch-views", ("must be in [1, 64]",))),
    ("style", "texture-size-1000"): (["--texture-size", "1000"], Item("texture-size", ("must be in [1, 32]",))),
    ("dream", "image-size-100000"): (["--image-size", "100000"], Item("image-size", ("must be in [32, 1024]",))),
    ("dream", "activations-over-budget"): (
        ["--image-size", "1024", "--batch-views", "16", "--max-memory", "8G"],
        Item("--max-memory", ("--batch-views or --image-size",)),
    ),
}

# Finite float32 coordinates near its limit (3e38): valid, but their extent overflows float32.
HUGE = Item("huge.obj", ())

# (command, item) -> reason: cases where the program itself misbehaves (strict xfail, reported).
KNOWN_PROBLEMS: dict = {}  # (command, item) -> what still goes wrong; strict xfails, so a fix asks for removal


def build_corpus(folder: Path) -> None:
    rng = np.random.default_rng(0)
    write = lambda name, data: (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())  # noqa: E731
    write("empty.obj", b"")
    write("garbage.obj", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes() + b"\x00")
    # cut in the middle of vertex 4 (no newline at the end), and a face that refers to it
    write("truncated.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\nf 1 3 4\nv 1 1")
    write("missing-vertices.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\nf 1 2 9\n")
    write(
        VALID,
        "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\n"  # a tetrahedron, every face relative
        "f -4 -2 -3\nf -4 -3 -1\nf -4 -1 -2\nf -3 -2 -1\n",
    )
    write("nan.obj", "v 0 0 0\nv 1 nan 0\nv 0 1 0\nf 1 2 3\n")
    write("inf.obj", "v 0 0 0\nv 1 0 inf\nv 0 1 0\nf 1 2 3\n")
    write("e39.obj", "v 0 0 0\nv 1e39 0 0\nv 0 1 0\nf 1 2 3\n")
    write("point.obj", "v 0.5 0.5 0.5\nv 0.5 0.5 0.5\nv 0.5 0.5 0.5\nv 0.5 0.5 0.5\nf 1 2 3\nf 1 3 4\n")
    write(HUGE.file, "v -3e38 0 0\nv 3e38 0 0\nv 0 3e38 0\nv 0 0 3e38\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n")
    (folder / "folder.obj").mkdir()
    write("locked.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    if not ROOT:
        (folder / "locked.obj").chmod(0)
    write("model.xyz", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")  # OBJ text, wrong extension
    Image.new("RGB", (32, 32), (200, 30, 30)).save(folder / "photo.jpg")
    write("zero.png", b"")
    write("corrupt.png", rng.integers(0, 256, 2048, dtype=np.uint8).tobytes())
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / "full.png")
    data = (folder / "full.png").read_bytes()
    write("cut.png", data[: len(data) // 2])
    Image.new("RGB", (1, 1), (0, 0, 0)).save(folder / "tiny.png")
    style = np.full((32, 32, 3), 255, np.uint8)
    style[8:24, 8:24] = (200, 0, 0)
    Image.fromarray(style).save(folder / STYLE_IMAGE)
    write("bad.toml", "a = [\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    build_corpus(folder)
    yield folder
    (folder / "locked.obj").chmod(0o644)


# ------------------------------------------------------------------------------------ running meshopt

# As root: refuse to read one path (``Path.read_bytes``, ``open``/``io.open``) with a PermissionError.
DENY = r"""
import builtins, io, os, pathlib

def deny(locked):
    locked = os.path.realpath(locked)

    def is_locked(file):
        try:
            return os.path.realpath(os.fspath(file)) == locked
        except TypeError:
            return False

    read_bytes, real_open = pathlib.Path.read_bytes, builtins.open

    def refusing_read_bytes(self):
        if is_locked(self):
            raise PermissionError(13, "Permission denied")
        return read_bytes(self)

    def refusing_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and is_locked(file):
            raise PermissionError(13, "Permission denied")
        return real_open(file, *args, **kwargs)

    pathlib.Path.read_bytes = refusing_read_bytes
    builtins.open = io.open = refusing_open
"""

# python -c WRAPPER LOCKED ARGS...: meshopt ARGS with LOCKED unreadable.
WRAPPER = (
    DENY
    + r"""
import sys
deny(sys.argv[1])
sys.argv = ["meshopt", *sys.argv[2:]]
from meshopt_cli.cli import main
main()
"""
)

# Reads one JSON request per line ({"argv", "cwd", "stdout", "stderr", "deny", "timeout"}), runs
# `meshopt ARGV` in a forked child and answers its exit status (negative: killed by that signal).
SERVER = (
    DENY
    + r'''
import importlib, json, os, signal, sys, traceback

for name in ("torch", "torchvision", "meshopt_cli.cli", "meshopt_cli.mesh", "meshopt_cli.batch",
             "meshopt_cli.commands.render", "meshopt_cli.commands.fit", "meshopt_cli.commands.style",
             "meshopt_cli.commands.dream", "meshopt_cli.optimize.style",
             "meshopt_cli.optimize.dream", "meshopt_cli.optimize.targets"):
    try:
        importlib.import_module(name)
    except Exception:  # the child meets the same problem and reports it
        pass
print("ready", flush=True)

def child(job):
    """Run one command like `python -m meshopt_cli`; never returns."""
    code = 1
    try:
        os.chdir(job["cwd"])
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        signal.alarm(job["timeout"])
        if job["deny"]:
            deny(job["deny"])
        sys.argv = ["meshopt", *job["argv"]]
        from meshopt_cli.cli import main
        main()
        code = 0
    except SystemExit as exit:  # what the interpreter does with it
        if exit.code is None or isinstance(exit.code, int):
            code = exit.code or 0
        else:
            print(exit.code, file=sys.stderr)
    except BaseException:  # an uncaught exception: its traceback, status 1
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code & 0xFF)

for request in sys.stdin:
    job = json.loads(request)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        child(job)
    _, status = os.waitpid(pid, 0)
    print(json.dumps(os.waitstatus_to_exitcode(status)), flush=True)
'''
)


class ForkServer:
    def __init__(self, folder: Path):
        self.folder = folder
        self.log = folder / "server.log"
        self.calls = 0
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, cwd=folder
            )
        assert self.process.stdout.readline().strip() == "ready", self.log.read_text()

    def run(self, args, cwd: Path, deny=None) -> subprocess.CompletedProcess:
        self.calls += 1
        out, err = self.folder / f"{self.calls}.out", self.folder / f"{self.calls}.err"
        request = {
            "argv": [str(a) for a in args],
            "cwd": str(cwd),
            "stdout": str(out),
            "stderr": str(err),
            "deny": str(deny) if deny else None,
            "timeout": TIMEOUT,
        }
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, f"the fork server died: {self.log.read_text()}"
        return subprocess.CompletedProcess(args, json.loads(answer), out.read_text(), err.read_text())

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = ForkServer(tmp_path_factory.mktemp("forkserver"))
    yield started
    started.close()


def meshopt_subprocess(args, cwd: Path, deny=None) -> subprocess.CompletedProcess:
    """A real `python -m meshopt_cli ARGS` (through WRAPPER when a file must be made unreadable)."""
    head = [sys.executable, "-c", WRAPPER, str(deny)] if deny else [sys.executable, "-m", "meshopt_cli"]
    return subprocess.run([*head, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=TIMEOUT)


def command_line(command: str, positional, out: Path, extra=(), json_output=False) -> list:
    fast = list(FAST[command])
    if command == "fit" and "--preset" not in extra:
        fast = ["--preset", "fast", *fast]
    return [command, *positional, *fast, *extra, "--out", out, "-q", *(["--json"] if json_output else [])]


def mesh_positional(command: str, meshes) -> list:
    return [*meshes, STYLE_IMAGE] if command == "style" else list(meshes)


def deny_for(files, corpus: Path):
    locked = MESHES["unreadable"].file
    return corpus / locked if ROOT and locked in files else None


# ------------------------------------------------------------------------------------ checks


def error_lines(stderr: str) -> list:
    return [line for line in stderr.splitlines() if line.startswith("meshopt: error:")]


def check_error_line(line: str, item: Item) -> None:
    assert item.file in line, f"the error line does not name {item.file}: {line}"
    problem = line.replace(item.file, "").lower()
    assert any(word in problem for word in item.words), f"the error line says none of {item.words}: {line}"


def check_nothing_written(out: Path) -> None:
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert left == [], f"written to --out: {left}"


def check_one_failure(result: subprocess.CompletedProcess, item: Item, status: int, out: Path) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == status, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    check_error_line(errors[0], item)
    assert result.stdout == ""
    check_nothing_written(out)


def cases(command_items):
    return [
        pytest.param(
            command,
            item,
            id=f"{command}-{item}",
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_PROBLEMS[command, item])]
            if (command, item) in KNOWN_PROBLEMS
            else [],
        )
        for command, item in command_items
    ]


# ------------------------------------------------------------------------------------ one input per run


@pytest.mark.parametrize("command, item", cases((c, i) for c in COMMANDS for i in MESHES))
def test_bad_mesh_is_one_error_line_and_writes_nothing(server, corpus, tmp_path, command, item):
    bad = MESHES[item]
    out = tmp_path / "out"
    args = command_line(command, mesh_positional(command, [bad.file]), out)
    result = server.run(args, corpus, deny_for([bad.file], corpus))
    check_one_failure(result, bad, 1, out)


@pytest.mark.parametrize("command, item", cases((c, i) for c in ("style", "fit-images") for i in IMAGES))
def test_bad_image_is_one_error_line_and_writes_nothing(server, corpus, tmp_path, command, item):
    bad = IMAGES[item]
    out = tmp_path / "out"
    if command == "style":
        args = command_line("style", [VALID, bad.file], out)
    else:
        args = command_line("fit", ["--images", bad.file, "--azimuth", "0"], out)
    check_one_failure(server.run(args, corpus), bad, 1, out)


@pytest.mark.parametrize("command, item", cases((c, i) for c in COMMANDS for i in USAGE))
def test_bad_settings_are_a_usage_error(server, corpus, tmp_path, command, item):
    extra, bad = USAGE[item]
    out = tmp_path / "out"
    result = server.run(command_line(command, mesh_positional(command, [VALID]), out, extra), corpus)
    check_one_failure(result, bad, 2, out)


@pytest.mark.parametrize("command, item", cases(SIZES))
def test_sizes_are_refused_before_running(server, corpus, tmp_path, command, item):
    extra, bad = SIZES[command, item]
    out = tmp_path / "out"
    result = server.run(command_line(command, mesh_positional(command, [VALID]), out, extra), corpus)
    check_one_failure(result, bad, 2, out)


@pytest.mark.parametrize("command, item", cases((c, "negative-indices") for c in COMMANDS))
def test_negative_obj_indices_are_valid(server, corpus, tmp_path, command, item):
    out = tmp_path / "out"
    result = server.run(command_line(command, mesh_positional(command, [VALID]), out), corpus)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    assert error_lines(result.stderr) == [] and result.stdout == ""
    folder = out / RESULT_NAME[command].format(Path(VALID).stem)
    assert (folder / "metrics.json").is_file() and (folder / "turntable.gif").is_file()
    assert sorted(p.name for p in out.iterdir()) == [folder.name]  # and no staging left over
    assert json.loads((folder / "metrics.json").read_text())["status"] == "done"


@pytest.mark.parametrize("command, item", cases((c, "huge-coordinates") for c in COMMANDS))
def test_huge_coordinates_are_refused_in_one_line(server, corpus, tmp_path, command, item):
    """Coordinates of ±3e38 fit in float32 but their extent does not: no command could write a finite
    result (fit's output in the target's frame overflowed), so loading refuses them."""
    out = tmp_path / "out"
    result = server.run(command_line(command, mesh_positional(command, [HUGE.file]), out), corpus)
    assert "Traceback" not in result.stderr and result.stdout == "", result.stderr
    errors = error_lines(result.stderr)
    assert result.returncode == 1 and len(errors) == 1, result.stderr
    assert HUGE.file in errors[0] and "coordinates too large" in errors[0]
    check_nothing_written(out)


# ------------------------------------------------------------------------------------ all in one --json run


@pytest.mark.parametrize("command, item", cases((c, "batch-json") for c in COMMANDS))
def test_whole_corpus_in_one_json_run(corpus, tmp_path, command, item):
    bad = [*MESHES.values(), MISSING]
    files = [b.file for b in bad[:4]] + [VALID] + [b.file for b in bad[4:]]
    out = tmp_path / "out"
    result = meshopt_subprocess(
        command_line(command, mesh_positional(command, files), out, json_output=True), corpus, deny_for(files, corpus)
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr
    summaries = [json.loads(line) for line in result.stdout.splitlines()]
    assert [s["input"] for s in summaries] == files, result.stdout
    by_file = {s["input"]: s for s in summaries}
    valid = by_file.pop(VALID)
    assert valid["status"] == "done" and valid["error"] is None, valid
    errors = error_lines(result.stderr)
    assert len(errors) == len(bad), result.stderr
    for item_ in bad:
        summary = by_file[item_.file]
        assert summary["status"] == "failed", summary
        assert summary["files"] == [], summary
        check_error_line(summary["error"], item_)
        assert sum(item_.file in line for line in errors) == 1, result.stderr
        check_error_line(next(line for line in errors if item_.file in line), item_)
    name = RESULT_NAME[command].format(Path(VALID).stem)
    assert sorted(p.name for p in out.iterdir()) == [name]  # no result of a failed input, no staging
    assert valid["folder"] == str(out / name) and (out / name / "metrics.json").is_file()
