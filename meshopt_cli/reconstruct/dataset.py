"""The paper's reconstruction dataset: per class and split, ``{class}_{split}_images.npz`` and
``{class}_{split}_voxels.npz``, as the reference code's loader reads them.

What the files hold (checked against the reference's writer and loader; docs/design.md):

* ``images``: uint8 ``[N, 24, 4, S, S]`` (S = 64), one NumPy array stored as the archive's only
  member ``arr_0`` (``np.savez_compressed(path, array)``; the loader takes the first member
  whatever its name). Axis 1 is the view, axis 2 the channels: RGB **inverted** (255 × (1 − the
  image composited on white), so the background is 0) and the alpha mask. Rows run top to bottom.
* view ``k`` is the camera at distance 2.732, elevation 30° and, in the renderer's
  ``get_points_from_angles`` convention, azimuth **−15°·k** (the files were rendered at +15°·k in
  Blender; the loader negates it); the silhouettes are drawn with a 15° viewing angle.
* ``voxels``: bool ``[N, 32, 32, 32]``, member ``arr_0``, conservative (every cell the surface
  passes through, and the inside), in the frame the reference's evaluation compares against: ``voxels[i, j, k]`` is the cell at ``y = c(i), x = c(j), z = c(31 − k)`` with
  cell centres ``c(n) = (n + 0.5 − 16) / 31``, i.e. the box ``[-16/31, 16/31]³`` around meshes
  normalized into ``[-0.5, 0.5]³``.

Meshes are normalized as ShapeNet's are: centred on their bounding box, whose diagonal is 1.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from meshopt_cli.defaults import DEFAULT_DISTANCE

VIEWS = 24
ELEVATION = 30.0
DISTANCE = DEFAULT_DISTANCE  # 2.732, the paper's
AZIMUTH_STEP = 15.0  # view k: azimuth -15 k degrees (get_points_from_angles)
VIEWING_ANGLE = 15.0
IMAGE_SIZE = 64
VOXEL_SIZE = 32
SPLITS = ("train", "val", "test")
_FILE = re.compile(r"^(?P<cls>.+)_(?P<split>train|val|test)_images\.npz$")


# ---------------------------------------------------------------- geometry of the format


def view_eyes(view_ids, device=None) -> torch.Tensor:
    """Camera positions ``[B, 3]`` of views ``view_ids`` (ints 0..23)."""
    from meshopt_cli.render import get_points_from_angles

    ids = torch.as_tensor(view_ids, dtype=torch.float32).reshape(-1)
    n = ids.shape[0]
    eyes = get_points_from_angles(torch.full((n,), DISTANCE), torch.full((n,), ELEVATION), -AZIMUTH_STEP * ids)
    return eyes.to(device) if device is not None else eyes


def silhouette_renderer(image_size: int = IMAGE_SIZE):
    """The renderer of the format's images (and of training): 15° viewing angle, anti-aliased."""
    from meshopt_cli.render import Renderer

    return Renderer(image_size=image_size, anti_aliasing=True, viewing_angle=VIEWING_ANGLE)


def normalize_mesh(vertices) -> np.ndarray:
    """``vertices [V, 3]`` centred on their bounding box, scaled to a box diagonal of 1 (ShapeNet's)."""
    v = np.asarray(vertices, np.float64)
    lo, hi = v.min(0), v.max(0)
    diagonal = float(np.linalg.norm(hi - lo))
    return (v - (lo + hi) / 2) / (diagonal if diagonal > 0 else 1.0)


def voxel_axis(size: int = VOXEL_SIZE) -> np.ndarray:
    """Cell centres along one axis of the format's grid: ``(n + 0.5 - size/2) / (size - 1)``."""
    return (np.arange(size) + 0.5 - size / 2) / (size - 1)


def to_format_frame(occupancy: np.ndarray) -> np.ndarray:
    """Occupancy indexed ``[x, y, z]`` on :func:`voxel_axis` -> the format's ``[y, x, reversed z]``."""
    return np.ascontiguousarray(np.asarray(occupancy).transpose(1, 0, 2)[:, :, ::-1])


