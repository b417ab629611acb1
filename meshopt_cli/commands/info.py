"""``meshopt info [--json]``: versions, CPU and CUDA devices, renderer backend and kernel builds,
cached backbone weights.

Read-only and quick: imports torch and torchvision, but builds no kernel, loads no weights, opens no
network connection and creates no file or folder. Every probe is guarded: what cannot be found out
reads ``"unknown (reason)"`` instead of raising.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
import warnings
from pathlib import Path

from meshopt_cli import __version__

#: Distributions whose versions are reported (torch and torchvision: their ``__version__``, which
#: carries the build's CUDA tag, e.g. ``2.5.1+cu124``).
DISTRIBUTIONS = ("torch", "torchvision", "numpy", "trimesh", "pillow", "typer", "rich")
NOT_INSTALLED = "not installed"
#: The commands that use each backbone's ImageNet weights.
WEIGHTS_USED_BY = {"vgg16": "style", "googlenet": "dream"}
SECTIONS = ("meshopt", "versions", "cpu", "cuda", "precision", "renderer", "weights")


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}"[:200] if text else type(error).__name__


def _unknown(error: BaseException) -> str:
    return f"unknown ({_reason(error)})"


def _guard(probe, *args):
    """``probe(*args)``, or ``"unknown (reason)"`` when it raises."""
    try:
        return probe(*args)
    except Exception as error:  # noqa: BLE001 - a strange machine must not stop the report
        return _unknown(error)


def _enabled(variable: str) -> bool:
    return os.environ.get(variable, "").strip() not in ("", "0")


# ----------------------------------------------------------------------------- sections


def _meshopt() -> dict:
    import meshopt_cli

    try:
        installed = importlib.metadata.version("meshopt")
    except importlib.metadata.PackageNotFoundError:
        installed = NOT_INSTALLED
    return {"version": __version__, "installed_version": installed, "location": str(Path(meshopt_cli.__file__).resolve().parent)}


def distribution_version(name: str) -> str:
    """The installed version of distribution ``name``, or ``"not installed"``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return NOT_INSTALLED


def _module_version(name: str) -> str:
    try:
        return str(__import__(name).__version__)
    except ImportError:
        return NOT_INSTALLED


def _versions() -> dict:
    versions = {"python": platform.python_version(), "platform": _guard(platform.platform)}
    for name in DISTRIBUTIONS:
        probe = _module_version if name in ("torch", "torchvision") else distribution_version
        versions[name] = _guard(probe, name)
    return versions


