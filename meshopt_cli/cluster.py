"""The second runner of a command: its jobs on a Ray cluster (``--cluster ADDRESS``).

:func:`run_batch` takes what :func:`meshopt_cli.batch.run_batch` takes (the command's ``run``, its
jobs, the payload, the batch options) and what the command :attr:`reads
<meshopt_cli.command.Command.reads>`, and shares everything around the running with it
(:func:`meshopt_cli.batch.drive`: ``--skip-existing``, ``--json`` lines, stops, the exit status).
Ray is imported here only, so without ``--cluster`` nothing about Ray is loaded.

- *Where*: ``auto`` joins the cluster ``RAY_ADDRESS`` names (or the one ``ray start`` runs on this
  machine), ``local`` starts a Ray instance on 127.0.0.1 for the run, anything else goes to
  ``ray.init(address=...)``.
- *What crosses the wire* (:mod:`meshopt_cli.shipping`; no shared filesystem): the driver reads
  each job's files and puts each file into the object store once (a style image or a weights
  file shared by every job is sent once per batch); a task returns its result files as bytes,
  which the driver writes with the same atomic folder writes as a local run.
- *Scheduling*: one task per input, 1 CPU each (that many torch threads); ``--device cuda`` asks
  for ``--gpus-per-task`` GPUs (1, or a fraction to share one), and a cluster without GPUs is a
  usage error at once. Tasks reuse their worker processes, so imports, kernels and networks
  (cached per process by the commands) load once per worker, not per input.
- *Faults*: a task whose worker or node dies is run again (``--retries``, default 2); an input that
  fails for its own reasons is reported by the task as a failed summary (never retried).
- *Stops*: on SIGINT/SIGTERM the driver cancels every unfinished task (``ray.cancel``): a queued
  one never starts (``not-started``); in a running one Ray interrupts the main thread, which the
  task's stop handler turns into the stop flag, so it stops at its next step and returns its
  partial result as locally. A second signal kills the tasks (nothing they had is written).
- *Progress*: one line on stderr (done, failed, running, queued, ETA) when it is a terminal; the
  tasks running are as many as the cluster has room for (:func:`_slots`). The lines a task logs are
  printed by the driver when its result arrives.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from meshopt_cli import console, shipping, stop
from meshopt_cli.batch import BatchOptions, Context, Job, Summary, _not_started, _os_message, _summary, drive, execute

INSTALL = "pip install 'meshopt[ray]'"
LOCAL_OBJECT_STORE = 512 * 2**20  # bytes; --cluster local (Ray spills to disk beyond it)


def run_batch(
    runner: Callable,
    jobs: list[Job],
    payload,
    options: BatchOptions,
    required: tuple[str, ...] = (),
    reads: Callable | None = None,
) -> int:
    """Run ``runner`` on every job as Ray tasks on the cluster ``options.cluster``; ``reads(job,
    payload)``: the files a job reads (default: its input). Exit status, as a local batch's."""
    if options.jobs != 1:
        raise console.UsageError("--jobs is for worker processes on this machine; on a cluster every input is a task")
    if options.retries < 0:
        raise console.UsageError("--retries must not be negative")
    from meshopt_cli.command import input_of

    reads = reads or input_of
    gpus = _gpus_per_task(options)
    ray = _import_ray(options.cluster)
    _connect(ray, options.cluster)
    try:
        _check_resources(ray, options, gpus)
        return drive(
            jobs, options, required, lambda todo, report: _Batch(ray, runner, payload, options, gpus, reads).run(todo, report)
        )
    finally:
        ray.shutdown()


# ---------------------------------------------------------------- connecting


def _import_ray(address: str):
    """Ray, set up for ``address`` before it is imported (it reads its environment then)."""
    if address == "local" or _loopback(_address(address)):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray's single-machine mode: 127.0.0.1 stays
    if address != "local" and "RAY_AUTH_MODE" not in os.environ and _token_available():
        os.environ["RAY_AUTH_MODE"] = "token"  # what `ray start` does when it finds a token: join with it
    try:
        import ray
    except ImportError:
        raise console.UsageError(f"--cluster needs Ray, which is not installed: {INSTALL}") from None
    return ray


