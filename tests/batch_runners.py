"""Stand-in runners for tests/test_batch.py: they obey the runner contract of meshopt_cli.batch
(``run(job, payload, context) -> JobResult``, one-line ValueError for a bad input) without rendering,
so that the batch machinery is tested on its own, in this process and in worker processes."""

import errno
import json
import os
from dataclasses import dataclass

from meshopt_cli import stop
from meshopt_cli.batch import JobResult


@dataclass
class Facts:
    status: str
    pid: int
    threads: int
    device: str
    payload: object
    progress: bool


def record(job, payload, context):
    """Writes OUT/NAME/metrics.json with who ran it; inputs named like a failure fail that way."""
    import torch

    if job.input == "bad":
        raise ValueError("bad: not a mesh")
    if job.input == "full":
        raise OSError(errno.ENOSPC, "No space left on device", str(job.folder / "metrics.json"))
    if job.input == "boom":
        raise RuntimeError("something\nunexpected")
    if job.input == "crash":
        os._exit(3)
    if job.input == "stop":
        stop.request("SIGTERM")
    status = "interrupted" if stop.requested() else "done"
    if job.folder.exists() and not job.force:
        raise ValueError(f"{job.folder} exists (use --force to overwrite, or --skip-existing to keep it)")
    job.folder.mkdir(parents=True, exist_ok=True)
    facts = Facts(
        status=status,
        pid=os.getpid(),
        threads=torch.get_num_threads(),
        device=str(context.device),
        payload=payload,
        progress=context.progress,
    )
    (job.folder / "metrics.json").write_text(json.dumps(facts.__dict__))
    return JobResult(status=status, files=[str(job.folder / "metrics.json")], metrics=facts)
