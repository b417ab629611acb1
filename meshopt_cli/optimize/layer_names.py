"""Names of the GoogLeNet layers DeepDream can grow (no torch here: the CLI and settings use them)."""

from __future__ import annotations

#: Valid ``layer`` names (the Caffe / paper spelling); the output of that whole inception block
#: (its four branches concatenated) is what grows.
GOOGLENET_LAYERS = (
    "inception_3a",
    "inception_3b",
    "inception_4a",
    "inception_4b",
    "inception_4c",
    "inception_4d",
    "inception_4e",
    "inception_5a",
    "inception_5b",
)
GOOGLENET_DEFAULT_LAYER = "inception_4c"


def googlenet_layer(layer: str) -> str:
    """The paper spelling of ``layer`` (torchvision's ``inception4c`` is accepted too); a
    ``ValueError`` listing the valid names for anything else."""
    name = layer.strip().lower()
    if name.startswith("inception") and not name.startswith("inception_"):
        name = "inception_" + name[len("inception") :]
    if name not in GOOGLENET_LAYERS:
        raise ValueError(f"unknown layer {layer!r} (valid: {', '.join(GOOGLENET_LAYERS)})")
    return name
