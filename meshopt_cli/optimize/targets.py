"""What a fit matches: silhouettes of a target mesh, or masks from images with their cameras.

Both kinds give a :class:`SilhouetteTarget`: training views, optional held-out views, and masks
``[N, S, S]`` for either set at any image size (rendered from the mesh, or resampled from the
images). Bad input raises :class:`TargetError`, a ValueError whose message is one line naming the
file and the problem.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from meshopt_cli.images import ImageReadError, read_image
from meshopt_cli.mesh.normalize import box_normalization
from meshopt_cli.mesh.shipped import local
from meshopt_cli.optimize.views import (
    DISTANCE,
    ELEVATION,
    VIEWING_ANGLE,
    Views,
    angle_views,
    heldout_views,
    render_silhouettes,
    training_views,
)

MIN_MASK_PIXELS = 1  # a mask with fewer foreground pixels (at full resolution) is "empty"
MIN_MASK_SIDE = 16  # a silhouette smaller than this says nothing about a shape
BACKGROUND_TOLERANCE = 0.1  # colour distance (max over channels, in [0, 1]) from the background


class TargetError(ValueError):
    """A target cannot be used; ``str()`` is one line ``"<file>: <problem>"``."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {' '.join(str(problem).split())}")


class SilhouetteTarget:
    """Training views (``train``), held-out views (``heldout``, maybe empty) and their masks."""

    name: str
    train: Views
    heldout: Views | None

    def masks(self, which: str, size: int) -> torch.Tensor:
        """Masks ``[N, size, size]`` in [0, 1] of the ``"train"`` or ``"heldout"`` views."""
        raise NotImplementedError

    def binary_masks(self, which: str, size: int) -> torch.Tensor:
        """The evaluator's masks ``[N, size, size]`` bool: pixels whose coverage is more than half
        (for masks given as coverage fractions; a mesh target samples each pixel's centre)."""
        return self.masks(which, size) > 0.5


def normalize_to_ball(vertices: np.ndarray, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray, float]:
    """``vertices [V, 3]`` centred (the bounding box's middle, as in ``mesh.box_normalization``) and
    scaled so that the farthest vertex is at ``radius`` (not the box's [-1, 1]: a ball stays inside
    every view at the same distance); returns ``(normalised vertices [V, 3] float32, centre [3]
    float64, scale)`` with normalised = (v - centre) * scale. A one-point mesh is only moved."""
    v = np.asarray(vertices, np.float64)
    centre, _ = box_normalization(v)
    farthest = float(np.linalg.norm(v - centre, axis=1).max())
    scale = (1.0 / farthest if farthest > 0 else 1.0) * radius
    return ((v - centre) * scale).astype(np.float32), centre, scale


class MeshTarget(SilhouetteTarget):
    """Silhouettes of a mesh, normalised into the unit ball (so that it stays in every view at the
    paper's distance; ``normalize=False`` keeps it as given), seen from the training and held-out
    views. Rendered with back faces filled (open meshes show no holes)."""

    def __init__(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        name: str,
        train: Views,
        heldout: Views | None,
        device,
        normalize: bool = True,
    ):
        if normalize:
            normalised, self.centre, self.scale = normalize_to_ball(vertices)
        else:
            normalised, self.centre, self.scale = np.asarray(vertices, np.float32), np.zeros(3), 1.0
        self.name = name
        self.device = torch.device(device)
        self.vertices = torch.tensor(normalised, device=self.device)
        self.faces = torch.tensor(np.asarray(faces, np.int64), device=self.device)
        self.train = train.to(self.device)
        self.heldout = heldout.to(self.device) if heldout is not None and len(heldout) else None
        self._cache: dict = {}

    def masks(self, which: str, size: int) -> torch.Tensor:
        key = (which, size)
        if key not in self._cache:
            views = self.train if which == "train" else self.heldout
            with torch.no_grad():
                self._cache[key] = render_silhouettes(self.vertices, self.faces, views, size, fill_back=True)
        return self._cache[key]

    def binary_masks(self, which: str, size: int) -> torch.Tensor:
        """Pixels whose centre the target's silhouette covers ``[N, size, size]`` bool (no anti-aliasing:
        unbiased, unlike a threshold on 2×2 samples; see :mod:`meshopt_cli.optimize.evaluate`)."""
        key = (which, size, "binary")
        if key not in self._cache:
            views = self.train if which == "train" else self.heldout
            with torch.no_grad():
                masks = render_silhouettes(self.vertices, self.faces, views, size, fill_back=True, anti_aliasing=False)
            self._cache[key] = masks > 0.5
        return self._cache[key]


def mesh_target(source: str, views: int, heldout: int, device) -> MeshTarget:
    """Load ``source`` (a mesh file or ``builtin:NAME``; MeshError when bad) as a target."""
    from meshopt_cli.mesh import load_mesh

    mesh = load_mesh(source, textures=False)
    target = MeshTarget(
        mesh.vertices, mesh.faces, mesh.name, training_views(views), heldout_views(views, heldout) if heldout else None, device
    )
    if not bool((target.masks("train", 32) > 0).any()):
        raise TargetError(source, "has no visible silhouette (its faces have no area)")
    return target