def mesh_voxels(vertices, faces, size: int = VOXEL_SIZE) -> np.ndarray:
    """bool ``[size]³`` in the format's frame of a closed mesh in normalized coordinates, counted
    as the reference voxelizer counts: every cell the surface passes through, and the cells whose
    centre lies inside (winding number, robust to self-overlap; :mod:`meshopt_cli.optimize.voxels`)."""
    from meshopt_cli.optimize.voxels import surface_cells, voxelize

    axis = voxel_axis(size)
    v, f = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    occupancy = voxelize(v, f, (axis, axis, axis), rule="nonzero") | surface_cells(v, f, (axis, axis, axis))
    return to_format_frame(occupancy)


def render_object(vertices, faces, image_size: int = IMAGE_SIZE, device=None) -> np.ndarray:
    """The 24 views of one normalized mesh as the format stores them: uint8 ``[24, 4, S, S]``
    (inverted shaded grey RGB composited on white, then the alpha mask)."""
    device = device or torch.device("cpu")
    renderer = silhouette_renderer(image_size).to(device)
    renderer.eye = view_eyes(range(VIEWS), device)
    renderer.light_direction = (0.0, 1.0, 0.0)
    v = torch.as_tensor(np.asarray(vertices, np.float32), device=device)[None].expand(VIEWS, -1, -1)
    f = torch.as_tensor(np.asarray(faces, np.int64), device=device)[None].expand(VIEWS, -1, -1)
    textures = torch.full((VIEWS, f.shape[1], 1, 1, 1, 3), 0.7, device=device)
    with torch.no_grad():
        rgb, _, alpha = renderer(v, f, textures)
    rgb, alpha = rgb.clamp(0, 1), alpha.clamp(0, 1)[:, None]
    on_white = rgb * alpha + (1 - alpha)
    images = torch.cat((1 - on_white, alpha), 1)  # the reference's `image = 1 - image`
    return (images * 255).to(torch.uint8).cpu().numpy()  # truncated, as the reference's astype('uint8')


# ---------------------------------------------------------------- files


def write_array(path: str | Path, array: np.ndarray) -> Path:
    """``array`` as a compressed ``.npz`` whose only member is ``arr_0`` (what
    ``np.savez_compressed(path, array)`` writes), with a fixed timestamp so that the same data
    give the same bytes; written atomically."""
    from meshopt_cli.mesh.atomic import atomic_write_bytes

    payload = io.BytesIO()
    np.lib.format.write_array(payload, np.ascontiguousarray(array), allow_pickle=False)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("arr_0.npy", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, payload.getvalue())
    return atomic_write_bytes(Path(path), archive.getvalue())


def read_array(path: str | Path) -> np.ndarray:
    """The first array of an ``.npz`` (the reference loader's ``np.load(path).items()[0][1]``);
    a one-line ValueError for a file that is not one."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if not data.files:
                raise ValueError("it holds no array")
            return data[data.files[0]]
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as problem:
        raise ValueError(f"{path}: not a readable .npz ({' '.join(str(problem).split())[:200]})") from None


def split_paths(directory: str | Path, class_id: str, split: str) -> tuple[Path, Path]:
    directory = Path(directory)
    return directory / f"{class_id}_{split}_images.npz", directory / f"{class_id}_{split}_voxels.npz"


def write_split(directory: str | Path, class_id: str, split: str, images: np.ndarray, voxels: np.ndarray) -> list[Path]:
    """The two files of one class and split (shapes and dtypes checked)."""
    images, voxels = np.asarray(images), np.asarray(voxels)
    if images.dtype != np.uint8 or images.ndim != 5 or images.shape[1:3] != (VIEWS, 4):
        raise ValueError(f"images must be uint8 [N, {VIEWS}, 4, S, S], got {images.dtype} {list(images.shape)}")
    if voxels.dtype != np.bool_ or voxels.ndim != 4 or len(voxels) != len(images):
        raise ValueError(f"voxels must be bool [N, 32, 32, 32] with N = {len(images)}, got {voxels.dtype} {list(voxels.shape)}")
    Path(directory).mkdir(parents=True, exist_ok=True)
    image_path, voxel_path = split_paths(directory, class_id, split)
    return [write_array(image_path, images), write_array(voxel_path, voxels)]


def classes_in(directory: str | Path, split: str) -> list[str]:
    """The class ids that have an images file of ``split`` in ``directory``, sorted."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory}: no such folder")
    found = sorted(m["cls"] for p in directory.iterdir() if (m := _FILE.match(p.name)) and m["split"] == split)
    return found


