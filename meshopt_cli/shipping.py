"""What crosses the wire when a job runs on another machine (:mod:`meshopt_cli.cluster`): no shared
filesystem is assumed.

*Inputs.* The driver reads every file a job reads (its :attr:`Command.reads
<meshopt_cli.command.Command.reads>`: the mesh with its MTL and texture images, the style image, a
``--weights`` file, ``fit``'s images and cameras) into an :class:`Input`: the bytes of the file and
of its sidecars (:mod:`meshopt_cli.mesh.sidecars`), keyed by the path as the job names it. The
worker writes them under a scratch folder, keeping their layout relative to each other, and
:func:`meshopt_cli.mesh.shipped.local` maps each named path to its copy while the job runs.
Loaders open ``local(path)`` and name ``path`` in their messages, so a job reads and reports exactly
what it would locally.

*The output area.* The worker's job writes into a scratch ``OUT`` (``job.folder`` moved there);
what already exists for the job in the real ``OUT`` is put there first (:func:`existing_outputs`):
its result folder as an empty stand-in (so that "exists, use --force" and ``--skip-existing`` behave
as locally) and files named after it, such as ``NAME.checkpoint.pt``, whole.

*Results.* After the job, :func:`collect` takes everything it wrote there as bytes (and which of
the shipped files it removed); the driver writes them with :func:`write_back`, result folders with
the same atomic folder writes as local runs (:func:`meshopt_cli.export.staged_folder`), so a job
that dies leaves nothing behind and one that ends leaves its folder complete. :func:`Unpacked.undo`
turns scratch paths in the job's lines and summary back into the user's.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from meshopt_cli.batch import Job, Summary
from meshopt_cli.mesh.shipped import key, mapped

MESH_SUFFIXES = (".obj", ".gltf")  # meshes that read other files (see meshopt_cli/mesh/sidecars.py)


# ---------------------------------------------------------------- the driver: reading inputs


@dataclass
class Input:
    """One input file and the files it reads, as shipped: ``files`` maps paths relative to a common
    folder to their bytes (or, once in the object store, to references); ``entry`` is the file's
    own relative path. ``kind``: ``file``, ``folder`` (a folder given where a file is expected) or
    ``missing`` (the job's loader then reports it, naming the path)."""

    key: str
    entry: str = ""
    files: dict = field(default_factory=dict)
    kind: str = "file"
    root: str = ""  # that common folder on the driver (to name sidecars in messages)

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.files.values() if isinstance(v, (bytes, bytearray)))


def read_input(path: str) -> Input:
    """Read ``path`` (and, for a mesh, its sidecars) into an :class:`Input`; raises OSError when a
    file cannot be read."""
    name = key(path)
    here = Path(name)
    if not here.exists():
        return Input(key=name, kind="missing")
    if here.is_dir():
        return Input(key=name, kind="folder")
    from meshopt_cli.mesh.sidecars import sidecar_files

    files = [here] + (sidecar_files(here) if here.suffix.lower() in MESH_SUFFIXES else [])
    absolute = [Path(os.path.abspath(f)) for f in files]
    root = Path(os.path.commonpath([str(f.parent) for f in absolute]))
    return Input(
        key=name,
        entry=absolute[0].relative_to(root).as_posix(),
        files={f.relative_to(root).as_posix(): f.read_bytes() for f in absolute},
        root=str(root),
    )


def existing_outputs(job: Job, listing: list[str] | None = None) -> dict[str, bytes | None]:
    """What the real ``OUT`` holds for ``job``: its result (folder or file) and files named after it
    (``NAME.checkpoint.pt``; for a single-file result ``STEM-frames``, ``STEM-sheet.png``), name ->
    bytes for files, None for folders (shipped as empty stand-ins). ``listing``: ``OUT``'s entries,
    when the caller has read them once for the whole batch."""
    out = job.folder.parent
    if listing is None:
        listing = sorted(os.listdir(out)) if out.is_dir() else []
    own = job.folder.name
    stem = job.folder.stem if job.folder.suffix else None
    found: dict[str, bytes | None] = {}
    for name in listing:
        if name == own or name.startswith(own + ".") or (stem is not None and name.startswith(stem + "-")):
            if name.startswith(own + ".") and name.endswith(".partial"):  # a staging folder being written
                continue
            path = out / name
            found[name] = None if path.is_dir() else path.read_bytes()
    return found


# ---------------------------------------------------------------- the worker: running a shipped job


