"""The evaluator's binary masks are unbiased: a disc of known area keeps its area on average."""

import math

import numpy as np
import torch

from meshopt_cli.optimize.evaluate import view_ious
from meshopt_cli.optimize.targets import MeshTarget
from meshopt_cli.optimize.views import DISTANCE, VIEWING_ANGLE, angle_views, render_silhouettes

SIZE = 128
SEGMENTS = 720


def disc(radius, centre):
    """A flat regular polygon of SEGMENTS sides facing the default camera (z = 0), and its area in pixels."""
    t = np.linspace(0, 2 * np.pi, SEGMENTS, endpoint=False)
    rim = np.stack([radius * np.cos(t) + centre[0], radius * np.sin(t) + centre[1], 0 * t], 1)
    vertices = np.concatenate([[[centre[0], centre[1], 0.0]], rim]).astype(np.float32)
    faces = np.array([[0, 1 + k, 1 + (k + 1) % SEGMENTS] for k in range(SEGMENTS)])
    area = SEGMENTS / 2 * radius**2 * math.sin(2 * math.pi / SEGMENTS)  # world units, at depth DISTANCE
    pixels = area / (DISTANCE * math.tan(math.radians(VIEWING_ANGLE))) ** 2 / (2 / SIZE) ** 2
    return torch.tensor(vertices), torch.tensor(faces), pixels


def test_centre_sampled_masks_keep_a_discs_area_and_thresholded_2x2_masks_shrink_it():
    rng = np.random.default_rng(0)
    views = angle_views([0.0], [0.0], [DISTANCE])
    centre_errors, threshold_errors = [], []
    for _ in range(12):  # random sub-pixel placements and sizes
        vertices, faces, pixels = disc(rng.uniform(0.3, 0.6), rng.uniform(-0.05, 0.05, 2))
        binary = render_silhouettes(vertices, faces, views, SIZE, anti_aliasing=False)
        assert set(binary.unique().tolist()) <= {0.0, 1.0}
        centre_errors.append(float(binary.sum()) / pixels - 1)
        threshold_errors.append(float((render_silhouettes(vertices, faces, views, SIZE) > 0.5).sum()) / pixels - 1)
    assert abs(np.mean(centre_errors)) < 0.003, centre_errors  # unbiased: the errors average out
    assert max(abs(e) for e in centre_errors) < 0.015, centre_errors
    assert np.mean(threshold_errors) < -0.008 and max(threshold_errors) < 0, threshold_errors  # the old rule's bias


def test_a_mesh_scores_iou_one_against_itself_with_the_binary_rule():
    vertices, faces, _ = disc(0.5, (0.01, 0.02))
    target = MeshTarget(
        vertices.numpy(),
        faces.numpy(),
        "disc",
        angle_views([0.0, 20.0], [0.0, 10.0], [DISTANCE] * 2),
        None,
        "cpu",
        normalize=False,
    )
    assert view_ious(vertices, faces, target, "train", SIZE) == [1.0, 1.0]
    shrunk = vertices * 0.97
    assert all(iou < 0.96 for iou in view_ious(shrunk, faces, target, "train", SIZE))
