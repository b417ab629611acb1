"""``--device auto|cpu|cuda|cuda:N`` -> a torch device, or a usage error that says what to do."""

from __future__ import annotations

from meshopt_cli.console import UsageError


def resolve_device(spec: str):
    import torch

    text = (spec or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {spec}: no CUDA device is available here; use --device cpu (or auto)")
        index = 0
        if ":" in text:
            try:
                index = int(text.split(":", 1)[1])
            except ValueError:
                raise UsageError(f"--device {spec}: expected cuda:N with N a number") from None
        count = torch.cuda.device_count()
        if not 0 <= index < count:
            raise UsageError(
                f"--device {spec}: there {'is' if count == 1 else 'are'} {count} CUDA device(s), numbered 0..{count - 1}"
            )
        return torch.device("cuda", index)
    raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got {spec!r}")
