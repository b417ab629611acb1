"""meshopt_cli.batch: inputs, names, statuses, JSON lines, --skip-existing, stops and worker processes."""

import io
import json
import os

import pytest
import torch
from batch_runners import record as RUNNER
from hypothesis import given, settings
from hypothesis import strategies as st

from meshopt_cli import batch, console, stop
from meshopt_cli.batch import BatchOptions, make_jobs, read_inputs, result_status, unique_names


def run(tmp_path, inputs, capsys, **options):
    jobs = make_jobs(inputs, [batch.source_name(i) for i in inputs], tmp_path / "out")
    status = batch.run_batch(RUNNER, jobs, {"seed": 1}, BatchOptions(out=tmp_path / "out", json=True, device="cpu", **options))
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    return status, {line["input"]: line for line in lines}, captured.err, len(captured.out.splitlines())


def test_read_inputs_replaces_dash_by_the_lines_of_stdin():
    stdin = io.StringIO("a.obj\n\n  b.obj  \nbuiltin:cube\n")
    assert read_inputs(["x.obj", "-", "y.obj"], stdin) == ["x.obj", "a.obj", "b.obj", "builtin:cube", "y.obj"]


def test_unique_names_by_hand():
    assert unique_names(["a", "a", "a-2", "b", "a"]) == ["a", "a-3", "a-2", "b", "a-4"]
    assert batch.source_name("dir/bunny.obj") == "bunny" and batch.source_name("builtin:sphere:4") == "sphere"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "a-2", "a-3", "b-2", "c"]), max_size=12))
def test_unique_names_are_unique_stable_and_keep_first_names(names):
    unique = unique_names(names)
    assert len(unique) == len(names) and len(set(unique)) == len(unique)
    assert unique == unique_names(list(names))  # the same inputs give the same folders (--skip-existing)
    for name in set(names):
        assert unique[names.index(name)] == name or name in names[: names.index(name)]


def test_result_status_reads_metrics(tmp_path):
    assert result_status(tmp_path / "none") is None
    for status in ("done", "interrupted", "failed"):
        (tmp_path / status).mkdir()
        (tmp_path / status / "metrics.json").write_text(json.dumps({"status": status}))
        assert result_status(tmp_path / status) == status
    (tmp_path / "odd").mkdir()
    assert result_status(tmp_path / "odd") == "unknown"
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    assert result_status(tmp_path / "x.gif") == "done"
    # a "done" folder that lacks a file the command always writes is not complete
    assert result_status(tmp_path / "done", ("metrics.json", "turntable.gif")) == "unknown"
    (tmp_path / "done" / "turntable.gif").write_bytes(b"GIF89a")
    assert result_status(tmp_path / "done", ("metrics.json", "turntable.gif")) == "done"


def test_one_json_object_per_input_and_failures_are_one_line(tmp_path, capsys):
    status, lines, err, count = run(tmp_path, ["a", "bad", "full", "boom", "b"], capsys)
    assert status == 1 and count == 5
    assert {k: v["status"] for k, v in lines.items()} == {
        "a": "done",
        "bad": "failed",
        "full": "failed",
        "boom": "failed",
        "b": "done",
    }
    assert set(lines["a"]) == {"input", "name", "status", "folder", "files", "metrics", "seconds", "error"}
    assert lines["a"]["files"] == [str(tmp_path / "out" / "a" / "metrics.json")] and lines["a"]["error"] is None
    assert lines["bad"]["error"] == "bad: not a mesh"
    assert lines["full"]["error"].endswith("No space left on device (disk full?)")
    assert lines["boom"]["error"].startswith("boom: RuntimeError: something unexpected")
    errors = [line for line in err.splitlines() if line.startswith("meshopt: error:")]
    assert len(errors) == 3 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("meshopt: 2 done, 3 failed")


def test_skip_existing_skips_done_results_and_redoes_partial_ones(tmp_path, capsys):
    assert run(tmp_path, ["a", "b"], capsys)[0] == 0
    (tmp_path / "out" / "b" / "metrics.json").write_text(json.dumps({"status": "interrupted"}))
    status, lines, _, _ = run(tmp_path, ["a", "b", "c"], capsys)
    assert status == 1 and lines["a"]["error"].endswith("exists (use --force to overwrite, or --skip-existing to keep it)")
    status, lines, _, _ = run(tmp_path, ["a", "b", "c"], capsys, skip_existing=True)
    assert status == 0
    assert [lines[k]["status"] for k in "abc"] == ["skipped", "done", "skipped"]  # c was done by the run before


def test_a_stop_finishes_the_current_input_and_starts_no_other(tmp_path, capsys):
    status, lines, _, count = run(tmp_path, ["a", "stop", "b", "c"], capsys)
    assert status == 130 and count == 4
    assert [lines[k]["status"] for k in ("a", "stop", "b", "c")] == ["done", "interrupted", "not-started", "not-started"]
    assert json.loads((tmp_path / "out" / "stop" / "metrics.json").read_text())["status"] == "interrupted"
    assert not (tmp_path / "out" / "b").exists()
    assert stop.requested() is None  # the flag does not outlive the batch


def test_workers_run_inputs_in_other_processes_with_split_threads(tmp_path, capsys):
    inputs = ["a", "b", "c", "d", "bad"]
    status, lines, _, count = run(tmp_path, inputs, capsys, jobs=2)
    assert status == 1 and count == 5 and lines["bad"]["error"] == "bad: not a mesh"
    facts = [lines[k]["metrics"] for k in "abcd"]
    pids = {f["pid"] for f in facts}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert all(f["threads"] == max(1, torch.get_num_threads() // 2) for f in facts)
    assert all(f["payload"] == {"seed": 1} and f["device"] == "cpu" and f["progress"] is False for f in facts)


def test_a_worker_that_dies_fails_its_input_only(tmp_path, capsys):
    status, lines, err, count = run(tmp_path, ["a", "crash", "b", "c"], capsys, jobs=2)
    assert status == 1 and count == 4
    assert lines["crash"]["status"] == "failed" and "worker process died (exit code 3)" in lines["crash"]["error"]
    assert [lines[k]["status"] for k in "abc"] == ["done"] * 3


def test_worker_devices_spread_over_gpus(monkeypatch):
    assert batch.worker_devices(torch.device("cpu"), "auto", 3) == ["cpu"] * 3
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    cuda = torch.device("cuda", 0)
    assert batch.worker_devices(cuda, "auto", 3) == ["cuda:0", "cuda:1", "cuda:0"]
    assert batch.worker_devices(torch.device("cuda", 1), "cuda:1", 2) == ["cuda:1", "cuda:1"]


def test_usage_errors(tmp_path):
    jobs = make_jobs(["a"], ["a"], tmp_path)
    with pytest.raises(console.UsageError, match="--jobs must be at least 1"):
        batch.run_batch(RUNNER, jobs, None, BatchOptions(out=tmp_path, jobs=0))
    if not torch.cuda.is_available():
        with pytest.raises(console.UsageError, match="no CUDA device is available here; use --device cpu"):
            batch.run_batch(RUNNER, jobs, None, BatchOptions(out=tmp_path, device="cuda"))
    assert not (tmp_path / "a").exists()
