"""The pieces of `meshopt fit`: losses, voxel IoU, view sets, cameras files, presets."""

import json
import math

import numpy as np
import pytest
import torch

from meshopt_cli import settings
from meshopt_cli.commands.fit import COMMAND as FIT
from meshopt_cli.mesh import builtin_shape
from meshopt_cli.optimize import losses, targets, views, voxels


def grid_mesh(n=4, bump=0.0):
    """An (n+1)^2 vertex grid in the z = 0 plane (optionally its centre vertex raised by ``bump``)."""
    xs = np.linspace(-1, 1, n + 1)
    v = np.array([[x, y, 0.0] for y in xs for x in xs], np.float32)
    if bump:
        v[(n + 1) * (n // 2) + n // 2, 2] = bump
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    quads = np.stack([idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]], -1).reshape(-1, 4)
    f = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    return torch.tensor(v), torch.tensor(f)


# ----------------------------------------------------------------------------- losses


def test_iou_loss_values():
    a = torch.zeros(1, 4, 4)
    a[0, :2] = 1  # top half
    b = torch.zeros(1, 4, 4)
    b[0, :, :2] = 1  # left half
    assert losses.iou_loss(a, a).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.iou_loss(a, b).item() == pytest.approx(1 - 4 / 12, abs=1e-6)
    assert losses.silhouette_iou(a, b).tolist() == pytest.approx([4 / 12])
    assert losses.mse_loss(a, b).item() == pytest.approx(0.5)
    assert losses.silhouette_iou(torch.zeros(1, 3, 3), torch.zeros(1, 3, 3)).tolist() == [1.0]


def test_topology_of_a_closed_mesh():
    v, f = builtin_shape("builtin:sphere:1")  # 42 vertices, 80 faces, 120 edges
    topo = losses.MeshTopology.from_faces(f, len(v))
    assert topo.edges.shape == (120, 2) and topo.edge_quads.shape == (120, 4) and topo.face_pairs.shape == (120, 2)
    assert set(topo.degree.tolist()) == {5.0, 6.0}
    # the third corners of each edge's two faces are not on the edge
    q = topo.edge_quads
    assert not ((q[:, 2:] == q[:, :1]) | (q[:, 2:] == q[:, 1:2])).any()


def test_regularizers_vanish_on_a_plane_and_grow_with_a_bump():
    flat_v, f = grid_mesh()
    bumped_v, _ = grid_mesh(bump=0.5)
    topo = losses.MeshTopology.from_faces(f, len(flat_v))
    for name in ("normal", "flatten"):
        loss = losses.REGULARIZERS[name]
        assert loss(flat_v, topo).item() == pytest.approx(0.0, abs=1e-5), name
        assert loss(bumped_v, topo).item() > 1e-3, name
    assert losses.laplacian_loss(bumped_v, topo) > losses.laplacian_loss(flat_v, topo)
    assert losses.edge_length_loss(bumped_v, topo) > losses.edge_length_loss(flat_v, topo)
    # the membrane energy scales with the area, not with the resolution
    fine_v, fine_f = grid_mesh(16)
    coarse = losses.edge_length_loss(flat_v, topo).item()
    fine = losses.edge_length_loss(fine_v, losses.MeshTopology.from_faces(fine_f, len(fine_v))).item()
    assert fine == pytest.approx(coarse, rel=0.2)


def test_flatten_loss_matches_the_papers_formula_on_one_pair():
    # two triangles sharing the edge (0, 1), folded by 90 degrees: cos(theta) = 0 -> (0 + 1)^2 = 1
    v = torch.tensor([[0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.5, 0, 1]], dtype=torch.float32)
    f = torch.tensor([[0, 1, 2], [1, 0, 3]])
    topo = losses.MeshTopology.from_faces(f, 4)
    assert losses.flatten_loss(v, topo).item() == pytest.approx(1.0, abs=1e-3)
    assert losses.normal_consistency_loss(v, topo).item() == pytest.approx(1.0, abs=1e-4)


def test_regularizers_have_finite_gradients():
    v, f = builtin_shape("builtin:sphere:2")
    topo = losses.MeshTopology.from_faces(f, len(v))
    vertices = torch.tensor(v, requires_grad=True)
    total = sum(loss(vertices, topo) for loss in losses.REGULARIZERS.values())
    total.backward()
    assert torch.isfinite(vertices.grad).all()


# ----------------------------------------------------------------------------- voxels


def test_voxel_iou_of_spheres_and_cubes():
    v, f = builtin_shape("builtin:sphere:4")
    assert voxels.is_watertight(v, f)
    assert not voxels.is_watertight(*builtin_shape("builtin:teapot"))
    assert voxels.voxel_iou(v, f, v, f) == 1.0
    assert voxels.voxel_iou(v, f, v * 0.8, f) == pytest.approx(0.8**3, abs=0.03)
    c, cf = builtin_shape("builtin:cube")
    occupancy = voxels.voxelize(c, cf, voxels.grid_for((c, cf)))
    assert occupancy.mean() == pytest.approx((30 / 32) ** 3, abs=0.02)  # 30 of the 32 cell centres per axis, with the margin


# ----------------------------------------------------------------------------- views


def test_training_and_heldout_views():
    train = views.training_views(24)
    eyes = train.eyes
    assert len(train) == 24
    assert torch.allclose(eyes.norm(dim=1), torch.full((24,), 2.732), atol=1e-5)
    assert torch.allclose(torch.rad2deg(torch.asin(eyes[:, 1] / 2.732)), torch.full((24,), 30.0), atol=1e-3)
    held = views.heldout_views(24, 12)
    elevations = torch.rad2deg(torch.asin(held.eyes[:, 1] / 2.732))
    assert not torch.isclose(elevations, torch.tensor(30.0), atol=1).any()
    azimuths = torch.rad2deg(torch.atan2(held.eyes[:, 0], -held.eyes[:, 2])) % 360
    assert (azimuths.remainder(15.0).sub(7.5).abs() < 7.4).all()  # never a training azimuth


def test_projection_cameras_render_like_look_at_cameras():
    v, f = builtin_shape("builtin:teapot")
    v, f = torch.tensor(v), torch.tensor(f)
    some = views.Views.concat([views.training_views(4), views.heldout_views(4, 3)])
    a = views.render_silhouettes(v, f, some, 48)
    b = views.render_silhouettes(v, f, some.as_projection(), 48)
    assert (a - b).abs().max() < 1e-4 and (a > 0.5).any()


# ----------------------------------------------------------------------------- cameras files


def test_cameras_file_forms(tmp_path):
    images = [tmp_path / "a.png", tmp_path / "b.png"]
    K = [[60, 0, 32], [0, 60, 32], [0, 0, 1]]
    cams = tmp_path / "cams.json"
    cams.write_text(
        json.dumps([{"azimuth": 10, "elevation": 20, "distance": 3}, {"K": K, "R": np.eye(3).tolist(), "t": [0, 0, 3]}])
    )
    mixed = targets.read_cameras(cams, images, [64, 64])
    assert mixed.kind == "projection" and len(mixed) == 2
    assert mixed.K[1, 0, 0].item() == pytest.approx(60 / 64) and mixed.K[1, 2, 2].item() == 1
    cams.write_text(json.dumps({"b.png": {"azimuth": 5}, "a": {"azimuth": 1}}))
    keyed = targets.read_cameras(cams, images, [64, 64])
    assert keyed.kind == "look_at" and keyed.labels == ["a.png", "b.png"]
    assert keyed.eyes[0, 0].item() == pytest.approx(2.732 * math.cos(math.radians(30)) * math.sin(math.radians(1)), abs=1e-5)


@pytest.mark.parametrize(
    "content, message",
    [
        ('[{"azimuth": 1}', "not valid JSON (line 1"),
        ('[{"azimuth": 1}]', "1 camera for 2 images"),
        ('[{"azimuth": 1}, {"elevation": 3}]', "camera 2 (b.png): needs azimuth"),
        ('[{"azimuth": 1}, {"azimuht": 3}]', "unknown key 'azimuht'"),
        ('[{"azimuth": 1}, {"K": [[1, 0], [0, 1]], "R": [[1,0,0],[0,1,0],[0,0,1]], "t": [0, 0, 1]}]', "'K' must be 3x3"),
        ('[{"azimuth": "ten"}, {"azimuth": 3}]', "'azimuth' must be a finite number"),
        ('{"a.png": {"azimuth": 1}}', "no camera for b.png"),
        ("42", "expected a list of cameras"),
    ],
)
def test_bad_cameras_files(tmp_path, content, message):
    cams = tmp_path / "cams.json"
    cams.write_text(content)
    with pytest.raises(targets.TargetError) as caught:
        targets.read_cameras(cams, [tmp_path / "a.png", tmp_path / "b.png"], [64, 64])
    text = str(caught.value)
    assert text.startswith(str(cams)) and message in text and "\n" not in text


# ----------------------------------------------------------------------------- presets


def test_presets_load_and_flags_override():
    assert {"default", "fast", "paper"} <= set(settings.preset_names("fit"))
    for name in ("default", "fast", "paper"):
        values, description = settings.read_preset(settings.preset_path(name, "fit"))
        assert description and values
    paper, _ = FIT.resolve("paper")
    assert paper.image_size == 64 and paper.flatten == pytest.approx(0.001) and paper.init == "builtin:sphere"
    assert paper.optimizer == "adam"  # the paper's plain Adam on vertex offsets
    default, _ = FIT.resolve("default")
    assert default.optimizer == "largesteps" and default.largesteps_lambda == pytest.approx(3.0) and default.loss == "mse"
    assert default.relax and not paper.relax  # the final relaxation: the default preset only
    fast, _ = FIT.resolve("fast")
    assert fast.optimizer == "adam"
    with pytest.raises(settings.SettingsError, match="optimizer must be one of largesteps, adam"):
        FIT.resolve("default", overrides={"optimizer": "sgd"})
    with pytest.raises(settings.SettingsError, match=r"refine-at must be in \[0, 1\]"):
        FIT.resolve("default", overrides={"refine_at": 1.5})
    tuned, _ = FIT.resolve("fast", overrides={"iterations": 7, "edge": 0.5, "loss": None})
    fast, _ = settings.read_preset(settings.preset_path("fast", "fit"))
    assert tuned.iterations == 7 and tuned.edge == 0.5 and tuned.loss == fast.get("loss", "iou")


def test_preset_errors(tmp_path):
    with pytest.raises(settings.SettingsError, match=r"unknown preset 'nope' for fit \(valid: default, fast, paper"):
        FIT.resolve("nope")
    bad = tmp_path / "mine.toml"
    bad.write_text("iterations = 10\nsped = 3\n")
    with pytest.raises(settings.SettingsError, match="unknown setting 'sped'"):
        FIT.resolve(str(bad))
    bad.write_text("iterations = 'many'\n")
    with pytest.raises(settings.SettingsError, match="'iterations' must be an integer"):
        FIT.resolve(str(bad))
    with pytest.raises(settings.SettingsError, match=r"batch-views must be in \[1, 360\]"):
        FIT.resolve("default", overrides={"batch_views": 0})
    with pytest.raises(settings.SettingsError, match="loss must be one of iou, mse"):
        FIT.resolve("default", overrides={"loss": "l1"})