# ----------------------------------------------------------------------------- images


def mask_of(rgb: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, str]:
    """The mask ``[H, W]`` of an image (``rgb [H, W, 3]``, ``alpha [H, W]`` or None, in [0, 1]):
    its alpha when not fully opaque, else the pixels that differ from the median border colour by
    more than ``BACKGROUND_TOLERANCE``; and what an empty one would mean."""
    if alpha is not None and (alpha < 1.0).any():
        return alpha.astype(np.float32), "alpha is 0 everywhere"
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    background = np.median(border, axis=0)
    return (np.abs(rgb - background).max(-1) > BACKGROUND_TOLERANCE).astype(np.float32), "every pixel has the background colour"


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """The mask ``[H, W]`` float32 in [0, 1] of an image: its alpha channel when it has one that is
    not fully opaque, else the pixels that differ from the background colour (the median colour of the
    image border) by more than ``BACKGROUND_TOLERANCE``. Square images only."""
    path = Path(path)
    try:
        data = read_image(local(path))  # local: where it is read (mesh/shipped.py)
    except ImageReadError as problem:
        raise TargetError(path, str(problem)) from None
    has_alpha = data.alpha is not None
    array = np.concatenate((data.rgb, data.alpha[..., None]), axis=-1) if has_alpha else data.rgb
    height, width = array.shape[:2]
    if height != width:
        raise TargetError(path, f"image is {width}x{height}; masks must be square (crop or pad it)")
    if width < MIN_MASK_SIDE:
        raise TargetError(path, f"image too small ({width}x{height} pixels; masks need at least {MIN_MASK_SIDE}x{MIN_MASK_SIDE})")
    mask, how = mask_of(data.rgb, data.alpha)
    if (mask > 0.5).sum() < MIN_MASK_PIXELS:
        raise TargetError(path, f"empty mask ({how})")
    return mask


def _number(value, where, key) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TargetError(where[0], f"{where[1]}: '{key}' must be a finite number, got {json.dumps(value)}")
    return float(value)


def _matrix(value, shape, where, key) -> np.ndarray:
    try:
        array = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.dtype == object or array.size != int(np.prod(shape)) or not np.isfinite(array).all():
        raise TargetError(
            where[0], f"{where[1]}: '{key}' must be {'x'.join(map(str, shape))} finite numbers, got {json.dumps(value)}"
        )
    return array.reshape(shape)


ANGLE_KEYS = {"azimuth", "elevation", "distance", "viewing_angle"}
MATRIX_KEYS = {"K", "R", "t", "dist_coeffs", "orig_size"}


def parse_camera(entry, where, image_size: int):
    """One camera of a cameras file -> ``("angles", (az, el, dist, angle))`` or ``("krt", (K, R, t, dist))``
    with K normalised to ``orig_size = 1`` (orig_size defaults to the image's size)."""
    if not isinstance(entry, dict):
        raise TargetError(
            where[0], f"{where[1]}: expected an object with azimuth/elevation/distance or K/R/t, got {json.dumps(entry)[:60]}"
        )
    keys = set(entry) - {"image", "name"}
    unknown = keys - ANGLE_KEYS - MATRIX_KEYS
    if unknown:
        raise TargetError(
            where[0],
            f"{where[1]}: unknown key '{sorted(unknown)[0]}' (use azimuth/elevation/distance"
            " [viewing_angle] or K/R/t [dist_coeffs, orig_size])",
        )
    if keys & ANGLE_KEYS and keys & MATRIX_KEYS:
        raise TargetError(where[0], f"{where[1]}: give either azimuth/elevation/distance or K/R/t, not both")
    if keys & {"K", "R", "t"}:
        missing = [k for k in ("K", "R", "t") if k not in entry]
        if missing:
            raise TargetError(where[0], f"{where[1]}: '{missing[0]}' is missing (K, R and t go together)")
        K = _matrix(entry["K"], (3, 3), where, "K")
        R = _matrix(entry["R"], (3, 3), where, "R")
        t = _matrix(entry["t"], (3,), where, "t")
        dist = _matrix(entry.get("dist_coeffs", [0.0] * 5), (5,), where, "dist_coeffs")
        orig_size = _number(entry.get("orig_size", image_size), where, "orig_size")
        if orig_size <= 0:
            raise TargetError(where[0], f"{where[1]}: 'orig_size' must be positive")
        K = K.copy()
        K[:2] /= orig_size
        return "krt", (K, R, t, dist)
    if "azimuth" not in entry:
        raise TargetError(where[0], f"{where[1]}: needs azimuth (and elevation, distance) or K/R/t")
    azimuth = _number(entry["azimuth"], where, "azimuth")
    elevation = _number(entry.get("elevation", ELEVATION), where, "elevation")
    distance = _number(entry.get("distance", DISTANCE), where, "distance")
    angle = _number(entry.get("viewing_angle", VIEWING_ANGLE), where, "viewing_angle")
    if distance <= 0:
        raise TargetError(where[0], f"{where[1]}: 'distance' must be positive")
    if not 0 < angle < 90:
        raise TargetError(where[0], f"{where[1]}: 'viewing_angle' must be in (0, 90) degrees")
    return "angles", (azimuth, elevation, distance, angle)