def _address(address: str) -> str | None:
    """``HOST:PORT`` of a cluster address (``auto``: ``RAY_ADDRESS``'s), None where it is not one."""
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
    if not address or "://" in address or ":" not in address:
        return None
    return address


def _loopback(address: str | None) -> bool:
    return address is not None and address.rsplit(":", 1)[0] in ("127.0.0.1", "localhost", "::1", "[::1]")


def _token_available() -> bool:
    """Whether a Ray authentication token is at hand (the environment, or ``~/.ray/auth_token``)."""
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return True
    return (Path.home() / ".ray" / "auth_token").is_file()


def _reachable(address: str, timeout: float = 5.0) -> str | None:
    """None when a TCP connection to ``HOST:PORT`` opens within ``timeout`` seconds, else why not
    (Ray itself would retry for minutes)."""
    import socket

    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except (OSError, ValueError) as problem:
        return getattr(problem, "strerror", None) or str(problem) or type(problem).__name__


def _gpus_per_task(options: BatchOptions) -> float:
    """GPUs a task asks for: 0 for ``--device cpu``, ``--gpus-per-task`` for ``cuda``, decided by the
    cluster for ``auto`` (None here)."""
    device = (options.device or "auto").strip().lower()
    if device.startswith("cuda:"):
        raise console.UsageError(f"--device {options.device} picks a GPU of this machine; on a cluster use --device cuda")
    if not 0 < options.gpus_per_task <= 64:
        raise console.UsageError(f"--gpus-per-task must be a number of GPUs above 0 (e.g. 1 or 0.5), got {options.gpus_per_task}")
    return {"cpu": 0.0, "cuda": options.gpus_per_task}.get(device)


def _connect(ray, address: str) -> None:
    import logging

    settings = dict(log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
    target = _address(address) if address != "local" else None
    why = _reachable(target) if target else None
    if why is not None:
        raise console.UsageError(
            f"--cluster {address}: nothing answers at {target} ({why}); is the cluster started (ray start --head)?"
        )
    try:
        if address == "local":
            ray.init(address="local", include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE, **settings)
        else:
            ray.init(address=address, **settings)
    except (ConnectionError, ValueError, RuntimeError) as problem:
        text = " ".join(str(problem).split())[:200]
        hint = " (start one with 'ray start --head', or use --cluster local)" if address == "auto" else ""
        raise console.UsageError(f"--cluster {address}: cannot connect: {text}{hint}") from None
    _raylet_messages_to_stderr(ray)


def _raylet_messages_to_stderr(ray) -> None:
    """Ray's driver prints the messages its raylet pushes (a worker killed, memory pressure) to
    stdout from a background thread, whenever they arrive, even after the batch's last JSON line.
    stdout is the user's (``--json`` lines, pipes), so those go to stderr. Ray has no setting for
    this; where its internals differ from what is patched here, nothing changes."""
    worker = getattr(getattr(ray, "_private", None), "worker", None)
    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "meshopt_rerouted", False):
        return

    def print_to_stderr(data, *args, **kwargs):
        if isinstance(data, dict) and data.get("pid") == "raylet":
            data = dict(data, is_err=True)
        return original(data, *args, **kwargs)

    print_to_stderr.meshopt_rerouted = True
    worker.print_to_stdstream = print_to_stderr


