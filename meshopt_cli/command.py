"""The shape of every command: what :mod:`meshopt_cli.batch` runs.

A command is a :class:`Command`: its name, its settings dataclass (fields made with
:func:`meshopt_cli.fields.setting`) and default preset (``presets/<name>/``), its options
dataclass (what a call asks beyond settings: ``--png``, ``--images``, ``--weights`` ...), a *plan* that turns
the call's inputs into :class:`~meshopt_cli.batch.Job` s (pure: it returns them and raises
:class:`~meshopt_cli.console.UsageError`, mutating nothing), a *run* function that does one job
and returns a :class:`~meshopt_cli.batch.JobResult`, the files a complete result folder holds,
and *reads*: the files a job reads (what a cluster run ships to the machine that runs it).
:func:`run_command` resolves the settings (preset < ``--config`` < flags), plans, and hands the
jobs with one picklable :class:`Payload` to a runner: :func:`~meshopt_cli.batch.run_batch` (this
machine: in process or ``--jobs N`` worker processes) or, with ``--cluster``,
:func:`~meshopt_cli.cluster.run_batch` (a Ray cluster). Both run the same ``run`` on the same jobs.

Adding a command: a settings dataclass, a presets folder, a plan function, a run function (in
``commands/<name>.py``, ending in ``COMMAND = Command(...)``) and a Typer function in ``cli.py``
that calls :func:`run_command` — see the README's code map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Sequence, TypeVar

from meshopt_cli import console, memory, settings
from meshopt_cli.batch import BatchOptions, Context, Job, JobResult, run_batch

S = TypeVar("S")  # the command's settings dataclass
Opt = TypeVar("Opt")  # the command's options: what the call asks beyond its settings (picklable)


@dataclass(frozen=True)
class Payload(Generic[S, Opt]):
    """What every job of one call shares: the resolved settings, the preset they came from, the options."""

    settings: S
    preset: str
    options: Opt


@dataclass(frozen=True)
class Command(Generic[S, Opt]):
    """One command, as the batch runner and the CLI see it."""

    name: str
    settings: type  # its settings dataclass
    options: type  # its options dataclass (frozen, picklable)
    default_preset: str
    plan: Callable[[Sequence[str], Any, Any, BatchOptions], list[Job]]  # (arguments, settings, options, batch) -> jobs
    run: Callable[[Job, Payload, Context], JobResult]  # module-level, so that worker processes can import it
    files: tuple[str, ...] = ()  # what every complete result folder holds (--skip-existing checks them)
    # (settings, options) -> memory.Estimate of the smallest job (an empty mesh): what the settings alone need
    memory: Callable[[Any, Any], memory.Estimate] | None = None
    reads: Callable[[Job, Payload], list[str]] | None = None  # the files a job reads (default: its input)

    def resolve(self, preset: str | None = None, config=None, overrides: dict | None = None) -> tuple[Any, str]:
        """The validated settings (preset < ``config`` < overrides) and the name of the preset used;
        raises :class:`~meshopt_cli.settings.SettingsError`."""
        return settings.resolve(self.settings, self.name, self.default_preset, preset, config, overrides)


def run_command(
    command: Command,
    arguments: Sequence[str],
    batch: BatchOptions,
    options,
    *,
    preset: str | None = None,
    config=None,
    overrides: dict | None = None,
) -> int:
    """Resolve, plan and run one call of ``command``; bad settings are usage errors. Exit status."""
    try:
        resolved, chosen = command.resolve(preset, config, overrides)
    except settings.SettingsError as problem:
        raise console.UsageError(str(problem)) from None
    jobs = command.plan(list(arguments), resolved, options, batch)
    per_worker = check_memory(command, resolved, options, batch)
    payload = Payload(resolved, chosen, options)
    if batch.cluster is not None:
        from meshopt_cli import cluster  # imports Ray: only for --cluster

        return cluster.run_batch(command.run, jobs, payload, batch, required=command.files, reads=command.reads or input_of)
    return run_batch(command.run, jobs, payload, batch, required=command.files, per_worker=per_worker)


def check_memory(command: Command, resolved, options, batch: BatchOptions) -> int | None:
    """What one worker needs at least (bytes), or None for a command without an estimate; a usage
    error when the settings alone exceed the budget (``--max-memory``, else the default of one
    process): the job would fail on every input, so nothing runs."""
    if command.memory is None:
        return None
    smallest = command.memory(resolved, options)
    budget = batch.max_memory or memory.default_budget(1)
    try:
        memory.check(smallest, budget, f"{command.name} with these settings")
    except memory.OverBudget as problem:
        raise console.UsageError(str(problem)) from None
    return smallest.total


def input_of(job: Job, payload: Payload) -> list[str]:
    """The default :attr:`Command.reads`: the job's input (a path, or ``builtin:NAME``, which reads nothing)."""
    return [job.input]
