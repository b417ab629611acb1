"""Where a job reads a file: the file itself, or its copy when the job was shipped to this machine.

Loaders (meshes, style images, fit's masks and cameras, weights files) open ``local(path)`` and
name ``path`` in their messages. :mod:`meshopt_cli.shipping` lays a shipped job's input files out
in a scratch folder and maps their paths here with :func:`mapped` while the job runs; otherwise
:func:`local` is the path itself. This module imports nothing, so every layer may use it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

_local: dict[str, Path] = {}  # path as a job names it -> its copy on this machine


def key(path: str | os.PathLike) -> str:
    """The name a path is shipped under: as the job gives it, with ``~`` expanded (``./a`` is ``a``)."""
    return str(Path(os.fspath(path)).expanduser())


def local(path: str | os.PathLike) -> Path:
    """Where to read ``path`` on this machine: its shipped copy inside a shipped job, else itself."""
    name = key(path)
    return _local.get(name, Path(name))


@contextmanager
def mapped(mapping: dict[str, Path]):
    """Read the paths of ``mapping`` (keys as :func:`key` writes them) at its values during the block."""
    global _local
    previous, _local = _local, dict(mapping)
    try:
        yield
    finally:
        _local = previous
