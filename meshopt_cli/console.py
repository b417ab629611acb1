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


@contextmanager
def progress_bar(enabled: bool = True):
    """A rich progress bar on stderr, or a no-op one when stderr is not a terminal or ``enabled`` is
    False. Yields an object with ``add_task(description, total)`` and ``advance(task, n)``."""
    if enabled and sys.stderr.isatty():
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
            console=stderr,
            transient=True,
        ) as bar:
            yield bar
    else:
        yield _NoProgress()


class _NoProgress:
    def add_task(self, description: str, total: float | None = None) -> int:
        return 0

    def advance(self, task: int, advance: float = 1) -> None:
        pass

    def update(self, task: int, **changes) -> None:
        pass
