"""Checkpoints of the textured loops (``--checkpoint-every N`` / ``--resume``): the loop's state plus
``meta``, the facts a resumed run must share with the saved one.

A checkpoint holds only tensors and plain data (dicts, lists, tuples, str, int, float, bool, None):
the step, offsets and texture logits, Adam's ``state_dict``, the view sampler's ``torch.Generator``
state (a uint8 tensor), loss curves and timings. It is read with ``torch.load(weights_only=True)``,
so a file that would run code when unpickled (any other class or function) is refused instead of
executed.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def save_checkpoint(path: Path, state: dict, meta: dict) -> None:
    """``torch.save`` of the loop's state plus ``meta``, atomically (temp file + rename)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        torch.save({"meta": meta, "state": state}, temp)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _one_line(problem: BaseException) -> str:
    """A short reason for an unreadable file; for one torch refuses to unpickle, the object it names."""
    text = _ANSI.sub("", str(problem))
    refused = _UNSUPPORTED_GLOBAL.search(text)
    if refused:
        return f"it holds {refused.group(1)}, not only tensors and plain data; such files are not loaded"
    return " ".join(text.split())[:200] or type(problem).__name__


def load_checkpoint(path: Path, meta: dict) -> dict:
    """The loop state saved at ``path``; a one-line ValueError when missing, unreadable, holding
    anything but tensors and plain data, or from another run (``meta`` differs)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no checkpoint to resume from (run with --checkpoint-every N first)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if not (isinstance(saved, dict) and isinstance(saved.get("meta"), dict) and isinstance(saved.get("state"), dict)):
            raise TypeError("a torch file, but not a meshopt checkpoint")
        saved_meta, state = saved["meta"], saved["state"]
    except Exception as problem:  # noqa: BLE001 - any unreadable file is one line
        raise ValueError(f"{path}: not a readable checkpoint ({_one_line(problem)})") from None
    for key, value in meta.items():
        if saved_meta.get(key) != value:
            raise ValueError(
                f"{path}: made with a different {key} ({saved_meta.get(key)!r}, now {value!r}); "
                "resume with the same mesh, image and settings"
            )
    return state
