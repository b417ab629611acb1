"""``--precision auto|fp32|bf16``: the number format of the backbone networks (VGG16, GoogLeNet).

bf16 runs the backbone under ``torch.autocast`` (convolutions and matrix products in bfloat16,
their inputs and outputs cast by torch); everything else — the renderer, Gram matrices, losses,
Adam's state — stays float32, and the backbone's outputs are cast back to float32 before any loss
reads them. ``auto`` picks bf16 only where the hardware runs it fast: a CUDA device that supports
bfloat16 (compute capability 8.0 and newer), or a CPU whose instruction set has AMX-BF16 or
AVX512-BF16 (read from the CPU's flags, never guessed from its name). Elsewhere bf16 would be
emulated and slower than fp32, so ``auto`` picks fp32 and an explicit ``bf16`` is refused.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

PRECISIONS = ("auto", "fp32", "bf16")
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo names of the instructions that make bf16 fast


@dataclass(frozen=True)
class Precision:
    """What a run uses: ``name`` ``fp32`` or ``bf16``, and why (one sentence)."""

    name: str
    reason: str

    @property
    def bf16(self) -> bool:
        return self.name == "bf16"


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's instruction-set flags (Linux: /proc/cpuinfo), empty where they cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (``Intel(R) Xeon(R) ...``; Arm: ``Hardware``/``CPU model``), else the
    platform's processor string."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("model name", "hardware", "cpu model") and value.strip():
            return value.strip()
    return platform.processor() or "unknown (no model name in /proc/cpuinfo)"


def cpu_bf16_instructions() -> tuple[str, ...]:
    """Which of :data:`CPU_BF16_FLAGS` this CPU has."""
    flags = cpu_flags()
    return tuple(flag for flag in CPU_BF16_FLAGS if flag in flags)


def bf16_support(device) -> tuple[bool, str]:
    """(whether ``device`` runs bf16 fast, the reason in words)."""
    if device.type == "cuda":
        import torch

        capability = "%d.%d" % torch.cuda.get_device_capability(device)
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return True, f"{torch.cuda.get_device_name(device)} (compute capability {capability}) runs bf16 natively"
        return False, f"{torch.cuda.get_device_name(device)} (compute capability {capability}) has no native bf16"
    found = cpu_bf16_instructions()
    if found:
        return True, f"{cpu_model()} has {' and '.join(f.upper() for f in found)}"
    return False, f"{cpu_model()} has neither AMX-BF16 nor AVX512-BF16 (bf16 would be emulated, slower than fp32)"


def choose(requested: str, device) -> Precision:
    """The precision a run on ``device`` uses for ``requested`` (one of :data:`PRECISIONS`); a
    one-line ``ValueError`` when ``bf16`` is asked for where it cannot run fast."""
    if requested == "fp32":
        return Precision("fp32", "asked for (--precision fp32)")
    fast, why = bf16_support(device)
    if requested == "bf16":
        if not fast:
            raise ValueError(f"--precision bf16: {why}; use --precision fp32 (or auto)")
        return Precision("bf16", f"asked for (--precision bf16); {why}")
    if requested != "auto":
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    return Precision("bf16" if fast else "fp32", f"auto: {why}")
