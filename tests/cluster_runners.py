"""Stand-in runners for tests/test_cluster.py, run by Ray workers (the module's Ray instance has
this folder on its workers' PYTHONPATH). They obey the runner contract of meshopt_cli.batch and
leave a mark per attempt in ``payload["marks"]`` (the tests share a filesystem with their workers;
meshopt itself never assumes that), so that a test can count how often an input ran."""

import os
import signal
import time
from pathlib import Path

from meshopt_cli import stop
from meshopt_cli.batch import JobResult
from meshopt_cli.export import staged_folder, write_json


def _mark(payload, job, what: str) -> int:
    """Leave a mark for this attempt; returns the attempt's number (1, 2, ...)."""
    marks = Path(payload["marks"])
    marks.mkdir(parents=True, exist_ok=True)
    attempt = 1 + sum(1 for p in marks.iterdir() if p.name.startswith(f"{job.name}."))
    (marks / f"{job.name}.{attempt}.{what}").write_text(str(os.getpid()))
    return attempt


def attempts(job, payload, context):
    """``die``: its worker is killed (SIGKILL) on the first attempt; ``bad``: a bad input (one-line
    ValueError); ``slow``: runs until stopped (or 60 s), then saves a partial result; others are done at once."""
    attempt = _mark(payload, job, "start")
    if job.input == "die" and attempt == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    if job.input == "bad":
        raise ValueError("bad: not a mesh")
    status = "done"
    if job.input.startswith("slow"):
        deadline = time.monotonic() + 60
        while not stop.requested() and time.monotonic() < deadline:
            time.sleep(0.05)
        status = "interrupted" if stop.requested() else "done"
    with staged_folder(job.folder, job.force) as staging:
        (staging / "half").mkdir()
        write_json(staging / "metrics.json", {"status": status, "attempt": attempt, "pid": os.getpid()})
    return JobResult(status=status, files=[str(job.folder / "metrics.json")], metrics=None)


def main() -> None:
    """``python cluster_runners.py ADDRESS OUT MARKS INPUT...``: a batch of :func:`attempts` on the
    cluster, JSON lines on stdout (for the SIGINT test, which needs a process of its own)."""
    import sys

    from meshopt_cli import cluster
    from meshopt_cli.batch import BatchOptions, make_jobs

    address, out, marks, *inputs = sys.argv[1:]
    jobs = make_jobs(inputs, inputs, Path(out))
    options = BatchOptions(out=Path(out), json=True, device="cpu", cluster=address)
    sys.exit(cluster.run_batch(attempts, jobs, {"marks": marks}, options))


if __name__ == "__main__":
    main()
