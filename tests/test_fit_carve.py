"""Carving (meshopt_cli/optimize/carve.py): faces across the holes of the silhouettes go, a fit opens a hole."""

import numpy as np
import torch

from meshopt_cli.commands.fit import FitSettings
from meshopt_cli.mesh import builtin_shape
from meshopt_cli.optimize.carve import (
    CARVE_IMAGE_SIZE,
    enclosed_background,
    faces_in_silhouette_holes,
    faces_to_carve,
    visible_faces,
    without_faces,
)
from meshopt_cli.optimize.evaluate import evaluate
from meshopt_cli.optimize.fit import fit
from meshopt_cli.optimize.targets import MeshTarget, normalize_to_ball
from meshopt_cli.optimize.views import heldout_views, render_silhouettes, training_views


def sphere(level=2, radius=1.0, centre=(0.0, 0.0, 0.0)):
    v, f = builtin_shape(f"builtin:sphere:{level}")
    return torch.tensor(v * radius + np.array(centre, np.float32)), torch.tensor(f)


def test_holes_are_the_background_the_silhouette_encloses():
    masks = torch.zeros(1, 9, 9, dtype=torch.bool)
    masks[0, 2:7, 2:7] = True
    masks[0, 4, 4] = False  # a hole
    masks[0, 3:6, 6] = False  # a notch open to the right: background, not a hole
    holes = enclosed_background(masks)
    assert holes[0, 4, 4] and int(holes.sum()) == 1


def ring_target(views=12, heldout=6):
    """The built-in torus stood up (axis z), so that the training views at 30° see through its hole."""
    v, f = builtin_shape("builtin:torus")
    v, f = v[:, [0, 2, 1]].copy(), f[:, [0, 2, 1]].copy()  # swapping two axes mirrors: the winding is swapped back
    return MeshTarget(v, f, "ring", training_views(views), heldout_views(views, heldout) if heldout else None, "cpu")


def test_faces_across_a_hole_are_flagged_and_faces_beside_a_silhouette_are_not():
    target = ring_target(12, 0)
    masks = target.binary_masks("train", CARVE_IMAGE_SIZE)
    ring_v, ring_f = target.vertices, target.faces
    assert not faces_in_silhouette_holes(ring_v, ring_f, target.train, masks, 2).any()  # the target itself
    # a disc spanning the hole (a web) is flagged; a lump beside the ring, outside every silhouette
    # but not in a hole, is not (a fit that has not converged sticks out like that)
    web_v, web_f = sphere(1, 1.0)
    web_v = web_v * torch.tensor([0.25, 0.25, 0.02])
    lump_v, lump_f = sphere(1, 0.1, (0.0, 1.3, 0.0))
    vertices = torch.cat([ring_v, web_v, lump_v])
    faces = torch.cat([ring_f, web_f + len(ring_v), lump_f + len(ring_v) + len(web_v)])
    flagged = faces_in_silhouette_holes(vertices, faces, target.train, masks, 2)
    ring, web = len(ring_f), len(ring_f) + len(web_f)
    assert not flagged[:ring].any() and flagged[ring:web].float().mean() > 0.5 and not flagged[web:].any()
    # a margin wider than the hole's radius flags nothing
    assert not faces_in_silhouette_holes(vertices, faces, target.train, masks, 40).any()


def test_visible_faces_cover_the_silhouette_and_name_faces_exactly():
    target = ring_target(4, 0)
    near_v, near_f = sphere(1, 0.3, (0.0, 0.0, 0.0))
    vertices, faces = torch.cat([target.vertices, near_v]), torch.cat([target.faces, near_f + len(target.vertices)])
    seen = visible_faces(vertices, faces, target.train, 64)
    alpha = render_silhouettes(vertices, faces, target.train, 64, fill_back=True, anti_aliasing=False)
    assert torch.equal(seen >= 0, alpha > 0.5) and int(seen.max()) < len(faces)
    # the ball in the ring's hole is seen: indices past the ring's (the higher ones, which an inexact
    # colour would blur first) come back as whole face indices
    assert bool((seen >= len(target.faces)).any()) and set(seen.unique().tolist()) <= set(range(-1, len(faces)))


def test_a_web_is_carved_only_where_the_surface_behind_it_covers_the_target():
    target = ring_target(12, 0)
    masks = target.binary_masks("train", CARVE_IMAGE_SIZE)
    web_v, web_f = sphere(1, 1.0)
    web_v = web_v * torch.tensor([0.25, 0.25, 0.02])
    vertices = torch.cat([target.vertices, web_v])
    faces = torch.cat([target.faces, web_f + len(target.vertices)])
    carved = faces_to_carve(vertices, faces, target.train, masks, 3)
    flagged = faces_in_silhouette_holes(vertices, faces, target.train, masks, 3)
    ring = len(target.faces)
    assert not (carved & ~flagged).any()  # carving only ever narrows the hole rule
    assert not carved[:ring].any() and int(carved[ring:].sum()) > 0.8 * len(web_f)  # measured: 76 of 80
    # the same web alone (a fit far from done) is all in the hole, but the side views see it over
    # the ring's own pixels, and with nothing else drawn there its removal would uncover them: it stays
    assert faces_in_silhouette_holes(web_v, web_f, target.train, masks, 3).all()
    assert not faces_to_carve(web_v, web_f, target.train, masks, 3).any()


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
    assert after > before + 0.008, (before, after)  # measured: 0.915 -> 0.927 (29 faces)


def test_a_convex_target_loses_no_face():
    v, f = builtin_shape("builtin:sphere:2")
    target = MeshTarget(v * np.array([1.0, 0.6, 0.4], np.float32), f, "ellipsoid", training_views(12), None, "cpu")
    template = torch.tensor(normalize_to_ball(v)[0]), torch.tensor(f)
    settings = FitSettings(**{**TORUS_FIT, "heldout_views": 0}, carve_at=0.5)
    result = fit(*template, target, settings)
    assert result.carved_at == 30 and result.carved_faces == 0 and len(result.faces) == len(f)


def test_a_short_fit_of_a_shape_without_holes_keeps_every_face():
    """Half-way through 20 iterations the sphere still sticks out of the cube's silhouettes; the
    rule that carved any face outside them removed 531 of 1280 faces here."""
    from meshopt_cli.commands.fit import load_template
    from meshopt_cli.optimize.targets import mesh_target

    target = mesh_target("builtin:cube", 24, 0, "cpu")
    template = load_template("builtin:sphere", 1.0, torch.device("cpu"))[:2]
    settings = FitSettings(views=24, heldout_views=0, batch_views=8, image_size=64, iterations=20, carve_at=0.5, seed=0)
    result = fit(*template, target, settings)
    assert result.carved_at == 10 and result.carved_faces == 0 and len(result.faces) == 1280
