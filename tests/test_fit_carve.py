"""Carving (meshopt_cli/optimize/carve.py): faces outside the target's silhouettes go, a fit opens a hole."""

import numpy as np
import torch

from meshopt_cli.commands.fit import FitSettings
from meshopt_cli.mesh import builtin_shape
from meshopt_cli.optimize.carve import CARVE_IMAGE_SIZE, faces_outside_silhouettes, without_faces
from meshopt_cli.optimize.evaluate import evaluate
from meshopt_cli.optimize.fit import fit
from meshopt_cli.optimize.targets import MeshTarget, normalize_to_ball
from meshopt_cli.optimize.views import heldout_views, training_views


def sphere(level=2, radius=1.0, centre=(0.0, 0.0, 0.0)):
    v, f = builtin_shape(f"builtin:sphere:{level}")
    return torch.tensor(v * radius + np.array(centre, np.float32)), torch.tensor(f)


def test_only_the_faces_outside_every_view_of_the_target_are_flagged():
    body_v, body_f = sphere(2, 0.6)
    target = MeshTarget(body_v.numpy(), body_f.numpy(), "ball", training_views(12), None, "cpu", normalize=False)
    masks = target.binary_masks("train", CARVE_IMAGE_SIZE)
    # the target itself, and a slightly smaller copy, lose nothing
    for scale in (1.0, 0.97):
        assert not faces_outside_silhouettes(body_v * scale, body_f, target.train, masks, 3).any()
    # a detached lump beside the ball is outside the views that see it beside the ball: all of it goes
    lump_v, lump_f = sphere(1, 0.15, (1.0, 0.0, 0.0))
    vertices = torch.cat([body_v, lump_v])
    faces = torch.cat([body_f, lump_f + len(body_v)])
    flagged = faces_outside_silhouettes(vertices, faces, target.train, masks, 3)
    assert not flagged[: len(body_f)].any() and flagged[len(body_f) :].all()
    # a ball 10 % larger pokes out by about 0.06 (about 5 pixels at 256): its outer faces go
    grown = faces_outside_silhouettes(body_v * 1.1, body_f, target.train, masks, 3)
    assert 0 < int(grown.sum()) < len(body_f)
    # with a margin wider than the poke nothing goes
    assert not faces_outside_silhouettes(body_v * 1.1, body_f, target.train, masks, 12).any()


def test_removing_faces_drops_the_unused_vertices_and_keeps_the_rest_in_place():
    vertices, faces = sphere(1)
    remove = torch.zeros(len(faces), dtype=torch.bool)
    remove[:7] = True
    kept_v, kept_f = without_faces(vertices, faces, remove)
    assert len(kept_f) == len(faces) - 7
    assert len(kept_v) == len(torch.unique(faces[~remove]))  # every vertex left is used
    assert int(kept_f.max()) == len(kept_v) - 1
    assert torch.equal(kept_v[kept_f], vertices[faces[~remove]])  # the same triangles, renumbered


TORUS_FIT = dict(
    views=12, heldout_views=6, batch_views=6, image_size=64, affine_iterations=20, iterations=60, seed=0, edge=0.0, loss="mse",
    optimizer="largesteps", largesteps_lambda=5.0, learning_rate=0.05, final_learning_rate=0.005,
)  # fmt: skip


def ring_target():
    """The built-in torus stood up (axis z), so that the training views at 30° see through its hole."""
    v, f = builtin_shape("builtin:torus")
    v, f = v[:, [0, 2, 1]].copy(), f[:, [0, 2, 1]].copy()  # swapping two axes mirrors: the winding is swapped back
    return MeshTarget(v, f, "ring", training_views(12), heldout_views(12, 6), "cpu")


def test_carving_opens_the_hole_a_sphere_spans_across_a_ring():
    target = ring_target()
    v, f = builtin_shape("builtin:sphere:2")
    template = torch.tensor(normalize_to_ball(v)[0]), torch.tensor(f)
    plain = fit(*template, target, FitSettings(**TORUS_FIT))
    carved = fit(*template, target, FitSettings(**TORUS_FIT, carve_at=0.5, carve_lambda=3.0))
    assert plain.carved_at is None and plain.carved_faces == 0
    assert carved.carved_at == 30 and carved.carved_faces > 0 and carved.failure is None
    assert len(carved.faces) == len(f) - carved.carved_faces
    assert int(carved.faces.max()) < len(carved.vertices)
    assert len(carved.loss_curve) == 60
    before = evaluate(plain.vertices, plain.faces, target, 64, fill_back=True)["heldout_iou"]
    after = evaluate(carved.vertices, carved.faces, target, 64, fill_back=True)["heldout_iou"]
    assert after > before + 0.015, (before, after)  # measured: 0.915 -> 0.939


def test_a_convex_target_loses_no_face():
    v, f = builtin_shape("builtin:sphere:2")
    target = MeshTarget(v * np.array([1.0, 0.6, 0.4], np.float32), f, "ellipsoid", training_views(12), None, "cpu")
    template = torch.tensor(normalize_to_ball(v)[0]), torch.tensor(f)
    settings = FitSettings(**{**TORUS_FIT, "heldout_views": 0}, carve_at=0.5)
    result = fit(*template, target, settings)
    assert result.carved_at == 30 and result.carved_faces == 0 and len(result.faces) == len(f)
