"""meshopt_cli.cluster on a real Ray instance: one per module, started on 127.0.0.1 by the README's
own `ray start --head` example (see the "Cluster" section) and stopped by its `ray stop`.

Results on the cluster equal a local batch's; inputs are shipped (the workers cannot see the
driver's files); a killed worker is retried; a bad input is not; --device cuda on a cluster
without GPUs fails at once; SIGINT stops with partial results; --skip-existing resumes; and
nothing about Ray is imported unless --cluster is given."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import meshopt_in_process as meshopt
from PIL import Image

from meshopt_cli import shipping
from meshopt_cli.batch import BatchOptions, make_jobs

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
README = ROOT / "README.md"
ADDRESS = "127.0.0.1:6379"  # the README's `ray start --head --port=6379`
RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # Ray binds 127.0.0.1 only (its single-machine mode)
    "RAY_AUTH_MODE": "disabled",  # no token written to ~/.ray by the tests
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES": str(300 * 2**20),
}
# what differs between two runs of the same input: timings, and the memory budget and program size (the
# budget is a share of the memory available when the job ran)
TIMING = {"seconds", "cpu_seconds", "memory"}


def cluster_examples() -> list[str]:
    section = README.read_text().split("## Cluster", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def example(word: str) -> str:
    (block,) = [b for b in cluster_examples() if word in b]
    return block


def environment() -> dict:
    """This Python's environment for Ray, its workers and the README's commands: the worktree's
    code (and the stand-in runners) importable, Ray on 127.0.0.1."""
    path = os.pathsep.join([str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    bin_dir = os.path.dirname(sys.executable)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return dict(env, **RAY_ENV, PYTHONPATH=path, PATH=bin_dir + os.pathsep + os.environ["PATH"])


def bash(block: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-e", "-c", block], cwd=cwd, env=environment(), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The module's Ray instance (the README's head-node example), joined by every test."""
    saved = {k: os.environ.get(k) for k in [*RAY_ENV, "RAY_ADDRESS"]}
    os.environ.update(RAY_ENV)  # for the drivers these tests run in process (Ray reads it when imported)
    os.environ.pop("RAY_ADDRESS", None)
    pytest.importorskip("ray")
    if not shutil.which("ray", path=os.path.dirname(sys.executable)):
        pytest.skip("the ray command is not installed next to this Python")
    started = bash(example("ray start --head"), tmp_path_factory.mktemp("ray"), timeout=120)
    assert started.returncode == 0, started.stderr
    try:
        yield ADDRESS
    finally:
        bash(example("ray stop"), ROOT, timeout=120)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def textured_obj(folder: Path) -> Path:
    """A cube OBJ with an MTL and a texture image in a subfolder (sidecars to ship)."""
    from meshopt_cli.mesh import builtin_shape

    vertices, faces = builtin_shape("builtin:cube")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tex").mkdir(exist_ok=True)
    Image.new("RGB", (8, 8), (200, 40, 40)).save(folder / "tex" / "red.png")
    (folder / "box.mtl").write_text("newmtl red\nKd 1 1 1\nmap_Kd tex/red.png\n")
    uvs = "vt 0 0\nvt 1 0\nvt 1 1\n"
    body = "".join("v %f %f %f\n" % tuple(v) for v in vertices) + uvs + "usemtl red\n"
    body += "".join("f %d/1 %d/2 %d/3\n" % tuple(f + 1) for f in faces)
    (folder / "box.obj").write_text("mtllib box.mtl\n" + body)
    return folder / "box.obj"


