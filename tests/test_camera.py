"""Camera functions against values worked out by hand."""

import math

import pytest
import torch

from meshopt_cli.render import get_points_from_angles, look, look_at, perspective, projection


def test_look_at_from_the_default_eye_keeps_x_and_y():
    # eye (0, 0, -2.732) looking at the origin: z axis (0, 0, 1), x axis (1, 0, 0), y axis (0, 1, 0)
    point = torch.tensor([[[1.0, 2.0, 3.0]]])
    out = look_at(point, (0, 0, -2.732))
    assert torch.allclose(out, torch.tensor([[[1.0, 2.0, 5.732]]]), atol=1e-6)


def test_look_at_from_the_side():
    # eye (2, 0, 0): z = (-1, 0, 0); x = up x z = (0, 1, 0) x (-1, 0, 0) = (0, 0, 1); y = z x x = (0, 1, 0)
    point = torch.tensor([[[1.0, 2.0, 3.0]]])
    out = look_at(point, (2, 0, 0))
    # v - eye = (-1, 2, 3): x = 3, y = 2, z = 1
    assert torch.allclose(out, torch.tensor([[[3.0, 2.0, 1.0]]]), atol=1e-6)


def test_look_at_from_a_diagonal_eye():
    # eye (0, 3, -3): z = (0, -1, 1)/sqrt2; x = (0,1,0) x z = (1/sqrt2, 0, 0)*sqrt2 -> (1, 0, 0);
    # y = z x x = (0, 1, 1)/sqrt2
    point = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]])
    out = look_at(point, (0, 3, -3))
    r = math.sqrt(2)
    # origin: v - eye = (0, -3, 3): x 0, y (-3 + 3)/r = 0, z (3 + 3)/r = 3 sqrt2
    # (1, 1, 0): v - eye = (1, -2, 3): x 1, y (-2 + 3)/r, z (2 + 3)/r
    expected = torch.tensor([[[0.0, 0.0, 3 * r], [1.0, 1 / r, 5 / r]]])
    assert torch.allclose(out, expected, atol=1e-5)


def test_look_at_accepts_one_eye_per_batch_item():
    point = torch.tensor([[[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]]])
    out = look_at(point, torch.tensor([[0, 0, -2.732], [2, 0, 0]]))
    assert torch.allclose(out[0], torch.tensor([[1.0, 2.0, 5.732]]), atol=1e-6)
    assert torch.allclose(out[1], torch.tensor([[3.0, 2.0, 1.0]]), atol=1e-6)


def test_look_along_a_direction_equals_look_at_the_same_ray():
    point = torch.randn(1, 5, 3, generator=torch.Generator().manual_seed(0))
    eye = (0.5, 1.0, -2.0)
    at = (0.0, 0.0, 0.0)
    direction = tuple(a - e for a, e in zip(at, eye))
    assert torch.allclose(look(point, eye, direction), look_at(point, eye, at), atol=1e-6)


def test_perspective_of_1_2_10():
    out = perspective(torch.tensor([[[1.0, 2.0, 10.0]]]), angle=30)
    tan30 = math.tan(math.radians(30))
    assert torch.allclose(out, torch.tensor([[[1 / (10 * tan30), 2 / (10 * tan30), 10.0]]]), atol=1e-6)


def test_projection_with_identity_camera():
    # K = R = I, t = 0: (u, v) = (x/z, y/z); v -> orig_size - v; both mapped by 2 (. - o/2) / o
    o = 2.0
    point = torch.tensor([[[1.0, 0.5, 2.0]]])
    out = projection(point, torch.eye(3)[None], torch.eye(3)[None], torch.zeros(1, 1, 3), orig_size=o)
    u, v = 0.5, 0.25
    v = o - v
    expected = torch.tensor([[[2 * (u - o / 2) / o, 2 * (v - o / 2) / o, 2.0]]])
    assert torch.allclose(out, expected, atol=1e-6)


