"""Result bundles: a folder of outputs that appears complete or not at all.

:func:`staged_folder` gives a temporary sibling folder to write into; when the block ends without
an exception it takes the final name in one rename (replacing an existing folder only with
``force``); on an exception the temporary folder is removed, so nothing is left half-written. A
run killed meanwhile (SIGKILL, power) leaves its staging folder, with an owner file naming its
host and process; :func:`remove_abandoned_staging`, called by every batch on its output folders,
removes those whose process is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from meshopt_cli.mesh.atomic import atomic_write_text


class OutputExists(ValueError):
    """The result folder exists and ``force`` was not given."""

    def __init__(self, path: Path):
        super().__init__(f"{path} exists (use --force to overwrite, or --skip-existing to keep it)")


class WrittenMeanwhile(OutputExists):
    """Another run wrote the result folder while this one was working on it (a lost race)."""

    def __init__(self, path: Path):
        ValueError.__init__(self, f"{path} was written by another run while this one worked; kept that one, discarded this")


# A staging folder holds this file (host and process id of its writer) until it takes its final
# name, so that a later run can tell a folder left by a killed run from one being written now.
OWNER_FILE = ".meshopt-owner"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_abandoned_staging(folders) -> list[Path]:
    """Remove the staging folders (``.NAME.*.partial``, ``.NAME.*.old``) in ``folders`` whose
    writer, on this host, is gone (a run killed while saving); returns what was removed. Folders of
    live processes, of other hosts, and without an owner file are left alone."""
    import socket

    removed = []
    host = socket.gethostname()
    for folder in {Path(f) for f in folders}:
        try:
            candidates = [c for c in folder.iterdir() if c.name.startswith(".") and c.name.endswith((".partial", ".old"))]
        except OSError:
            continue
        for candidate in candidates:
            owner_file = candidate / OWNER_FILE
            try:
                owner = json.loads(owner_file.read_text())
                mine, pid = owner["host"] == host, int(owner["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if mine and pid != os.getpid() and not _alive(pid):
                shutil.rmtree(candidate, ignore_errors=True)
                removed.append(candidate)
    return removed


def _claim(staging: Path) -> None:
    import socket

    (staging / OWNER_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))


def check_writable(folder: Path, force: bool) -> None:
    """Raise (a one-line ValueError) when the result folder cannot be written: it exists and
    ``force`` is not given, or something that is not a folder stands where its parent should be."""
    if folder.exists() and not force:
        raise OutputExists(folder)
    for parent in folder.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{parent} is not a folder (--out)")
            break


@contextmanager
def staged_folder(folder: str | os.PathLike, force: bool = False):
    """Write a result folder atomically: ``with staged_folder(out / "cube") as tmp: write into tmp``."""
    folder = Path(folder)
    check_writable(folder, force)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    try:
        os.chmod(staging, 0o777 & ~_umask())
        _claim(staging)
        yield staging
        if folder.exists() and not force:
            raise WrittenMeanwhile(folder)
        old = None
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
            _claim(old)
            os.replace(folder, old / folder.name)
        (staging / OWNER_FILE).unlink()
        os.replace(staging, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, data) -> Path:
    """``data`` as indented JSON (UTF-8, trailing newline), atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def run_record(device, preset: str, settings, status: str, files, stop_reason: str | None = None) -> dict:
    """The part of every command's metrics.json that says how the run was made and how it ended:
    device, renderer backend, threads, preset and the resolved settings (enough to repeat it), the
    status (``done``; ``interrupted`` or ``failed`` for a partial result, with ``stop_reason``) and
    the files of the result."""
    import torch

    from meshopt_cli.fields import as_dict
    from meshopt_cli.render import get_backend

    return {
        "status": status,
        "partial": status != "done",
        "stop_reason": stop_reason,
        "device": str(device),
        "backend": get_backend(device).name,
        "threads": torch.get_num_threads(),
        "preset": preset,
        "settings": as_dict(settings),
        "interrupted": status == "interrupted",
        "files": files,
    }
