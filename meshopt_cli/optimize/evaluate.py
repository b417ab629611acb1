"""Figures of a fit: silhouette IoU on the training and held-out views, voxel IoU at 32³.

Silhouette IoUs compare binary masks made by :data:`MASK_RULE`: a pixel belongs to a mesh's mask
when the silhouette covers the pixel's *centre* (the fitted mesh and a mesh target are rendered
without anti-aliasing). Point sampling at the centres gives on average the true area: the mask of
the complement of a shape is the complement of its mask, so pixels lost on one side of an edge are
won on the other. Thresholding the renderer's 2×2 anti-aliased alpha at 0.5 (the former rule) needs
three of four samples and shrinks every silhouette by about a quarter of a pixel along its outline
(``tests/test_fit_evaluate.py`` measures both on a disc of known area). Image targets' masks are
coverage fractions resampled to the evaluation size; their pixels count when covered more than half.
"""

from __future__ import annotations

import numpy as np
import torch

from meshopt_cli.optimize.losses import silhouette_iou
from meshopt_cli.optimize.targets import MeshTarget, SilhouetteTarget
from meshopt_cli.optimize.views import render_silhouettes
from meshopt_cli.optimize.voxels import is_watertight, voxel_iou

MASK_RULE = "pixel centre inside the silhouette (no anti-aliasing); image masks: coverage > 0.5"


def view_ious(
    vertices: torch.Tensor, faces: torch.Tensor, target: SilhouetteTarget, which: str, size: int, fill_back: bool = True
) -> list[float]:
    """IoU of the binary silhouettes (:data:`MASK_RULE`) of the mesh and of the target, per view."""
    views = target.train if which == "train" else target.heldout
    if views is None or len(views) == 0:
        return []
    with torch.no_grad():
        fitted = render_silhouettes(vertices, faces, views, size, fill_back=fill_back, anti_aliasing=False)
        return silhouette_iou(fitted, target.binary_masks(which, size).float()).tolist()


def evaluate(vertices: torch.Tensor, faces: torch.Tensor, target: SilhouetteTarget, size: int, fill_back: bool = True) -> dict:
    """``{"train_iou", "heldout_iou", "train_ious", "heldout_ious", "voxel_iou", "voxel_iou_note"}``;
    means are None where a set is empty; voxel IoU only for mesh targets when both meshes are closed."""
    train = view_ious(vertices, faces, target, "train", size, fill_back)
    heldout = view_ious(vertices, faces, target, "heldout", size, fill_back)
    figures = {
        "train_iou": float(np.mean(train)) if train else None,
        "heldout_iou": float(np.mean(heldout)) if heldout else None,
        "train_ious": [round(x, 4) for x in train],
        "heldout_ious": [round(x, 4) for x in heldout],
        "voxel_iou": None,
        "voxel_iou_note": None,
    }
    if not isinstance(target, MeshTarget):
        figures["voxel_iou_note"] = "no target mesh (image target)"
        return figures
    fitted_v, fitted_f = vertices.detach().cpu().numpy(), faces.cpu().numpy()
    target_v, target_f = target.vertices.cpu().numpy(), target.faces.cpu().numpy()
    if not is_watertight(target_v, target_f):
        figures["voxel_iou_note"] = "target mesh is not watertight"
    elif not is_watertight(fitted_v, fitted_f):
        figures["voxel_iou_note"] = "fitted mesh is not watertight"
    else:
        figures["voxel_iou"] = voxel_iou(fitted_v, fitted_f, target_v, target_f, resolution=32)
    return figures


# A finished run whose numbers stayed finite still failed when its vertices left the frame by far
# (meshes and targets fit in [-1, 1]; the cameras sit at about 2.7) or, for a fit, its training
# IoU collapsed (the template starts well above it): the learning rates were too high for the loop.
DIVERGED_REACH = 10.0
COLLAPSED_IOU = 0.05


def divergence(vertices, train_iou: float | None = None) -> str | None:
    """Why a run that ended with finite numbers diverged (``vertices [V, 3]`` in the normalised
    frame; ``train_iou`` for fits), or None when it did not."""
    reach = float(vertices.abs().max()) if vertices.numel() else 0.0
    if reach > DIVERGED_REACH:
        return f"the run diverged: vertices reached {reach:.3g} units from the centre (the mesh fits in [-1, 1])"
    if train_iou is not None and train_iou < COLLAPSED_IOU:
        return f"the fit diverged: its train IoU fell to {train_iou:.3f}"
    return None
