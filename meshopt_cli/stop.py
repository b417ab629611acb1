"""Graceful stops: SIGINT (Ctrl-C) and SIGTERM ask the running loops to finish their current step.

After :func:`install`, the first signal only sets a flag that the optimization loops and the batch
runner poll (:func:`requested`): the loop ends after its current step, the command saves each
unfinished input's state as a partial result and exits with status 130. A second signal raises
``KeyboardInterrupt`` at once (results being written are then discarded whole, never half-written).
Worker processes install it with ``hard_second=False``: their parent decides when to stop hard.

Without :func:`install` (library use) Ctrl-C raises ``KeyboardInterrupt`` as usual, which the loops
also treat as a request to stop.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

_requested: str | None = None
_hard_second = True


def _handler(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    global _requested
    if _requested is not None and _hard_second:
        raise KeyboardInterrupt
    _requested = _requested or signal.Signals(signum).name


def install(hard_second: bool = True) -> None:
    """Route SIGINT and SIGTERM to the stop flag (main thread only)."""
    global _hard_second
    _hard_second = hard_second
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


@contextmanager
def handling():
    """:func:`install` for the duration of a block (a fresh flag), then the previous handlers again.
    Outside the main thread signals cannot be caught: the block runs without them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    reset()
    install()
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
        reset()


def requested() -> str | None:
    """The name of the signal that asked for a stop (``"SIGINT"``, ``"SIGTERM"``), else None."""
    return _requested


def request(reason: str = "SIGINT") -> None:
    """Ask for a stop from code (tests, a parent's message)."""
    global _requested
    _requested = _requested or reason


def reset() -> None:
    global _requested
    _requested = None
