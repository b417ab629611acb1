"""Running one command over many inputs: names, outputs, JSON lines, worker processes, stops.

Every command (``render``, ``fit``, ``style``, ``dream``) is split the same way:

- in the calling process it turns its arguments into :class:`Job` s (one per input, each with a
  result folder ``OUT/NAME``) and a picklable ``payload`` (resolved settings and options);
  usage errors are raised there, before anything runs;
- a *runner* ``run(job, payload, context) -> JobResult`` (a module-level function, so that worker
  processes can import it) does one input and writes its result whole or not at all. It raises
  ``ValueError`` (or ``OSError``) with one line for a bad input.

:func:`run_batch` then runs the jobs in this process, or with ``jobs > 1`` in that many worker
processes (spawned once each, so imports, kernels and networks load once per worker, not per
input), spread over the visible GPUs or splitting the CPU threads evenly. Each input gives one
:class:`Summary` (``--json``: one JSON object per line on stdout, and nothing else there). One bad input is
reported and skipped; the exit status is 0 (all done or skipped), 1 (some input failed), 130
(stopped by SIGINT/SIGTERM: running inputs finish their step and save a partial result, inputs
not started are listed as such).

That is the local runner; :func:`meshopt_cli.cluster.run_batch` runs the same jobs as Ray tasks.
Both share :func:`drive` (skip-existing, JSON lines, stops, exit status) and :func:`execute`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import traceback
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from meshopt_cli import console, stop

STATUSES = ("done", "interrupted", "failed", "skipped", "not-started")


@dataclass
class Job:
    """One input of a command."""

    index: int  # position in the call's inputs
    input: str  # as the user gave it (path, builtin:NAME, or several image paths joined by ", ")
    name: str  # result folder name
    folder: Path  # where the result goes (OUT/NAME, or a file for `render -o x.gif`)
    force: bool = False  # an existing result may be replaced (--force, or a partial one with --skip-existing)
    extra: dict = field(default_factory=dict)  # command-specific (style: the image; fit: the image list)


@dataclass
class JobResult:
    """What a runner returns for one input: how it ended, the files it wrote, the command's final
    figures (a dataclass of its own, or None) and, for a failure it saved a state of, the error line."""

    status: str = "done"  # done, interrupted or failed
    files: list[str] = field(default_factory=list)
    metrics: Any = None
    error: str | None = None


@dataclass
class Summary:
    """One input's outcome, as ``--json`` prints it (:meth:`to_json`)."""

    index: int  # position in the call's inputs (not printed)
    input: str
    name: str
    status: str
    folder: str
    files: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    def to_json(self) -> dict:
        values = dataclasses.asdict(self)
        del values["index"]
        return values


@dataclass
class BatchOptions:
    """The options every command shares."""

    out: Path = Path("meshopt-out")
    force: bool = False
    skip_existing: bool = False
    json: bool = False
    quiet: bool = False
    jobs: int = 1
    device: str = "auto"
    max_memory: int | None = None  # --max-memory in bytes, per process; None: a share of the available memory
    cluster: str | None = None  # a Ray address (auto, local, HOST:PORT, ray://...): run on meshopt_cli.cluster
    retries: int = 2  # cluster: runs of a task whose worker or node died
    gpus_per_task: float = 1.0  # cluster: GPUs each input asks for with --device cuda (a fraction shares them)


@dataclass
class Context:
    """What a runner gets besides its job and payload: where and how loudly to run, and the peak
    resident memory its process may reach (bytes; :mod:`meshopt_cli.memory`)."""

    device: object  # torch.device
    quiet: bool = False
    progress: bool = True  # rich progress bars (off in worker processes)
    memory_budget: int | None = None  # None: memory.default_budget() when asked


# ---------------------------------------------------------------- inputs and names


def read_inputs(arguments: list[str], stdin=None) -> list[str]:
    """``arguments`` with every ``-`` replaced by the non-empty lines of standard input."""
    out: list[str] = []
    for argument in arguments:
        if argument == "-":
            stream = stdin if stdin is not None else sys.stdin
            out.extend(line.strip() for line in stream if line.strip())
        else:
            out.append(argument)
    return out


def source_name(source: str) -> str:
    """A folder name for an input: the file's stem, or NAME of ``builtin:NAME[:ARGS]``."""
    if source.startswith("builtin:"):
        return source.split(":")[1] or "mesh"
    return Path(source).stem or "mesh"