def _check_resources(ray, options: BatchOptions, gpus: float | None) -> None:
    """Fail at once (a usage error) where no task could ever be scheduled."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    most_gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    most_cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    if most_cpus < 1:
        raise console.UsageError(f"--cluster {options.cluster}: no node of the cluster has a CPU for a task")
    if gpus and most_gpus == 0:
        raise console.UsageError(
            f"--device {options.device}: the cluster at {options.cluster} has no GPU "
            f"({sum(n.get('CPU', 0) for n in nodes):g} CPUs); use --device cpu or auto"
        )
    if gpus and gpus > most_gpus:
        raise console.UsageError(f"--gpus-per-task {gpus:g}: no node of the cluster has that many GPUs (at most {most_gpus:g})")


# ---------------------------------------------------------------- the task


@dataclass
class TaskResult:
    """What a task sends back: the input's summary (paths the user's), its result files, its log lines."""

    summary: Summary
    returned: shipping.Returned | None = None
    lines: list[str] = field(default_factory=list)


def _task(runner: Callable, job: Job, payload, inputs: list[shipping.Input], outputs: dict, quiet: bool) -> TaskResult:
    """One input on a cluster worker: lay its files out, run it, send its results back. A stop
    (``ray.cancel`` interrupts the task's main thread like a SIGINT) sets the stop flag that the
    command's loop checks at every step, as a signal does locally."""
    import ray
    import torch

    shared = [(item, relative) for item in inputs for relative, v in item.files.items() if isinstance(v, ray.ObjectRef)]
    for (item, relative), data in zip(shared, ray.get([item.files[relative] for item, relative in shared])):
        item.files[relative] = data  # this task's copy of the Input
    resources = ray.get_runtime_context().get_assigned_resources()
    torch.set_num_threads(max(1, int(resources.get("CPU", 1))))
    device = torch.device("cuda", 0) if ray.get_gpu_ids() else torch.device("cpu")
    buffer, saved = io.StringIO(), console.stderr.file
    scratch = Path(tempfile.mkdtemp(prefix="meshopt-task-"))
    try:
        with stop.handling(), shipping.unpacked(job, inputs, outputs, scratch) as unpacked:
            console.stderr.file = buffer
            console.one_line_warnings()
            summary = execute(runner, unpacked.job, payload, Context(device=device, quiet=quiet, progress=False))
            returned = shipping.collect(unpacked)
            lines = [unpacked.undo(line) for line in buffer.getvalue().splitlines()]
            return TaskResult(unpacked.summary(summary, job.folder), returned, lines)
    finally:
        console.stderr.file = saved
        shutil.rmtree(scratch, ignore_errors=True)


# ---------------------------------------------------------------- the driver


class _Batch:
    """One batch on the cluster: ship the inputs, submit the tasks, write the results as they come."""

    def __init__(self, ray, runner, payload, options: BatchOptions, gpus: float | None, reads) -> None:
        self.ray, self.runner, self.options, self.reads = ray, runner, options, reads
        if gpus is None:  # --device auto: GPUs when the cluster has them
            gpus = options.gpus_per_task if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        self.gpus = gpus
        self.local_payload, self.payload = payload, ray.put(payload)  # the payload goes once, by reference
        self.shipped: dict[str, shipping.Input] = {}  # key -> the input with object-store references
        self.sizes: dict[str, int] = {}  # key -> bytes of the input and its sidecars
        self.users: dict[str, int] = {}  # key -> how many jobs read it (counted before anything is read)
        self.sent = self.received = 0

    def files_of(self, job: Job) -> list[str]:
        """The files ``job`` reads (``builtin:`` shapes read none)."""
        paths = self.reads(job, self.local_payload)
        return [str(p) for p in paths if p is not None and not str(p).startswith("builtin:")]

    def pack(self, job: Job) -> list[shipping.Input]:
        """The job's inputs, read once per batch: a file several jobs read goes into the object store
        once (the tasks get references); one only this job reads travels with its task."""
        packed = []
        for path in self.files_of(job):
            name = shipping.key(path)
            if name not in self.shipped:
                item = shipping.read_input(path)
                self.sizes[name] = item.size
                self.sent += item.size
                if self.users[name] > 1:
                    item.files = {relative: self.ray.put(data) for relative, data in item.files.items()}
                self.shipped[name] = item
            packed.append(self.shipped[name])
        return packed

    def run(self, todo: list[Job], report: Callable[[Summary], None]) -> None:
        ray, options = self.ray, self.options
        if not todo:
            return
        task = ray.remote(max_calls=0)(_task).options(  # max_calls 0: workers are reused, GPU tasks' too
            num_cpus=1, num_gpus=self.gpus, max_retries=options.retries, retry_exceptions=False
        )
        out = todo[0].folder.parent
        listing = sorted(os.listdir(out)) if out.is_dir() else []
        pending: dict = {}  # task reference -> job
        for job in todo:
            for path in self.files_of(job):
                self.users[shipping.key(path)] = self.users.get(shipping.key(path), 0) + 1
        for job in todo:
            started = time.perf_counter()
            try:
                inputs = self.pack(job)
                outputs = shipping.existing_outputs(job, listing)
                self.sent += sum(len(data) for data in outputs.values() if data is not None)  # a checkpoint to resume
            except OSError as problem:
                message = f"{job.input}: {_os_message(problem, job.folder)}"
                console.error(message)
                report(_summary(job, "failed", started, error=message))
                continue
            pending[task.remote(self.runner, job, self.payload, inputs, outputs, options.quiet)] = job
        resources = ray.cluster_resources()
        slots = _slots(ray, self.gpus)
        where = f"{resources.get('CPU', 0):g} CPUs" + (f", {resources.get('GPU', 0):g} GPUs" if resources.get("GPU") else "")
        console.info(
            f"{len(pending)} inputs on the cluster ({where}; {'%g GPU' % self.gpus if self.gpus else '1 CPU'} per input)",
            options.quiet,
        )
        counts = {"done": 0, "failed": 0}
        stopping = False
        with console.job_progress("cluster", len(pending), not options.quiet, "starting") as bar:
            try:
                while pending:
                    if stop.requested() and not stopping:  # queued tasks are cancelled, running ones told to stop
                        stopping = True
                        for ref in pending:
                            ray.cancel(ref, force=False)
                    # whatever ended within 0.2 s, taken together (one call, not one per result)
                    ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0.2)
                    for ref in ready:
                        summary = self.finish(pending.pop(ref), ref)
                        counts["failed" if summary.status == "failed" else "done"] += 1
                        report(summary)
                        bar.advance(1)
                    busy = min(len(pending), slots)
                    bar.stage(_progress_text(counts, busy, len(pending) - busy))
            except KeyboardInterrupt:  # a second signal: kill the tasks now, write nothing more
                for ref in pending:
                    ray.cancel(ref, force=True)
                for job in pending.values():  # after the first signal, what is left was running
                    message = "stopped before its result was saved"
                    report(_summary(job, "interrupted", time.perf_counter(), error=message))
        shared = sum(size for name, size in self.sizes.items() if self.users[name] > 1)
        count = max(1, len(todo))
        console.info(
            f"cluster: sent {_size((self.sent - shared) / count)} per input and {_size(shared)} shared by the inputs once; "
            f"received {_size(self.received / count)} per input",
            options.quiet,
        )

    def finish(self, job: Job, ref) -> Summary:
        """An ended task's summary, its lines printed and its files written."""
        ray = self.ray
        started = time.perf_counter()
        try:
            result: TaskResult = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return _not_started(job)
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as problem:
            message = f"{job.input}: its worker died {self.options.retries + 1} times (--retries {self.options.retries}; {type(problem).__name__})"
            console.error(message)
            return _summary(job, "failed", started, error=message)
        except ray.exceptions.RayError as problem:
            text = " ".join(str(problem).split())[:300]
            message = f"{job.input}: the cluster could not run it ({type(problem).__name__}: {text})"
            console.error(message)
            return _summary(job, "failed", started, error=message)
        for text in result.lines:
            console.stderr.print(text, markup=False)
        if result.returned is not None:
            self.received += result.returned.size
            try:
                shipping.write_back(job.folder.parent, result.returned)
            except (OSError, ValueError) as problem:
                message = f"{job.input}: {_os_message(problem, job.folder) if isinstance(problem, OSError) else problem}"
                console.error(message)
                return _summary(job, "failed", started, error=message)
        return result.summary


def _slots(ray, gpus: float) -> int:
    """How many tasks the cluster runs at once: per node, its CPUs (1 per task), or its GPUs over
    the GPUs per task. The progress line counts that many of the unfinished tasks as running."""
    total = 0
    for node in ray.nodes():
        if node.get("Alive"):
            resources = node["Resources"]
            fit = int(resources.get("CPU", 0))
            if gpus:
                fit = min(fit, int(resources.get("GPU", 0) / gpus + 1e-9))
            total += fit
    return max(1, total)


def _progress_text(counts: dict, running: int, queued: int) -> str:
    """The progress line's words: ``cluster: 3 done, 1 failed, 2 running, 10 queued``."""
    return f"cluster: {counts['done']} done, {counts['failed']} failed, {running} running, {queued} queued"


def _size(n: float) -> str:
    return f"{n:,.0f} bytes"