@dataclass
class Unpacked:
    """A shipped job laid out on this machine: ``job`` with its folder in ``out`` (the scratch
    ``OUT``), and how to say its paths the user's way again."""

    job: Job
    out: Path
    real_out: Path
    roots: list[tuple[str, str]]  # (scratch folder of an input, its folder on the driver)
    shipped: dict[str, object]  # name -> (inode, size, mtime) of what was put in ``out`` before the job

    def undo(self, text: str | None) -> str | None:
        """``text`` with scratch paths replaced by the user's."""
        if not text:
            return text
        prefix = "" if str(self.real_out) == "." else str(self.real_out) + os.sep
        text = text.replace(str(self.out) + os.sep, prefix).replace(str(self.out), str(self.real_out))
        for scratch, driver in self.roots:
            text = text.replace(scratch, driver)
        return text

    def summary(self, summary: Summary, folder: Path) -> Summary:
        """A worker's summary as the driver reports it: its folder and file paths the user's."""
        return dataclasses.replace(
            summary,
            folder=str(folder),
            files=[self.undo(f) for f in summary.files],
            error=self.undo(summary.error),
        )


def _stamp(path: Path):
    info = path.stat()
    return (info.st_ino, info.st_size, info.st_mtime_ns)


@contextmanager
def unpacked(job: Job, inputs: list[Input], outputs: dict[str, bytes | None], scratch: Path):
    """Write ``inputs`` and ``outputs`` (see :func:`existing_outputs`) under ``scratch``, map the
    inputs' paths for :func:`~meshopt_cli.mesh.shipped.local` during the block, and yield an :class:`Unpacked`."""
    mapping: dict[str, Path] = {}
    roots = []
    for k, item in enumerate(inputs):
        where = scratch / "in" / str(k)
        if item.kind == "missing":
            mapping[item.key] = where / "missing" / Path(item.key).name  # never created: "no such file"
            continue
        if item.kind == "folder":
            (where / "folder").mkdir(parents=True)
            mapping[item.key] = where / "folder"
            continue
        for relative, data in item.files.items():
            target = where / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        mapping[item.key] = where / item.entry
        roots.append((str(where), item.root))
    out = scratch / "out"
    out.mkdir(parents=True)
    shipped = {}
    for name, data in outputs.items():
        if data is None:
            (out / name).mkdir()
        else:
            (out / name).write_bytes(data)
        shipped[name] = _stamp(out / name)
    with mapped(mapping):
        yield Unpacked(
            job=dataclasses.replace(job, folder=out / job.folder.name),
            out=out,
            real_out=job.folder.parent,
            roots=roots,
            shipped=shipped,
        )


@dataclass
class Returned:
    """What a job wrote into the scratch ``OUT``: top-level entries -> {relative path: bytes} (a
    top-level file has the one key ``""``; a folder's empty subfolders are kept as None), and the
    shipped files it removed."""

    entries: dict[str, dict[str, bytes | None]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(len(v) for files in self.entries.values() for v in files.values() if v is not None)


def collect(unpacked_job: Unpacked) -> Returned:
    """The job's new or changed entries of the scratch ``OUT`` (unchanged stand-ins left out)."""
    out = unpacked_job.out
    returned = Returned(removed=sorted(n for n in unpacked_job.shipped if not (out / n).exists()))
    for entry in sorted(out.iterdir()):
        if entry.name.endswith((".partial", ".tmp")) or ".old" in entry.suffixes:
            continue
        stamp = unpacked_job.shipped.get(entry.name)
        if stamp is not None and _stamp(entry) == stamp and (entry.is_file() or not any(entry.iterdir())):
            continue  # a stand-in the job did not touch
        if entry.is_file():
            returned.entries[entry.name] = {"": entry.read_bytes()}
            continue
        files: dict[str, bytes | None] = {}
        for path in sorted(entry.rglob("*")):
            relative = path.relative_to(entry).as_posix()
            if path.is_file():
                files[relative] = path.read_bytes()
            elif path.is_dir() and not any(path.iterdir()):
                files[relative] = None
        returned.entries[entry.name] = files
    return returned


# ---------------------------------------------------------------- the driver: writing results


def write_back(out: Path, returned: Returned) -> None:
    """Write a job's :class:`Returned` entries into the real ``out``: folders whole or not at all,
    files atomically (the job itself has decided that it may replace them: it saw what existed)."""
    from meshopt_cli.export import staged_folder
    from meshopt_cli.mesh.atomic import atomic_write_bytes

    out.mkdir(parents=True, exist_ok=True)
    for name, files in returned.entries.items():
        if set(files) == {""}:
            atomic_write_bytes(out / name, files[""])
            continue
        with staged_folder(out / name, force=True) as staging:
            for relative, data in files.items():
                target = staging / relative
                if data is None:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
    for name in returned.removed:
        path = out / name
        if path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