def split_bytes(directory: str | Path, split: str, classes: list[str] | None = None) -> int:
    """What :func:`load_split` will hold in memory (the arrays' uncompressed sizes, read from the
    archives' directories without decompressing); 0 for files it cannot read (it reports those)."""
    total = 0
    for class_id in classes or classes_in(directory, split):
        for path in split_paths(directory, class_id, split):
            try:
                with zipfile.ZipFile(path) as archive:
                    total += sum(info.file_size for info in archive.infolist())
            except (OSError, zipfile.BadZipFile):
                pass
    return total


@dataclass
class Split:
    """One split of a dataset, all classes: ``images`` uint8 ``[N, 24, 4, S, S]``, ``voxels`` bool
    ``[N, 32, 32, 32]``, ``labels`` int ``[N]`` (index into ``classes``)."""

    classes: list[str]
    images: np.ndarray
    voxels: np.ndarray
    labels: np.ndarray

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def of_class(self, index: int) -> np.ndarray:
        return np.flatnonzero(self.labels == index)


def load_split(directory: str | Path, split: str, classes: list[str] | None = None) -> Split:
    """Read every class (or ``classes``) of ``split``; one-line ValueErrors for missing or
    malformed files."""
    classes = list(classes) if classes else classes_in(directory, split)
    if not classes:
        raise ValueError(f"{directory}: no *_{split}_images.npz files (make some with 'meshopt reconstruct dataset')")
    images, voxels, labels = [], [], []
    size = None
    for index, class_id in enumerate(classes):
        image_path, voxel_path = split_paths(directory, class_id, split)
        im, vox = read_array(image_path), read_array(voxel_path)
        if im.dtype != np.uint8 or im.ndim != 5 or im.shape[1:3] != (VIEWS, 4) or im.shape[3] != im.shape[4]:
            raise ValueError(f"{image_path}: expected uint8 [N, 24, 4, S, S], found {im.dtype} {list(im.shape)}")
        if vox.ndim != 4 or vox.shape[1:] != (VOXEL_SIZE,) * 3 or len(vox) != len(im):
            raise ValueError(f"{voxel_path}: expected [{len(im)}, 32, 32, 32] voxels, found {list(vox.shape)}")
        if size is not None and im.shape[-1] != size:
            raise ValueError(f"{image_path}: images of {im.shape[-1]} px, the other classes have {size} px")
        size = im.shape[-1]
        images.append(im)
        voxels.append(vox.astype(bool))
        labels.append(np.full(len(im), index, np.int64))
    return Split(classes, np.concatenate(images), np.concatenate(voxels), np.concatenate(labels))


def split_objects(count: int, fractions: tuple[float, float, float], seed: int) -> dict[str, np.ndarray]:
    """Object indices ``0..count-1`` shuffled with ``seed`` and cut into train/val/test by
    ``fractions`` (each split of a class with 3+ objects gets at least one)."""
    order = np.random.default_rng(seed).permutation(count)
    total = sum(fractions)
    n_val = int(round(count * fractions[1] / total))
    n_test = int(round(count * fractions[2] / total))
    if count >= 3:
        n_val, n_test = max(n_val, 1 if fractions[1] else 0), max(n_test, 1 if fractions[2] else 0)
    n_train = count - n_val - n_test
    return {
        "train": np.sort(order[:n_train]),
        "val": np.sort(order[n_train : n_train + n_val]),
        "test": np.sort(order[n_train + n_val :]),
    }