def test_projection_has_no_nan_gradient_on_the_optical_axis():
    point = torch.tensor([[[0.0, 0.0, 2.0]]], requires_grad=True)
    dist = torch.tensor([[0.1, 0.01, 0.001, 0.001, 0.0]])
    out = projection(point, torch.eye(3), torch.eye(3), torch.zeros(3), dist, orig_size=1)
    out.sum().backward()
    assert torch.isfinite(point.grad).all()


def test_points_from_angles():
    assert torch.allclose(get_points_from_angles(2.0, 0.0, 0.0), torch.tensor([0.0, 0.0, -2.0]), atol=1e-6)
    assert torch.allclose(get_points_from_angles(2.0, 0.0, 90.0), torch.tensor([2.0, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(get_points_from_angles(2.0, 90.0, 0.0), torch.tensor([0.0, 2.0, 0.0]), atol=1e-6)
    batch = get_points_from_angles(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 30.0]), torch.tensor([0.0, 0.0]))
    assert batch.shape == (2, 3)
    assert torch.allclose(batch[1], torch.tensor([0.0, 1.0, -math.sqrt(3)]), atol=1e-6)


def test_bad_eye_shape_is_a_value_error():
    with pytest.raises(ValueError, match="eye"):
        look_at(torch.zeros(2, 3, 3), torch.zeros(3, 3))


# ----------------------------------------------------------------------------- the default distance

#: Files allowed to spell 2.732 in code (none: every one imports DEFAULT_DISTANCE).
AWAITING_DEFAULT_DISTANCE: set[str] = set()


def test_default_distance_is_the_papers_and_rounds_the_renderers_default_eye():
    import inspect

    from meshopt_cli import render, turntable
    from meshopt_cli.defaults import DEFAULT_DISTANCE
    from meshopt_cli.optimize import views
    from meshopt_cli.render import camera

    assert render.DEFAULT_DISTANCE is camera.DEFAULT_DISTANCE is DEFAULT_DISTANCE == 2.732
    assert views.DISTANCE == DEFAULT_DISTANCE
    # the CLI's turntables frame the mesh instead (turntable.framing_distance); the API keeps the paper's eye
    assert inspect.signature(turntable.render_views).parameters["distance"].default is None
    assert torch.allclose(views.training_views(4).eyes.norm(dim=1), torch.full((4,), DEFAULT_DISTANCE))
    eye = render.Renderer().eye
    assert eye[:2] == (0.0, 0.0) and eye[2] == pytest.approx(-DEFAULT_DISTANCE, abs=1e-4)


def test_no_other_module_spells_the_default_distance_in_code():
    import ast
    from pathlib import Path

    import meshopt_cli

    root = Path(meshopt_cli.__file__).parent
    found = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, float) and abs(node.value - 2.732) < 1e-9:
                found.add(path.relative_to(root).as_posix())
    assert found - AWAITING_DEFAULT_DISTANCE == {"defaults.py"}


def test_the_defaults_import_neither_torch_nor_numpy():
    import subprocess
    import sys
    from pathlib import Path

    import meshopt_cli

    code = "import sys, meshopt_cli.defaults; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=Path(meshopt_cli.__file__).parent.parent
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_look_at_with_the_eye_on_the_up_axis_keeps_a_frame():
    """Elevation ±90°: the frame is the limit of nearby elevations (at azimuth 0), not NaN or zero."""
    from meshopt_cli.render.camera import get_points_from_angles, look_at

    points = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]])
    for elevation in (90.0, -90.0):
        exact = look_at(points, get_points_from_angles(2.732, elevation, 0.0))
        near = look_at(points, get_points_from_angles(2.732, elevation - 0.01 * (1 if elevation > 0 else -1), 0.0))
        assert torch.isfinite(exact).all()
        assert torch.allclose(exact, near, atol=1e-3), (elevation, exact, near)
    straight_down = look_at(points, torch.tensor([0.0, 5.0, 0.0]))  # any eye on the axis, any distance
    assert torch.allclose(straight_down[0, 2], torch.tensor([0.0, 0.0, 5.0]))
    assert torch.isfinite(look_at(points, torch.tensor([3.0, 0.0, 0.0]), up=(1.0, 0.0, 0.0))).all()
