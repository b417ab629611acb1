"""One image reader for every image meshopt reads: style images, masks (``fit --images``) and
mesh textures.

Every Pillow mode comes out the same way: ``rgb [H, W, 3]`` float32 in [0, 1] (row 0 = top) and
``alpha [H, W]`` float32 in [0, 1] or None. 1-bit, 8-bit and 16-bit grey (``1``, ``L``, ``I;16*``,
``I``), float grey (``F``, clipped to [0, 1]), grey + alpha, palettes (with transparency), RGB(A),
CMYK, YCbCr and LAB are all read by their own scale, never by a cast that saturates.

Pillow's decompression-bomb limit is replaced by meshopt's own rule: an image up to
:data:`MAX_PIXELS` is read and, when a caller gives ``max_side``, reduced in Pillow (before any
float conversion) to at most that many pixels per side; a larger one is refused with
:class:`ImageReadError`. Callers decide what a refusal means: a style image or mask is an error
for its job, a texture is grey with a warning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# 24 GiB would not hold a float copy of more: 16384 x 16384 RGB is 3 GiB as float32.
MAX_PIXELS = 16384 * 16384


class ImageReadError(ValueError):
    """The file cannot be used as an image; ``str()`` is one line without the path."""


@dataclass
class ImageData:
    """An image as meshopt uses it: ``rgb [H, W, 3]`` float32 in [0, 1], ``alpha [H, W]`` or None
    (None when the file has no alpha and no transparent palette entry), and the file's own size
    ``original (width, height)`` before any reduction."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    original: tuple[int, int]

    @property
    def reduced(self) -> bool:
        return (self.rgb.shape[1], self.rgb.shape[0]) != self.original


_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def _grey_scale(image) -> float:
    """Full scale of a one-channel integer image: 65535 for 16-bit files, 1 for 1-bit, else 255
    (``I`` holds 16-bit PNGs as 32-bit integers; its scale is read off the values)."""
    if image.mode in _SIXTEEN_BIT:
        return 65535.0
    if image.mode == "I":
        high = image.getextrema()[1]
        return 65535.0 if high > 255 else 255.0
    return 255.0


def pil_to_arrays(image) -> tuple[np.ndarray, np.ndarray | None]:
    """A loaded PIL image -> (rgb ``[H, W, 3]``, alpha ``[H, W]`` or None), float32 in [0, 1]."""
    mode = image.mode
    if mode in _SIXTEEN_BIT or mode == "I":
        grey = np.asarray(image, dtype=np.float32) / _grey_scale(image)
        grey = np.clip(grey, 0.0, 1.0)
        return np.repeat(grey[..., None], 3, axis=2), None
    if mode == "F":
        grey = np.nan_to_num(np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0))
        return np.repeat(grey[..., None], 3, axis=2), None
    if mode == "1":
        image = image.convert("L")
        mode = "L"
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    if mode == "L" and not has_alpha:
        grey = np.asarray(image, dtype=np.float32) / 255.0
        return np.repeat(grey[..., None], 3, axis=2), None
    if mode == "LA":
        array = np.asarray(image, dtype=np.float32) / 255.0
        return np.ascontiguousarray(np.repeat(array[..., :1], 3, axis=2)), np.ascontiguousarray(array[..., 1])
    array = np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255.0
    if has_alpha:
        return np.ascontiguousarray(array[..., :3]), np.ascontiguousarray(array[..., 3])
    return np.ascontiguousarray(array), None


def _reduce(image, max_side: int):
    """``image`` reduced (in Pillow, antialiased) so that neither side exceeds ``max_side``."""
    from PIL import Image

    if max(image.size) <= max_side:
        return image
    if image.mode in _SIXTEEN_BIT or image.mode == "I":
        scale = _grey_scale(image)
        image = image.convert("F").point(lambda v: v / scale)  # keep 16-bit precision
    elif image.mode not in ("L", "LA", "RGB", "RGBA", "F"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    image.thumbnail((max_side, max_side), Image.LANCZOS)  # in place: the caller's image is its own
    return image


def read_image(path: str | os.PathLike, max_side: int | None = None) -> ImageData:
    """Read ``path`` as :class:`ImageData`, reduced to at most ``max_side`` pixels per side when
    given. Raises :class:`ImageReadError` (one line, no path) for a missing, empty, unreadable or
    oversized file."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise ImageReadError("no such file")
    if path.is_dir():
        raise ImageReadError("is a folder, not an image")
    if path.stat().st_size == 0:
        raise ImageReadError("empty file, not an image")
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # meshopt's own limit below, checked before decoding
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageReadError(
                    f"image too large to read ({width}x{height} pixels; at most {MAX_PIXELS // 1_000_000} megapixels, "
                    "such as 16384x16384): downscale it first"
                )
            if max_side is not None and image.format == "JPEG":
                image.draft("RGB", (max_side, max_side))  # decode at a reduced size
            image.load()
            if max_side is not None:
                image = _reduce(image, max_side)
            rgb, alpha = pil_to_arrays(image)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError("not an image (Pillow cannot read it)") from None
    except (OSError, SyntaxError, ValueError) as problem:
        raise ImageReadError(f"not a readable image ({problem})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    return ImageData(rgb=rgb, alpha=alpha, original=(width, height))
