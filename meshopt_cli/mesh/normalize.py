"""The frame every command works in: a mesh's bounding box centred at the origin and scaled so
that its longest side spans [-1, 1] (the paper's normalisation; the other sides stay shorter).

``box_normalization`` is the definition (numpy, float64, with the centre and scale that undo it);
``normalize_vertices`` is the same map computed with the reference implementation's float32 steps,
which ``load_obj`` keeps for bit-compatibility with the paper's loader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported on first use: ``import meshopt_cli.mesh`` stays light
    import torch


def box_normalization(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """``(centre, scale)`` that put ``vertices`` into the normalised frame:
    ``normalised = (vertices - centre) * scale`` and back ``vertices = normalised / scale + centre``.

    vertices: ``[V, 3]`` (V >= 1), any float dtype, in the mesh's own units (computed in float64).
    centre:   ``[3]`` float64, the middle of the bounding box, in the mesh's units.
    scale:    float, 2 / (longest side of the bounding box), per mesh unit; 1.0 for a mesh of one
              point (zero extent), which is then only moved to the origin.
    """
    v = np.asarray(vertices, np.float64)
    lo, hi = v.min(axis=0), v.max(axis=0)
    extent = float((hi - lo).max())
    return (lo + hi) / 2.0, (2.0 / extent if extent > 0 else 1.0)


def normalize_box(vertices: np.ndarray) -> np.ndarray:
    """``vertices [V, 3]`` in the normalised frame (see :func:`box_normalization`), ``[V, 3]`` float64."""
    centre, scale = box_normalization(vertices)
    return (np.asarray(vertices, np.float64) - centre) * scale


def normalize_vertices(vertices: "torch.Tensor") -> "torch.Tensor":
    """Map vertices ``[V, 3]`` (torch, float32) so that the longest bounding-box side spans [-1, 1]
    and the box is centred (:func:`box_normalization`'s map, to float32 rounding), with the
    reference implementation's exact float32 steps:
    ``v -= min(v); v /= max|v|; v *= 2; v -= max(v) / 2`` (min/max per axis except ``max|v|``).
    Returns a new tensor. A mesh of one point (zero extent) is only translated."""
    import torch

    v = vertices.clone()
    v -= v.min(0)[0][None, :]
    extent = torch.abs(v).max()
    if extent > 0:
        v /= extent
    v *= 2
    v -= v.max(0)[0][None, :] / 2
    return v
