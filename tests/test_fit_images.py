"""Masks from image files with cameras reproduce the mesh route (same masks, same fit)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from meshopt_cli.commands.fit import FitSettings
from meshopt_cli.mesh import builtin_shape
from meshopt_cli.optimize.evaluate import evaluate
from meshopt_cli.optimize.fit import fit
from meshopt_cli.optimize.targets import MeshTarget, TargetError, image_target, load_mask, normalize_to_ball
from meshopt_cli.optimize.views import heldout_views, look_at_to_projection, training_views
from meshopt_cli.optimize.voxels import voxel_iou

SIZE = 64
VIEWS = 8


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A box-like target, its mesh route, and its silhouettes written as RGBA and as plain RGB images."""
    folder = tmp_path_factory.mktemp("images")
    v, f = builtin_shape("builtin:cube:2")
    v = normalize_to_ball(v * np.array([1.0, 0.7, 0.8], np.float32))[0]
    target = MeshTarget(v, f, "box", training_views(VIEWS), heldout_views(VIEWS, 4), "cpu", normalize=False)
    masks = target.masks("train", SIZE).numpy()
    rgba, rgb = [], []
    for k, mask in enumerate(masks):
        alpha = np.rint(mask * 255).astype(np.uint8)
        colour = np.full((SIZE, SIZE, 3), 90, np.uint8)  # the colour under the alpha does not matter
        rgba.append(folder / f"view{k}.png")
        Image.fromarray(np.dstack([colour, alpha])).save(rgba[-1])
        plain = np.full((SIZE, SIZE, 3), 255, np.uint8)
        plain[mask > 0.5] = (30, 60, 200)
        rgb.append(folder / f"plain{k}.png")
        Image.fromarray(plain).save(rgb[-1])
    az = [360.0 * k / VIEWS for k in range(VIEWS)]
    (folder / "angles.json").write_text(json.dumps([{"azimuth": a, "elevation": 30, "distance": 2.732} for a in az]))
    train = training_views(VIEWS)
    K, R, t = look_at_to_projection(train.eyes, train.angles)
    K[:, :2] *= SIZE  # for the images' own pixel size
    krt = {p.name: {"K": K[k].tolist(), "R": R[k].tolist(), "t": t[k].tolist()} for k, p in enumerate(rgba)}
    (folder / "krt.json").write_text(json.dumps(krt))
    return {"folder": folder, "target": target, "rgba": rgba, "rgb": rgb}


def test_masks_from_images_equal_the_rendered_ones(scene):
    wanted = scene["target"].masks("train", SIZE)
    for images, cameras in (("rgba", "angles.json"), ("rgba", "krt.json"), ("rgb", "angles.json")):
        target = image_target([str(p) for p in scene[images]], str(scene["folder"] / cameras), "box", "cpu")
        got = target.masks("train", SIZE)
        if images == "rgba":  # the alpha channel, to 8 bits
            assert (got - wanted).abs().max() <= 0.5 / 255 + 1e-6
        else:  # non-background pixels: the binary mask
            assert torch.equal(got > 0.5, wanted > 0.5)
        assert target.train.kind == ("projection" if cameras == "krt.json" else "look_at")


def test_fit_from_images_reproduces_the_mesh_route(scene):
    settings = FitSettings(
        views=VIEWS, batch_views=4, image_size=32, eval_image_size=64, iterations=40, affine_iterations=40, edge=0.01
    )
    v, f = builtin_shape("builtin:sphere:2")
    template, faces = torch.tensor(normalize_to_ball(v)[0]), torch.tensor(f)
    mesh_route = fit(template, faces, scene["target"], settings)
    images = image_target([str(p) for p in scene["rgba"]], str(scene["folder"] / "krt.json"), "box", "cpu")
    image_route = fit(template, faces, images, settings)
    # judged on the mesh's held-out views, which the image route never saw
    a = evaluate(mesh_route.vertices, faces, scene["target"], 64)["heldout_iou"]
    b = evaluate(image_route.vertices, faces, scene["target"], 64)["heldout_iou"]
    assert a > 0.88 and b > 0.88 and abs(a - b) < 0.02, (a, b)
    # and the two fitted shapes agree in 3D (vertices may slide along the surface differently)
    agreement = voxel_iou(mesh_route.vertices.numpy(), f, image_route.vertices.numpy(), f)
    assert agreement > 0.92


def test_holdout_images_and_single_image_camera(scene):
    paths = [str(p) for p in scene["rgba"]]
    target = image_target(paths, str(scene["folder"] / "angles.json"), "box", "cpu", holdout=2)
    assert len(target.train) == VIEWS - 2 and len(target.heldout) == 2
    single = image_target(paths[2:3], None, "box", "cpu", azimuth=90.0)
    assert len(single.train) == 1 and single.heldout is None
    assert torch.allclose(single.train.eyes[0], training_views(VIEWS).eyes[2], atol=1e-5)
    with pytest.raises(TargetError, match="need a cameras file"):
        image_target(paths[:2], None, "box", "cpu")


def test_image_mask_errors(tmp_path):
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros((16, 16, 4), np.uint8)).save(empty)
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((16, 16, 3), 255, np.uint8)).save(blank)
    wide = tmp_path / "wide.png"
    Image.fromarray(np.zeros((8, 16, 3), np.uint8)).save(wide)
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tiny)
    text = tmp_path / "text.png"
    text.write_text("not a png")
    for path, message in (
        (empty, "empty mask (alpha is 0 everywhere)"),
        (blank, "empty mask (every pixel has the background colour)"),
        (wide, "16x8; masks must be square"),
        (text, "not an image"),
        (tiny, "image too small (1x1 pixels; masks need at least 16x16)"),
        (tmp_path / "gone.png", "no such file"),
    ):
        with pytest.raises(TargetError) as caught:
            load_mask(path)
        assert str(caught.value) == f"{path}: " + str(caught.value).split(": ", 1)[1] and message in str(caught.value)
