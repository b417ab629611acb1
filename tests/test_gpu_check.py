"""benchmarks/gpu_check.sh, the one call a lent GPU machine gets, in its CPU dry run: every step runs
and reports, so the script is ready when a GPU is."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_step(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable)
    result = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    steps = {s["step"]: s for s in summary["steps"]}
    assert summary["failed"] == []
    assert {
        "machine",
        "build",
        "tests",
        "sanitizer-dry-run",
        "renderer",
        "uv-textures",
        "reconstruct-step",
        "style-fast-auto",
        "dream-fast-auto",
    } <= set(steps)
    assert steps["renderer"]["figures"] and all(f["backend"] == "native" for f in steps["renderer"]["figures"])
    for name, network in (("style-fast-auto", "vgg"), ("dream-fast-auto", "googlenet")):
        figures = steps[name]["figures"][0]
        assert figures["seconds_per_step_mean"] > 0 and f"{network}_forward_per_step" in figures and "precision" in figures
    uv = steps["uv-textures"]["figures"][0]
    assert uv["uv_1024_median_s"] > 0 and uv["cubes_t4_median_s"] > 0 and uv["device"] == "cpu"
    assert steps["reconstruct-step"]["figures"][0]["median_seconds"]["total"] > 0
    assert (tmp_path / "tests.xml").exists()