def _cpu() -> dict:
    import torch

    usable = _guard(lambda: len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    from meshopt_cli.precision import cpu_model

    return {
        "model": _guard(cpu_model),
        "machine": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "torch_threads": _guard(torch.get_num_threads),
    }


def _cuda_device(index: int) -> dict:
    import torch

    properties = torch.cuda.get_device_properties(index)
    return {
        "index": index,
        "name": properties.name,
        "memory_gib": round(properties.total_memory / 2**30, 1),
        "capability": "%d.%d" % (properties.major, properties.minor),
    }


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _cuda() -> dict:
    import torch

    available = _guard(_cuda_available)
    count = _guard(torch.cuda.device_count) if available is True else 0
    devices = [_guard(_cuda_device, i) for i in range(count)] if isinstance(count, int) else []
    return {"available": available, "torch_cuda": torch.version.cuda, "device_count": count, "devices": devices}


def _kernels(native, kind: str, root, tools: dict) -> dict:
    """The ``kind`` ("cpu" | "cuda") extension: its name, where it is built, whether it is, and the
    backend that rendering on that device would use (``native.backend_choice``)."""
    entry = {"extension": None, "build_dir": None, "built": None, "file": None, "loaded": native.module_loaded(kind)}
    try:
        if isinstance(root, Path):
            entry.update(native.build_status(kind, root))
        else:
            entry.update(extension=native.extension_name(kind), built=root)  # root: why the cache folder is unknown
    except Exception as error:  # noqa: BLE001 - e.g. the kernel sources are missing
        entry["built"] = _unknown(error)
    if kind == "cuda":
        entry["arch_list"] = _guard(native.cuda_arch_list)
    entry["backend"], entry["reason"] = native.backend_choice(kind, built=entry["built"], tools=tools)
    return entry


def _renderer() -> dict:
    from meshopt_cli.render import native

    tools = _guard(native.toolchain)  # first: it keeps cpp_extension's import from logging a CUDA_HOME guess
    root = _guard(native.extensions_root)
    tools = tools if isinstance(tools, dict) else {"cxx": tools, "ninja": tools, "nvcc": tools, "cuda_home": tools}
    return {
        "MESHOPT_BACKEND": os.environ.get(native.BACKEND_VARIABLE),
        "selected": native.backend_setting(),
        "cpu": _guard(_kernels, native, "cpu", root, tools),
        "cuda": _guard(_kernels, native, "cuda", root, tools),
        "kernel_sources": _guard(lambda: str(native.kernel_dir())),
        "extensions_root": str(root),
        **tools,
    }


def _weights() -> dict:
    from meshopt_cli.optimize.backbones import describe_weights

    described = describe_weights()
    for entry in described["backbones"]:
        entry["used_by"] = WEIGHTS_USED_BY.get(entry["name"])
    return dict(described, offline=_enabled("MESHOPT_OFFLINE"), MESHOPT_OFFLINE=os.environ.get("MESHOPT_OFFLINE"))


def collect() -> dict:
    """Everything ``meshopt info`` reports, JSON-serialisable: one dict per section of
    :data:`SECTIONS`; a section or value that cannot be probed is ``"unknown (reason)"``."""
    probes = {
        "meshopt": _meshopt,
        "versions": _versions,
        "cpu": _cpu,
        "cuda": _cuda,
        "precision": _precision,
        "renderer": _renderer,
        "weights": _weights,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. torch.cuda's driver warnings: the report says it
        return {section: _guard(probes[section]) for section in SECTIONS}


# ----------------------------------------------------------------------------- text


def _precision() -> dict:
    """What ``--precision auto`` picks for the backbones (style, dream) on each device, and why."""
    import torch

    from meshopt_cli.precision import choose, cpu_bf16_instructions

    picks = {"cpu": choose("auto", torch.device("cpu"))}
    if _cuda_available() is True:
        picks.update({f"cuda:{k}": choose("auto", torch.device("cuda", k)) for k in range(torch.cuda.device_count())})
    return {
        "cpu_bf16_instructions": list(cpu_bf16_instructions()),
        "auto": {device: {"uses": p.name, "reason": p.reason} for device, p in picks.items()},
    }


def _show(value) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if value is None:
        return "-"
    return str(value)


def _size(size_bytes) -> str:
    return f"{size_bytes / 2**20:.0f} MiB" if isinstance(size_bytes, (int, float)) else "size unknown"


def _section_rows(name: str, section: dict) -> list:
    """(label, value) rows of one section."""
    if name == "meshopt":
        return [
            ("version", section.get("version")),
            ("installed", section.get("installed_version")),
            ("location", section.get("location")),
        ]
    if name in ("versions",):
        return list(section.items())
    if name == "cpu":
        return [
            ("model", section.get("model")),
            ("machine", section.get("machine")),
            ("cpus", f"{_show(section.get('logical_cpus'))} logical, {_show(section.get('usable_cpus'))} usable"),
            ("torch threads", section.get("torch_threads")),
        ]
    if name == "cuda":
        rows = [
            ("available", section.get("available")),
            ("torch CUDA", section.get("torch_cuda") or "- (CPU-only torch)"),
            ("devices", section.get("device_count")),
        ]
        for device in section.get("devices") or []:
            if isinstance(device, dict):
                rows.append(
                    (
                        f"cuda:{device.get('index')}",
                        f"{device.get('name')}, {device.get('memory_gib')} GiB, compute {device.get('capability')}",
                    )
                )
            else:
                rows.append(("device", device))
        return rows
    if name == "precision":
        rows = [("CPU bf16 instructions", ", ".join(section.get("cpu_bf16_instructions") or []) or "none")]
        for device, pick in (section.get("auto") or {}).items():
            rows.append((f"auto on {device}", f"{pick.get('uses')} ({pick.get('reason')})"))
        return rows
    if name == "renderer":
        env = section.get("MESHOPT_BACKEND")
        rows = [("MESHOPT_BACKEND", "unset (native)" if env is None else env)]
        for kind in ("cpu", "cuda"):
            entry = section.get(kind)
            if not isinstance(entry, dict):
                rows.append((f"{kind} backend", entry))
                continue
            rows.append((f"{kind} backend", f"{_show(entry.get('backend'))} ({entry.get('reason')})"))
            built = entry.get("built")
            where = entry.get("file") if built is True else entry.get("build_dir")
            rows.append(
                (
                    f"{kind} kernels",
                    f"{'built' if built is True else 'not built' if built is False else _show(built)}"
                    + (f": {where}" if where else ""),
                )
            )
        rows += [
            ("C++ compiler", section.get("cxx") or "not found"),
            ("ninja", section.get("ninja") or "not found"),
            ("nvcc", section.get("nvcc") or "not found"),
            ("CUDA_HOME", section.get("cuda_home") or "not found"),
            ("kernel sources", section.get("kernel_sources")),
        ]
        return rows
    if name == "weights":
        rows = [("cache", section.get("checkpoint_dir"))]
        for entry in section.get("backbones") or []:
            state = (
                f"present ({_size(entry.get('size_bytes'))})"
                if entry.get("cached")
                else f"missing (downloads {entry.get('url')})"
            )
            rows.append((f"{entry.get('name')}", f"{state}, for meshopt {entry.get('used_by')}: {entry.get('file')}"))
        offline = section.get("MESHOPT_OFFLINE")
        rows.append(
            (
                "MESHOPT_OFFLINE",
                ("unset" if offline is None else offline)
                + (" (no downloads)" if section.get("offline") else " (downloads allowed)"),
            )
        )
        return rows
    return list(section.items())


def format_text(data: dict) -> str:
    """A plain-text report of :func:`collect`'s ``data``: one heading per section, aligned rows."""
    blocks = []
    for name in SECTIONS:
        section = data.get(name, "unknown (not collected)")
        try:
            rows = _section_rows(name, section) if isinstance(section, dict) else [("", section)]
        except Exception as error:  # noqa: BLE001 - a malformed section must not hide the others
            rows = [("", _unknown(error))]
        width = max((len(label) for label, _ in rows), default=0)
        lines = [name] + [
            f"  {label:<{width}}  {_show(value)}".rstrip() if label else f"  {_show(value)}" for label, value in rows
        ]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def run(json_output: bool = False) -> int:
    """Print the report on stdout (with ``json_output``, exactly one JSON object); exit status 0."""
    data = collect()
    sys.stdout.write(json.dumps(data, indent=2) + "\n" if json_output else format_text(data))
    sys.stdout.flush()
    return 0
