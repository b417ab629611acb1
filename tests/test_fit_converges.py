"""The fit loop converges: a sphere template fitted at 32x32 to a smaller, offset sphere and to a cube."""

import numpy as np
import torch

from meshopt_cli.commands.fit import FitSettings
from meshopt_cli.mesh import builtin_shape
from meshopt_cli.optimize.evaluate import evaluate
from meshopt_cli.optimize.fit import fit
from meshopt_cli.optimize.targets import MeshTarget, normalize_to_ball
from meshopt_cli.optimize.views import heldout_views, training_views

SMALL = dict(views=12, heldout_views=6, batch_views=4, image_size=32, eval_image_size=64, seed=0)


def run_fit(target_vertices, target_faces, normalize, **changes):
    settings = FitSettings(**{**SMALL, **changes})
    target = MeshTarget(
        target_vertices,
        target_faces,
        "target",
        training_views(settings.views),
        heldout_views(settings.views, settings.heldout_views),
        "cpu",
        normalize=normalize,
    )
    v, f = builtin_shape("builtin:sphere:2")  # 162 vertices: fast
    template = torch.tensor(normalize_to_ball(v)[0])
    before = evaluate(template, torch.tensor(f), target, settings.eval_image_size)
    result = fit(template, torch.tensor(f), target, settings)
    after = evaluate(result.vertices, result.faces, target, settings.eval_image_size)
    return before, after, result


def test_sphere_fits_a_smaller_offset_sphere():
    v, f = builtin_shape("builtin:sphere:2")
    target = v * 0.55 + np.array([0.25, -0.15, 0.1], np.float32)
    before, after, result = run_fit(
        target, f, normalize=False, iterations=40, affine_iterations=80, edge=0.01, learning_rate=0.005
    )
    assert before["heldout_iou"] < 0.4
    # the target is about 12 pixels wide at 32x32: a few boundary pixels are most of the error
    assert after["train_iou"] > 0.91 and after["heldout_iou"] > 0.91, after
    assert after["voxel_iou"] > 0.85, after
    # the global stage found the scale and the offset
    assert np.allclose(result.scale, 0.55, atol=0.05) and np.allclose(result.translation, [0.25, -0.15, 0.1], atol=0.03)
    assert np.mean(result.loss_curve[-10:]) < result.affine_curve[0] / 3


def test_sphere_fits_a_cube():
    v, f = builtin_shape("builtin:cube:4")
    before, after, result = run_fit(v, f, normalize=True, iterations=80, affine_iterations=20, edge=0.02)
    assert after["train_iou"] > 0.92 and after["heldout_iou"] > 0.89, after
    assert after["heldout_iou"] > before["heldout_iou"] + 0.1
    assert after["voxel_iou"] > 0.7, after
    assert len(result.loss_curve) == 80 and not result.interrupted


def test_same_seed_same_result_and_mse_loss_also_fits():
    v, f = builtin_shape("builtin:sphere:2")
    target = v * np.array([0.8, 0.5, 0.6], np.float32)
    _, a, ra = run_fit(target, f, normalize=False, iterations=30, affine_iterations=30, loss="mse", edge=0.0)
    _, _, rb = run_fit(target, f, normalize=False, iterations=30, affine_iterations=30, loss="mse", edge=0.0)
    assert torch.equal(ra.vertices, rb.vertices)
    assert a["heldout_iou"] > 0.9, a


def test_coarse_to_fine_and_an_open_template_run():
    v, f = builtin_shape("builtin:cube:2")
    _, after, result = run_fit(
        v, f, normalize=True, iterations=40, affine_iterations=10, coarse_image_size=16, coarse_fraction=0.5, fill_back=True
    )
    assert len(result.loss_curve) == 40 and after["heldout_iou"] > 0.85, after
