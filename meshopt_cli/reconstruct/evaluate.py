"""The paper's evaluation: voxelize each predicted mesh at 32³ in the ground truth's frame and
compare it with the object's voxels; IoU per object and view, averaged per class, then over the
classes. Two baselines on the same split: *retrieval* (the voxels of the training object whose
image is nearest to the input) and *template* (the undeformed sphere the decoder starts from).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from meshopt_cli.reconstruct.dataset import VIEWS, Split, mesh_voxels
from meshopt_cli.reconstruct.model import Reconstructor, undeformed

RETRIEVAL_SIZE = 32  # retrieval compares alpha masks at this size


def grid_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of bool grids ``[..., X, Y, Z]`` (1 where both are empty)."""
    axes = (-3, -2, -1)
    inter = np.logical_and(a, b).sum(axes)
    union = np.logical_or(a, b).sum(axes)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


Predictor = Callable[[np.ndarray, np.ndarray], Sequence[tuple[np.ndarray, np.ndarray]]]


def model_predictor(model: Reconstructor, split: Split, device, batch_size: int = 64) -> Predictor:
    """``predict(objects, views)`` -> one ``(vertices, faces)`` per item, from the network."""
    from meshopt_cli.reconstruct.train import as_float_images

    faces = model.faces.cpu().numpy()

    def predict(objects: np.ndarray, views: np.ndarray):
        out = []
        with torch.no_grad():
            for first in range(0, len(objects), batch_size):
                chunk = slice(first, first + batch_size)
                images = as_float_images(split.images[objects[chunk], views[chunk]], model.image_size, device)
                vertices = model.reconstruct(images).cpu().numpy()
                out.extend((v, faces) for v in vertices)
        return out

    return predict


def voxel_ious(split: Split, predict: Predictor, views: Sequence[int] = range(VIEWS), progress=None) -> np.ndarray:
    """IoU ``[N, len(views)]`` of each object's predicted mesh from each view with its voxels."""
    views = list(views)
    ious = np.zeros((len(split.images), len(views)))
    for n in range(len(split.images)):
        meshes = predict(np.full(len(views), n), np.asarray(views))
        predicted = np.stack([mesh_voxels(v, f) for v, f in meshes])
        ious[n] = grid_iou(predicted, split.voxels[n][None])
        if progress is not None:
            progress(1)
    return ious


def template_ious(split: Split, views: int) -> np.ndarray:
    """IoU ``[N, views]`` of the undeformed template (the same for every view)."""
    vertices, faces = undeformed()
    grid = mesh_voxels(vertices.numpy(), faces.numpy())
    return np.repeat(grid_iou(grid[None], split.voxels)[:, None], views, axis=1)


def _masks(images: np.ndarray) -> torch.Tensor:
    """Alpha masks ``[M, R*R]`` float32 at the retrieval size, from uint8 ``[M, 4, S, S]``."""
    alpha = torch.as_tensor(images[:, 3:4]).float() / 255.0
    if alpha.shape[-1] != RETRIEVAL_SIZE:
        alpha = torch.nn.functional.interpolate(alpha, size=(RETRIEVAL_SIZE, RETRIEVAL_SIZE), mode="area")
    return alpha.flatten(1)


def retrieval_ious(split: Split, train: Split, views: Sequence[int] = range(VIEWS), chunk: int = 256) -> np.ndarray:
    """IoU ``[N, len(views)]`` of the voxels of the training object whose view (any of its 24) is
    nearest to the input view (L2 between alpha masks at 32²), with the input object's voxels."""
    views = list(views)
    library = _masks(train.images.reshape(-1, *train.images.shape[2:]))  # [Ntrain * 24, D]
    library_norm = (library**2).sum(1)
    owner = np.repeat(np.arange(len(train.images)), VIEWS)
    queries = split.images[:, views].reshape(-1, *split.images.shape[2:])
    nearest = np.empty(len(queries), np.int64)
    for first in range(0, len(queries), chunk):
        q = _masks(queries[first : first + chunk])
        distance = library_norm[None] - 2 * q @ library.T  # |q|² is the same for every candidate
        nearest[first : first + chunk] = owner[distance.argmin(1).numpy()]
    retrieved = train.voxels[nearest].reshape(len(split.images), len(views), *train.voxels.shape[1:])
    return grid_iou(retrieved, split.voxels[:, None])


def summarize(split: Split, results: dict[str, np.ndarray]) -> dict:
    """Per-class means (over objects and views) of each method's IoU ``[N, views]``, and their mean
    over the classes (the paper's figure)."""
    table: dict = {}
    for index, class_id in enumerate(split.classes):
        members = split.of_class(index)
        table[class_id] = {"objects": int(len(members))}
        for method, ious in results.items():
            table[class_id][method] = float(ious[members].mean()) if len(members) else float("nan")
    means = {method: float(np.mean([table[c][method] for c in split.classes])) for method in results}
    return {"classes": table, "mean": means}