def unique_names(names: list[str]) -> list[str]:
    """Repeated names get ``-2``, ``-3``, ... in order, never one another input has already
    (deterministic, so that ``--skip-existing`` finds the same folders again)."""
    reserved, seen, unique = set(names), set(), []
    for name in names:
        candidate, k = name, 1
        while candidate in seen or (k > 1 and candidate in reserved):
            k += 1
            candidate = f"{name}-{k}"
        seen.add(candidate)
        unique.append(candidate)
    return unique


def check_folder_name(name: str | None) -> None:
    if name is not None and (not name or "/" in name or name in (".", "..")):
        raise console.UsageError(f"--name must be a plain folder name, got {name!r}")


def make_jobs(inputs: list[str], names: list[str], out: Path, extras: list[dict] | None = None) -> list[Job]:
    """One :class:`Job` per input, folders ``out/<unique name>``."""
    extras = extras or [{} for _ in inputs]
    return [
        Job(index=k, input=i, name=n, folder=out / n, extra=e)
        for k, (i, n, e) in enumerate(zip(inputs, unique_names(names), extras))
    ]


def result_status(folder: Path, required: tuple[str, ...] = ()) -> str | None:
    """``"done"``, ``"interrupted"``/``"failed"`` (a partial result) or ``"unknown"`` for an existing
    result (its metrics.json's status; a plain file counts as done; a folder that lacks one of the
    ``required`` files is ``"unknown"``), None when there is none."""
    if not folder.exists():
        return None
    if folder.is_file():
        return "done"
    try:
        status = json.loads((folder / "metrics.json").read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        return "unknown"
    if any(not (folder / name).exists() for name in required):
        return "unknown"
    return status if status in STATUSES else "unknown"


def check_output_folder(out: Path) -> None:
    """A usage error, before anything runs, when ``out`` cannot hold results: something that is not a
    folder stands on its path, or its nearest existing folder may not be written to."""
    for folder in [out, *out.parents]:
        if folder.exists():
            if not folder.is_dir():
                raise console.UsageError(f"--out {out}: {folder} is not a folder")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise console.UsageError(f"--out {out}: {folder} is not writable (choose another --out)")
            return


# ---------------------------------------------------------------- running


def _summary(job: Job, status: str, started: float, result: JobResult | None = None, error: str | None = None) -> Summary:
    metrics = result.metrics if result is not None else None
    return Summary(
        index=job.index,
        input=job.input,
        name=job.name,
        status=status,
        folder=str(job.folder),
        files=list(result.files) if result is not None else [],
        metrics=dataclasses.asdict(metrics) if metrics is not None else {},
        seconds=round(time.perf_counter() - started, 3),
        error=error if error is not None else (result.error if result is not None else None),
    )


def _os_message(problem: OSError, folder: Path) -> str:
    """One line for a failed read or write (a full disk, a folder we may not write to)."""
    where = problem.filename or folder
    return f"{where}: {problem.strerror or problem}" + (" (disk full?)" if getattr(problem, "errno", None) == 28 else "")


def execute(runner: Callable, job: Job, payload, context: Context) -> Summary:
    """Run one job; every failure becomes a summary with an error line (printed here, on stderr)."""
    started = time.perf_counter()
    try:
        outcome = runner(job, payload, context)
    except ValueError as problem:  # MeshError, TargetError, StyleImageError, WeightsError, OutputExists ...
        message = str(problem)
        if job.input not in message and str(job.folder) not in message:  # every line names its input
            message = f"{job.input}: {message}"
    except OSError as problem:
        message = _os_message(problem, job.folder)
    except KeyboardInterrupt:
        stop.request()
        console.error(f"{job.input}: stopped before its result was saved")
        return _summary(job, "interrupted", started, error="stopped before its result was saved")
    except Exception as problem:  # noqa: BLE001 - a bug or a device error must not end the other inputs
        if os.environ.get("MESHOPT_DEBUG"):
            traceback.print_exc()
        text = " ".join(str(problem).split()) or type(problem).__name__
        message = f"{job.input}: {type(problem).__name__}: {text[:300]} (MESHOPT_DEBUG=1 shows the traceback)"
    else:
        if outcome.status == "failed" and outcome.error:
            console.error(outcome.error)
        return _summary(job, outcome.status, started, outcome)
    console.error(message)
    return _summary(job, "failed", started, error=message)


@contextmanager
def _stdout_for_json(enabled: bool):
    """With ``--json``, stdout carries only the JSON lines: anything else written to it (by us, a
    library or a worker process, through Python or file descriptor 1) goes to stderr. Yields the
    stream for the JSON lines."""
    if not enabled:
        yield sys.stdout
        return
    try:
        real = sys.stdout.fileno() == 1
    except (AttributeError, ValueError, OSError):  # a replaced sys.stdout (tests' CliRunner)
        real = False
    if not real:
        target = sys.stdout
        with redirect_stdout(sys.stderr):
            yield target
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    stream = os.fdopen(os.dup(saved), "w", encoding="utf-8", buffering=1)
    try:
        yield stream
    finally:
        stream.close()
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def run_batch(
    runner: Callable,
    jobs: list[Job],
    payload,
    options: BatchOptions,
    required: tuple[str, ...] = (),
    per_worker: int | None = None,
) -> int:
    """Run ``runner`` on every job in this process or in ``options.jobs`` local worker processes; see
    the module docstring. ``required``: the files of a complete result (for ``--skip-existing``);
    ``per_worker``: bytes one worker process needs at least (its program and the command's smallest
    job; :func:`meshopt_cli.memory.cap_jobs` caps ``--jobs`` by it). Exit status.
    (:func:`meshopt_cli.cluster.run_batch` is the other runner, on a Ray cluster.)"""
    from meshopt_cli import memory
    from meshopt_cli.devices import resolve_device

    if options.jobs < 1:
        raise console.UsageError("--jobs must be at least 1")
    device = resolve_device(options.device)  # a CUDA request without CUDA is a usage error here

    def run(todo: list[Job], report: Callable[[Summary], None]) -> None:
        workers = min(options.jobs, len(todo))
        if workers > 1:
            gpus = 0
            if device.type == "cuda":
                import torch

                gpus = torch.cuda.device_count()
            workers, warning = memory.cap_jobs(
                options.jobs, len(todo), options.max_memory, per_worker or memory.MINIMUM_BUDGET, gpus
            )
            if warning:
                console.warn(warning)
        budget = options.max_memory or memory.default_budget(workers)
        if workers > 1:
            _run_in_workers(runner, todo, payload, options, device, workers, report, budget)
            return
        context = Context(device=device, quiet=options.quiet, progress=not options.quiet, memory_budget=budget)
        for job in todo:
            if stop.requested():
                report(_not_started(job))
                continue
            report(execute(runner, job, payload, context))

    return drive(jobs, options, required, run)


def drive(jobs: list[Job], options: BatchOptions, required: tuple[str, ...], run: Callable) -> int:
    """What every runner shares around its way of running jobs, ``run(todo, report)``: the output
    folder check, ``--skip-existing`` and ``--force``, stop handling (SIGINT/SIGTERM), stdout kept for
    the ``--json`` lines (``report(summary)`` prints one), the closing count line and the exit status
    (0, 1 when an input failed, 130 when stopped). ``run`` must report every job of ``todo`` once."""
    from meshopt_cli.export import remove_abandoned_staging

    check_output_folder(jobs[0].folder.parent if jobs else options.out)
    remove_abandoned_staging(job.folder.parent for job in jobs)  # left by runs killed while saving
    started = time.perf_counter()
    summaries: dict[int, Summary] = {}
    with stop.handling(), _stdout_for_json(options.json) as json_stream:

        def report(summary: Summary) -> None:
            summaries[summary.index] = summary
            if options.json:
                json_stream.write(json.dumps(summary.to_json()) + "\n")
                json_stream.flush()

        todo = []
        for job in jobs:
            status = result_status(job.folder, required)
            if status is not None and options.skip_existing and status == "done":
                console.info(f"{job.name}: skipped, {job.folder} is done (--skip-existing)", options.quiet)
                report(_summary(job, "skipped", time.perf_counter()))
                continue
            job.force = options.force or (status is not None and options.skip_existing)
            todo.append(job)
        run(todo, report)
        stopped = stop.requested()
    counts = {s: sum(1 for v in summaries.values() if v.status == s) for s in STATUSES}
    if len(jobs) > 1:
        text = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        console.info(f"{text} ({time.perf_counter() - started:.1f} s)", options.quiet)
    if stopped or counts["interrupted"] or counts["not-started"]:
        return 130
    return 1 if counts["failed"] else 0


def _not_started(job: Job) -> Summary:
    return _summary(job, "not-started", time.perf_counter(), error="stopped before this input started")


# ---------------------------------------------------------------- worker processes


def worker_devices(device, spec: str, workers: int) -> list[str]:
    """The device of each worker: round robin over the visible GPUs for ``auto``/``cuda``, the one
    asked for with ``cuda:N``, else the CPU."""
    import torch

    if device.type != "cuda":
        return ["cpu"] * workers
    if ":" in spec:
        return [str(device)] * workers
    count = torch.cuda.device_count()
    return [f"cuda:{k % count}" for k in range(workers)]


def _worker_main(
    worker: int, device: str, threads: int, runner: Callable, payload, quiet: bool, budget: int, tasks, connection
) -> None:
    """A worker process: take jobs until none are left or a stop is requested. Messages go through
    its own pipe, written synchronously, so the parent knows what it ran even if it dies."""
    stop.install(hard_second=False)
    console.one_line_warnings()
    import torch

    torch.set_num_threads(threads)
    context = Context(device=torch.device(device), quiet=quiet, progress=False, memory_budget=budget)
    while not stop.requested():
        job = tasks.get()
        if job is None:
            break
        connection.send(("start", job.index))
        connection.send(("done", execute(runner, job, payload, context)))
    connection.close()


def _run_in_workers(
    runner: Callable,
    jobs: list[Job],
    payload,
    options: BatchOptions,
    device,
    workers: int,
    report: Callable[[Summary], None],
    budget: int,
) -> None:
    import multiprocessing
    import signal
    from multiprocessing.connection import wait

    import torch

    context = multiprocessing.get_context("spawn")  # fork is unsafe once torch (OpenMP, CUDA) is loaded
    tasks = context.Queue()
    tasks.cancel_join_thread()  # after a stop, jobs no worker took may stay queued: do not wait on them at exit
    for job in jobs:
        tasks.put(job)
    for _ in range(workers):
        tasks.put(None)
    devices = worker_devices(device, options.device, workers)
    threads = max(1, torch.get_num_threads() // workers)
    console.info(
        f"{len(jobs)} inputs on {workers} workers ({', '.join(sorted(set(devices)))}, {threads} thread(s) each)", options.quiet
    )
    pipes = [context.Pipe(duplex=False) for _ in range(workers)]
    processes = [
        context.Process(
            target=_worker_main,
            daemon=True,
            name=f"meshopt-worker-{k}",
            args=(k, devices[k], threads, runner, payload, options.quiet, budget, tasks, pipes[k][1]),
        )
        for k in range(workers)
    ]
    for process, (_, sender) in zip(processes, pipes):
        process.start()
        sender.close()  # the parent only reads; the pipe reports EOF when the worker ends
    by_index = {job.index: job for job in jobs}
    readers = {pipes[k][0]: k for k in range(workers)}
    running: dict[int, int] = {}  # worker -> job index
    finished: set[int] = set()
    forwarded = False

    def fail(index: int, message: str) -> None:
        job = by_index[index]
        console.error(message)
        report(_summary(job, "failed", time.perf_counter(), error=message))
        finished.add(index)

    try:
        while readers:
            if stop.requested() and not forwarded:
                forwarded = True
                for process in processes:
                    if process.is_alive():
                        os.kill(process.pid, signal.SIGTERM)
            for reader in wait(list(readers), timeout=0.2):
                worker = readers[reader]
                try:
                    kind, data = reader.recv()
                except EOFError:  # the worker ended; if it was running a job, it died doing it
                    del readers[reader]
                    processes[worker].join(timeout=5)
                    if worker in running:
                        index = running.pop(worker)
                        fail(index, f"{by_index[index].input}: the worker process died (exit code {processes[worker].exitcode})")
                    continue
                if kind == "start":
                    running[worker] = data
                else:
                    running.pop(worker, None)
                    finished.add(data.index)
                    report(data)
    except KeyboardInterrupt:  # a second signal: stop the workers now
        for process in processes:
            process.kill()
        for index in running.values():
            report(_summary(by_index[index], "interrupted", time.perf_counter(), error="stopped before its result was saved"))
            finished.add(index)
    for process in processes:
        process.join(timeout=5)
    for job in jobs:
        if job.index not in finished:
            if stop.requested():
                report(_not_started(job))
            else:
                fail(job.index, f"{job.input}: no worker left to run it")