def read_cameras(path: str | os.PathLike, images: list[Path], sizes: list[int]) -> Views:
    """The cameras of ``images`` from a JSON file: a list with one entry per image (in order), an
    object ``{"cameras": [...]}``, or an object mapping image file names to entries. An entry is
    ``{"azimuth", "elevation", "distance"}`` (degrees; elevation 30 and distance ``DISTANCE``, 2.732, when left out;
    optional "viewing_angle", 30) or ``{"K": 3x3, "R": 3x3, "t": 3}`` (optional "dist_coeffs" (5) and
    "orig_size", the image size K refers to, default the image's width)."""
    path, disk = Path(path), local(path)
    if not disk.exists():
        raise TargetError(path, "no such file")
    try:
        data = json.loads(disk.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetError(path, f"cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise TargetError(path, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if isinstance(data, dict) and isinstance(data.get("cameras"), list):
        data = data["cameras"]
    if isinstance(data, list):
        if len(data) != len(images):
            raise TargetError(
                path,
                f"{len(data)} camera{'s' if len(data) != 1 else ''} for {len(images)} image{'s' if len(images) != 1 else ''} "
                "(give one camera per image, in the images' order)",
            )
        entries = data
    elif isinstance(data, dict):
        entries = []
        for image in images:
            for key in (str(image), image.name, image.stem):
                if key in data:
                    entries.append(data[key])
                    break
            else:
                raise TargetError(
                    path, f"no camera for {image.name} (keys: {', '.join(list(data)[:5])}{', ...' if len(data) > 5 else ''})"
                )
    else:
        raise TargetError(path, "expected a list of cameras (one per image) or an object keyed by image name")
    parsed = [parse_camera(entry, (path, f"camera {k + 1} ({images[k].name})"), sizes[k]) for k, entry in enumerate(entries)]
    return views_from_cameras(parsed, [image.name for image in images])


def views_from_cameras(parsed, labels) -> Views:
    """Parsed cameras (see :func:`parse_camera`) -> one :class:`Views` (projection when mixed)."""
    groups = []
    for (kind, values), label in zip(parsed, labels):
        if kind == "angles":
            az, el, d, angle = values
            groups.append(angle_views([az], [el], [d], angle, labels=[label]))
        else:
            K, R, t, dist = (torch.tensor(x, dtype=torch.float32)[None] for x in values)
            groups.append(Views(K=K, R=R, t=t, dist=dist, labels=[label]))
    return Views.concat(groups)


class ImageTarget(SilhouetteTarget):
    """Masks from image files with known cameras; every ``holdout``-th image (evenly spread) is kept
    out of training for evaluation when ``holdout > 0``."""

    def __init__(self, masks: list[np.ndarray], views: Views, name: str, holdout: int, device):
        self.name = name
        self.device = torch.device(device)
        count = len(masks)
        held = sorted({int(round((k + 0.5) * count / holdout)) % count for k in range(holdout)}) if holdout else []
        keep = [k for k in range(count) if k not in held]
        self._masks = {"train": [masks[k] for k in keep], "heldout": [masks[k] for k in held]}
        self.train = views.subset(keep).to(self.device)
        self.heldout = views.subset(held).to(self.device) if held else None
        self._cache: dict = {}

    def masks(self, which: str, size: int) -> torch.Tensor:
        key = (which, size)
        if key not in self._cache:
            out = []
            for mask in self._masks[which]:
                m = torch.from_numpy(mask)[None, None]
                mode = "area" if m.shape[-1] >= size else "bilinear"
                resized = F.interpolate(m, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))
                out.append(resized[0, 0].clamp(0, 1))
            self._cache[key] = torch.stack(out).to(self.device)
        return self._cache[key]


def image_target(
    images: list[str],
    cameras: str | None,
    name: str,
    device,
    holdout: int = 0,
    azimuth: float | None = None,
    elevation: float | None = None,
    distance: float | None = None,
) -> ImageTarget:
    """Masks of ``images`` with the cameras of the JSON file ``cameras``, or (one image) the camera at
    ``azimuth``/``elevation``/``distance`` (0, 30 and ``DISTANCE``, 2.732, when None)."""
    paths = [Path(p) for p in images]
    masks = [load_mask(p) for p in paths]
    if cameras is not None:
        views = read_cameras(cameras, paths, [m.shape[0] for m in masks])
    else:
        if len(paths) != 1:
            raise TargetError(
                paths[0],
                f"{len(paths)} images need a cameras file (--cameras cams.json); "
                "--azimuth/--elevation/--distance describe one image",
            )
        views = angle_views(
            [azimuth or 0.0],
            [ELEVATION if elevation is None else elevation],
            [DISTANCE if distance is None else distance],
            labels=[paths[0].name],
        )
    if holdout >= len(paths):
        raise TargetError(paths[0], f"--holdout {holdout} leaves no image to fit ({len(paths)} images)")
    return ImageTarget(masks, views, name, holdout, device)
