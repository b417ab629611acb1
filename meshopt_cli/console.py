"""Where the CLI talks to people: logs, errors and progress on stderr (stdout is for results)."""

from __future__ import annotations

import sys
from contextlib import contextmanager

from rich.console import Console

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class UsageError(Exception):
    """Bad command-line usage (exit status 2): one line, shown as is."""


def error(message: str) -> None:
    """One clear line, no traceback."""
    stderr.print(f"meshopt: error: {message}", markup=False)


def warn(message: str) -> None:
    """One ``meshopt: warning:`` line (shown even with --quiet: it changes what runs)."""
    stderr.print(f"meshopt: warning: {message}", markup=False)


def info(message: str, quiet: bool = False) -> None:
    if not quiet:
        stderr.print(f"meshopt: {message}", markup=False)


def one_line_warnings() -> None:
    """Python warnings (a missing texture, a fallback backend) as one ``meshopt: warning:`` line each,
    without the source file and line that Python's default format adds."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        stderr.print(f"meshopt: warning: {' '.join(str(message).split())}", markup=False)

    warnings.showwarning = show


class JobProgress:
    """One job's progress line: ``description`` (the command and the input), a bar of ``total``
    steps, the count, the time left and a stage label saying what it is doing now (loading,
    rendering targets, optimizing with the loss terms, writing). Without a terminal it shows
    nothing."""

    def __init__(self, bar, task):
        self._bar, self._task = bar, task

    def stage(self, text: str) -> None:
        """Say what the job does now: ``loading``, ``optimizing · style 0.12``, ``writing`` ..."""
        if self._bar is not None:
            self._bar.update(self._task, stage=text)

    def advance(self, steps: float = 1, stage: str | None = None) -> None:
        if self._bar is not None:
            fields = {} if stage is None else {"stage": stage}
            self._bar.update(self._task, advance=steps, **fields)

    def restart(self, total: float, completed: float = 0) -> None:
        if self._bar is not None:
            self._bar.update(self._task, total=total, completed=completed)


def progress_columns():
    """The columns of a progress line, laid out for 80-column terminals: the description and the
    stage shrink (with an ellipsis) before the bar does, and the bar keeps at least 12 cells."""
    from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
    from rich.table import Column

    return (
        TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=2, min_width=8)),
        BarColumn(bar_width=None, table_column=Column(ratio=3, min_width=12)),
        TextColumn("{task.completed:.0f}/{task.total:.0f}", table_column=Column(no_wrap=True)),
        TimeRemainingColumn(),
        TextColumn("{task.fields[stage]}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=3, min_width=8)),
    )


@contextmanager
def job_progress(description: str, total: float, enabled: bool = True, stage: str = "loading"):
    """A :class:`JobProgress` on stderr while the block runs (transient), or a silent one when
    stderr is not a terminal or ``enabled`` is False."""
    if enabled and sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(*progress_columns(), console=stderr, transient=True, expand=True) as bar:
            yield JobProgress(bar, bar.add_task(description, total=total, stage=stage))
    else:
        yield JobProgress(None, None)