def results(folder: Path) -> dict:
    """Every file under ``folder``: bytes, metrics.json without its timings."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == "metrics.json":
                data = {k: v for k, v in json.loads(data).items() if k not in TIMING}
            found[path.relative_to(folder).as_posix()] = data
    return found


def lines(stdout: str) -> dict:
    rows = [json.loads(line) for line in stdout.splitlines()]
    return {row["input"]: {k: v for k, v in row.items() if k != "seconds"} for row in rows}


# ---------------------------------------------------------------- no Ray without --cluster


def test_help_and_local_runs_never_import_ray(tmp_path):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from meshopt_cli.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(app, ['render', 'builtin:cube', '--frames', '2', '--size', '16', '-q', '-o', sys.argv[1]])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    env = {k: v for k, v in environment().items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert (tmp_path / "out" / "cube" / "turntable.gif").is_file()


def test_without_ray_installed_a_cluster_is_one_line_naming_the_install(tmp_path):
    code = (
        "import sys; sys.modules['ray'] = None\nfrom meshopt_cli.cli import main\nsys.argv = ['meshopt', *sys.argv[1:]]\nmain()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "render", "builtin:cube", "--cluster", "local", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        env=environment(),
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "meshopt: error: --cluster needs Ray, which is not installed: pip install 'meshopt[ray]'"
    ]


# ---------------------------------------------------------------- the same results as a local batch


def test_results_on_the_cluster_equal_a_local_batch_from_inputs_the_workers_cannot_see(cluster, tmp_path, monkeypatch):
    import torch

    from meshopt_cli.optimize.backbones import VGG16Features

    inputs = tmp_path / "in"
    box = textured_obj(inputs / "meshes")
    Image.new("RGB", (40, 30), (20, 60, 220)).save(inputs / "blue.png")
    torch.save(VGG16Features(weights="random", seed=3).state_dict(), inputs / "vgg.pt")
    shutil.copytree(inputs, tmp_path / "copy")
    render = ["render", box, "builtin:torus", "--frames", "3", "--size", "24", "--sheet", "--device", "cpu", "-q", "--json"]
    style = ["style", box, "builtin:cube", inputs / "blue.png", "--weights", inputs / "vgg.pt", "--iterations", "3"]
    style += ["--image-size", "32", "--batch-views", "1", "--device", "cpu", "-q", "--json"]
    local = [meshopt(*args, "--jobs", "2", "-o", tmp_path / "local") for args in (render, style)]
    assert [r.returncode for r in local] == [0, 0], [r.stderr for r in local]

    read, shipped = shipping.read_input, []

    def read_then_delete(path):  # the driver reads an input, then nobody can find it where it was
        item = read(path)
        shipped.append((Path(path).name, sorted(item.files)))
        for relative in item.files:
            (Path(item.root) / relative).unlink()
        return item

    monkeypatch.setattr(shipping, "read_input", read_then_delete)
    remote = []
    for args in (render, style):
        shutil.rmtree(inputs)
        shutil.copytree(tmp_path / "copy", inputs)
        remote.append(meshopt(*args, "--cluster", cluster, "-o", tmp_path / "cluster"))
    assert [r.returncode for r in remote] == [0, 0], [r.stderr for r in remote]
    assert not (inputs / "meshes" / "box.obj").exists() and not (inputs / "vgg.pt").exists()
    assert results(tmp_path / "cluster") == results(tmp_path / "local")  # every file, metrics.json but its timings
    for here, there in zip(local, remote):
        assert lines(there.stdout) == {
            k: dict(v, folder=v["folder"].replace("local", "cluster"), files=[f.replace("local", "cluster") for f in v["files"]])
            for k, v in lines(here.stdout).items()
        }
    # shipped: the mesh with its MTL and texture (for each command), the style image and the weights once
    assert shipped.count(("box.obj", ["box.mtl", "box.obj", "tex/red.png"])) == 2
    assert ("blue.png", ["blue.png"]) in shipped and ("vgg.pt", ["vgg.pt"]) in shipped and len(shipped) == 4
    styled = json.loads((tmp_path / "cluster" / "box-blue" / "metrics.json").read_text())
    assert styled["mesh"]["uv_layout"] is True and styled["weights"] == str(inputs / "vgg.pt")


# ---------------------------------------------------------------- faults


def run_attempts(cluster, tmp_path, inputs, **options):
    from cluster_runners import attempts

    from meshopt_cli import cluster as runner

    out = tmp_path / "out"
    jobs = make_jobs(inputs, inputs, out)
    status = runner.run_batch(
        attempts,
        jobs,
        {"marks": str(tmp_path / "marks")},
        BatchOptions(out=out, json=True, device="cpu", cluster=cluster, **options),
    )
    return status, out


def starts(tmp_path, name: str) -> int:
    return sum(1 for p in (tmp_path / "marks").iterdir() if p.name.startswith(f"{name}."))


def test_a_killed_worker_is_retried_and_a_bad_input_is_not(cluster, tmp_path, capsys):
    status, out = run_attempts(cluster, tmp_path, ["die", "bad", "fine"])
    captured = capsys.readouterr()
    summaries = {row["input"]: row for row in map(json.loads, captured.out.splitlines())}
    assert status == 1 and {k: v["status"] for k, v in summaries.items()} == {"die": "done", "bad": "failed", "fine": "done"}
    assert starts(tmp_path, "die") == 2 and json.loads((out / "die" / "metrics.json").read_text())["attempt"] == 2
    assert starts(tmp_path, "bad") == 1 and summaries["bad"]["error"] == "bad: not a mesh"
    assert [line for line in captured.err.splitlines() if "meshopt: error" in line] == ["meshopt: error: bad: not a mesh"]
    assert sorted(p.name for p in out.iterdir()) == ["die", "fine"]  # no staging folder or half result left
    assert (out / "die" / "half").is_dir()  # empty folders come back too


def test_a_worker_that_keeps_dying_fails_its_input_after_the_retries(cluster, tmp_path, capsys):
    status, out = run_attempts(cluster, tmp_path, ["die"], retries=0)
    summary = json.loads(capsys.readouterr().out)
    assert status == 1 and summary["status"] == "failed" and starts(tmp_path, "die") == 1
    assert summary["error"].startswith("die: its worker died 1 times (--retries 0") and not out.exists()


def test_a_broken_mesh_fails_with_the_same_line_as_locally(cluster, tmp_path):
    (tmp_path / "broken.obj").write_text("this is not a mesh\n")
    args = [
        "render",
        tmp_path / "broken.obj",
        "builtin:cube",
        "--frames",
        "2",
        "--size",
        "16",
        "--json",
        "-q",
        "-o",
        tmp_path / "out",
    ]
    local, remote = meshopt(*args, "--force"), meshopt(*args, "--force", "--cluster", cluster)
    assert local.returncode == remote.returncode == 1
    assert lines(remote.stdout)[str(tmp_path / "broken.obj")] == lines(local.stdout)[str(tmp_path / "broken.obj")]
    assert remote.stderr == local.stderr and str(tmp_path / "broken.obj") in remote.stderr


def test_device_cuda_on_a_cluster_without_gpus_fails_at_once(cluster, tmp_path):
    import ray

    ray.init(address=cluster, log_to_driver=False)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
    finally:
        ray.shutdown()
    if gpus:
        pytest.skip("this cluster has GPUs")
    textured_obj(tmp_path / "scans")
    started = time.perf_counter()
    done = bash(example("--gpus-per-task"), tmp_path, timeout=120)
    assert done.returncode == 2 and time.perf_counter() - started < 60
    assert done.stderr.strip().splitlines()[-1].startswith("meshopt: error: --device cuda: the cluster at auto has no GPU")
    assert not (tmp_path / "dreams").exists()


def test_sigint_stops_running_inputs_with_partial_results_and_starts_no_other(cluster, tmp_path):
    marks, out = tmp_path / "marks", tmp_path / "out"
    inputs = ["slow1", "slow2", "later1", "later2", "later3"]
    driver = subprocess.Popen(
        [sys.executable, str(TESTS / "cluster_runners.py"), cluster, str(out), str(marks), *inputs],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    deadline = time.monotonic() + 90
    while not (marks.is_dir() and sum(1 for p in marks.iterdir() if p.name.startswith("slow")) == 2):
        assert time.monotonic() < deadline and driver.poll() is None, driver.communicate()
        time.sleep(0.1)
    driver.send_signal(signal.SIGINT)
    stdout, stderr = driver.communicate(timeout=60)
    assert driver.returncode == 130, stderr
    summaries = {row["input"]: row["status"] for row in map(json.loads, stdout.splitlines())}
    assert summaries == {"slow1": "interrupted", "slow2": "interrupted", **{k: "not-started" for k in inputs[2:]}}
    for name in ("slow1", "slow2"):
        assert json.loads((out / name / "metrics.json").read_text())["status"] == "interrupted"
    assert sorted(p.name for p in out.iterdir()) == ["slow1", "slow2"]


def test_skip_existing_resumes_and_an_existing_result_fails_as_locally(cluster, tmp_path):
    args = ["render", "builtin:cube", "builtin:sphere", "--frames", "2", "--size", "16", "--json", "-q", "-o", tmp_path / "out"]
    first = meshopt(*args, "--cluster", cluster)
    assert first.returncode == 0, first.stderr
    metrics = tmp_path / "out" / "cube" / "metrics.json"
    metrics.write_text(json.dumps(dict(json.loads(metrics.read_text()), status="interrupted")))
    again = meshopt(*args, "--cluster", cluster)  # without --force or --skip-existing: both exist
    assert again.returncode == 1
    assert {k: v["error"] for k, v in lines(again.stdout).items()} == {
        k: f"{tmp_path / 'out' / k.split(':')[1]} exists (use --force to overwrite, or --skip-existing to keep it)"
        for k in ("builtin:cube", "builtin:sphere")
    }
    resumed = meshopt(*args, "--cluster", cluster, "--skip-existing")
    assert resumed.returncode == 0, resumed.stderr
    assert {k: v["status"] for k, v in lines(resumed.stdout).items()} == {"builtin:cube": "done", "builtin:sphere": "skipped"}
    assert json.loads(metrics.read_text())["status"] == "done"


# ---------------------------------------------------------------- the README


def test_the_readme_section_has_its_examples():
    blocks = cluster_examples()
    assert any("ray start --head" in b for b in blocks) and any("ray start --address" in b for b in blocks)
    assert any("--gpus-per-task" in b for b in blocks) and any("ray stop" in b for b in blocks)


def test_the_readme_batch_example(cluster, tmp_path):
    for name in ("a", "b"):
        textured_obj(tmp_path / "scans" / name)
    Image.new("RGB", (40, 30), (20, 60, 220)).save(tmp_path / "painting.png")
    import torch

    from meshopt_cli.optimize.backbones import VGG16Features

    torch.save(VGG16Features(weights="random", seed=3).state_dict(), tmp_path / "vgg16.pth")
    done = bash(example("meshopt render"), tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "previews.jsonl").read_text().splitlines()]
    assert sorted(r["status"] for r in rows) == ["done", "done"]
    assert sorted(p.parent.name for p in (tmp_path / "styled").glob("*/stylized.obj")) == ["box-painting", "box-painting-2"]
    assert "sent" in done.stderr and "shared by the inputs once" in done.stderr


def test_progress_words():
    from meshopt_cli.cluster import _progress_text

    assert _progress_text({"done": 3, "failed": 1}, 2, 10) == "cluster: 3 done, 1 failed, 2 running, 10 queued"


def test_cluster_option_defaults_to_ray_address_and_none_is_this_machine(monkeypatch):
    from meshopt_cli import cli, console

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cli._cluster(None) is None and cli._cluster("local") == "local" and cli._cluster("none") is None
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert cli._cluster(None) == "auto" and cli._cluster("none") is None and cli._cluster("h:1") == "h:1"
    with pytest.raises(console.UsageError, match="--cluster needs an address"):
        cli._cluster(" ")


def test_cluster_usage_errors_come_before_ray(tmp_path):
    for args, message in [
        (["--jobs", "2"], "--jobs is for worker processes on this machine"),
        (["--device", "cuda:1"], "--device cuda:1 picks a GPU of this machine; on a cluster use --device cuda"),
        (["--gpus-per-task", "0"], "--gpus-per-task must be a number of GPUs above 0"),
    ]:
        done = meshopt("render", "builtin:cube", "--cluster", "local", "-o", tmp_path, *args)
        assert done.returncode == 2 and message in done.stderr, done.stderr


def test_messages_the_raylet_pushes_go_to_stderr_not_to_the_json_lines(capsys):
    ray = pytest.importorskip("ray")
    from meshopt_cli import cluster as runner

    runner._raylet_messages_to_stderr(ray)
    wrapped = ray._private.worker.print_to_stdstream
    runner._raylet_messages_to_stderr(ray)
    assert ray._private.worker.print_to_stdstream is wrapped  # joining twice wraps once
    ray._private.worker.print_to_stdstream(
        {"lines": ["a worker was killed"], "pid": "raylet", "is_err": False}, ignore_prefix=False
    )
    ray._private.worker.print_to_stdstream({"lines": ["a task printed"], "pid": 7, "is_err": False}, ignore_prefix=False)
    captured = capsys.readouterr()
    assert "a worker was killed" in captured.err and "a worker was killed" not in captured.out
    assert "a task printed" in captured.out  # what --log-to-driver would show stays where Ray puts it
