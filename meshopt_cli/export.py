"""Result bundles: a folder of outputs that appears complete or not at all.

:func:`staged_folder` gives a temporary sibling folder to write into; when the block ends without
an exception it takes the final name in one rename (replacing an existing folder only with
``force``); on an exception the temporary folder is removed, so nothing is left half-written.
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
        yield staging
        check_writable(folder, force)
        old = None
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
            os.replace(folder, old / folder.name)
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
