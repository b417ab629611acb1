"""The approximate gradient on one-triangle scenes, against the formula of docs/design.md ("Worked example") worked by hand.

Scene (S = 8, no anti-aliasing, unflipped frame, pixel units): p0 = (1.5, 1.5), p1 = (5.5, 1.5),
p2 = (1.5, 5.5), z = 1; counter-clockwise. It covers the pixel centres (i, j) with i, j >= 2 and
i + j <= 7. In NDC, x = (2p + 1 - S) / S: 1.5 -> -0.5 and 5.5 -> 0.5.
"""

import pytest
import torch

S = 8
EPS = 1e-4
TRIANGLE = torch.tensor([[[-0.5, -0.5, 1.0, 0.5, -0.5, 1.0, -0.5, 0.5, 1.0]]])


def render_alpha(backend):
    face_index, _, _, _, alpha = backend.forward(TRIANGLE, None, S, 0.1, 100.0, EPS, torch.zeros(1, 3))
    return face_index, alpha


def gradient_for(backend, pixel, value):
    """grad_faces [9] when dL/dalpha is `value` at pixel (column, row) and 0 elsewhere."""
    face_index, alpha = render_alpha(backend)
    grad = torch.zeros(1, S, S, 1)
    column, row = pixel
    grad[0, row, column, 0] = value
    return backend.backward_xy(TRIANGLE, face_index, alpha[..., None].contiguous(), grad, EPS)[0, 0]


def test_the_triangle_covers_the_pixels_worked_out_by_hand(backend):
    face_index, alpha = render_alpha(backend)
    expected = torch.zeros(S, S)
    for i in range(2, 6):
        for j in range(2, 6):
            if i + j <= 7:
                expected[j, i] = 1
    assert torch.equal(alpha[0], expected)
    assert torch.equal(face_index[0] >= 0, expected.bool())


def test_out_gradient_pulls_the_edge_over_a_wanted_pixel(backend):
    # dL/dalpha = -1 at background pixel (6, 2): only row 2 reaches it, through edge p1 -> p2
    # (axis 1, u = y: ua = 1.5, ub = 5.5, u0 = 2, direction +1). The edge crosses row 2 at
    # v_x = 5.0, so v_in = 5, v_out = 6; delta = (0 - 1) * (-1) = 1 at v = 6, offset 6 - 5 = 1.
    g = gradient_for(backend, (6, 2), -1.0)
    expected = torch.zeros(9)
    expected[3] = -1 / (4 / 3.5 * 1 * 2 / S + EPS)  # vertex 1, x: d = (ub - ua)/(ub - u0) * offset * 2/S
    expected[6] = -1 / (4 / 0.5 * 1 * 2 / S + EPS)  # vertex 2, x: d = (ub - ua)/(u0 - ua) * offset * 2/S
    assert torch.allclose(g, expected, rtol=1e-5, atol=1e-6)


def test_in_gradient_pushes_edges_off_an_unwanted_pixel(backend):
    # dL/dalpha = +1 at covered pixel (4, 2). Four IN walks cover it (delta = (1 - 0) * 1 = 1):
    #   row 2, edge p1->p2 (v_x = 5.0, offset -1):   vertex 1 x, vertex 2 x
    #   row 2, edge p2->p0 (u: 5.5 -> 1.5, v_x = 1.5, offset 2.5): vertex 2 x, vertex 0 x
    #   column 4, edge p0->p1 (u: 1.5 -> 5.5, v_x = 1.5, offset 0.5): vertex 0 y, vertex 1 y
    #   column 4, edge p1->p2 (u: 5.5 -> 1.5, v_x = 3.0, offset -1): vertex 1 y, vertex 2 y
    g = gradient_for(backend, (4, 2), 1.0)

    def update(k, offset):
        d = k * offset * 2 / S
        return -1 / (d + EPS if d > 0 else d - EPS)

    expected = torch.zeros(9)
    expected[3] += update(4 / (5.5 - 2), -1)  # row 2, p1->p2, vertex a = 1
    expected[6] += update(4 / (2 - 1.5), -1)  # row 2, p1->p2, vertex b = 2
    expected[6] += update(-4 / (1.5 - 2), 2.5)  # row 2, p2->p0, vertex a = 2
    expected[0] += update(-4 / (2 - 5.5), 2.5)  # row 2, p2->p0, vertex b = 0
    expected[1] += update(4 / (5.5 - 4), 0.5)  # column 4, p0->p1, vertex a = 0
    expected[4] += update(4 / (4 - 1.5), 0.5)  # column 4, p0->p1, vertex b = 1
    expected[4] += update(-4 / (1.5 - 4), -1)  # column 4, p1->p2, vertex a = 1
    expected[7] += update(-4 / (4 - 5.5), -1)  # column 4, p1->p2, vertex b = 2
    assert torch.allclose(g, expected, rtol=1e-5, atol=1e-6)
    # moving the triangle away from the pixel lowers the loss: vertices 0 and 2 move right, 1 up
    assert g[0] < 0 and g[1] < 0


def test_rgb_gradient_sums_the_channels(backend):
    # rgb channels, face colour (1, 0, 0) on a black background; dL/drgb = (-1, -1, 0) at (6, 2):
    # delta = (0 - 1) * -1 + (0 - 0) * -1 = 1, the same walk as the silhouette case.
    textures = torch.zeros(1, 1, 1, 1, 1, 3)
    textures[..., 0] = 1
    face_index, _, _, rgb, _ = backend.forward(TRIANGLE, textures, S, 0.1, 100.0, 1e-3, torch.zeros(1, 3))
    grad = torch.zeros(1, S, S, 3)
    grad[0, 2, 6] = torch.tensor([-1.0, -1.0, 0.0])
    g = backend.backward_xy(TRIANGLE, face_index, rgb.contiguous(), grad, 1e-3)[0, 0]
    expected = torch.zeros(9)
    expected[3] = -1 / (4 / 3.5 * 2 / S + 1e-3)
    expected[6] = -1 / (4 / 0.5 * 2 / S + 1e-3)
    assert torch.allclose(g, expected, rtol=1e-5, atol=1e-6)


def test_a_loss_that_wants_nothing_gets_no_gradient(backend):
    # dL/dalpha = +1 on a background pixel: growing there would raise the loss, so no update
    g = gradient_for(backend, (6, 2), 1.0)
    assert torch.equal(g, torch.zeros(9))


@pytest.mark.parametrize(
    "face",
    [
        [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0],  # a point
        [-0.5, -0.5, 1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 1.0],  # collinear
        [-0.5, -0.5, 1.0, -0.5, 0.5, 1.0, 0.5, -0.5, 1.0],  # clockwise: a back face
        [-0.5, -0.5, 0.0, 0.5, -0.5, 1.0, -0.5, 0.5, 1.0],  # a vertex at depth 0
        [-0.5, -0.5, -1.0, 0.5, -0.5, 1.0, -0.5, 0.5, 1.0],  # crossing the camera plane
        [-0.5, -0.5, 1.0, 0.5, -0.5, 1.0, float("inf"), 0.5, 1.0],  # a vertex at infinity
    ],
)
def test_degenerate_faces_never_give_nan_or_inf(backend, face):
    faces = torch.tensor([[face]])
    textures = torch.rand(1, 1, 3, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    face_index, weights, depth, rgb, alpha = backend.forward(faces, textures, S, 0.1, 100.0, 1e-3, torch.zeros(1, 3))
    for out in (weights, depth, rgb, alpha):
        assert torch.isfinite(out).all()
    image = torch.cat((alpha[..., None], rgb), dim=-1).contiguous()
    grad = torch.randn(image.shape, generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(backend.backward_xy(faces, face_index, image, grad, 1e-3)).all()
    assert torch.isfinite(backend.backward_depth(faces, face_index, torch.ones(1, S, S))).all()
    grad_textures, _ = backend.backward_textures(
        faces, face_index, weights, depth, torch.ones(1, S, S, 3), textures, None, False, 1e-3
    )
    assert torch.isfinite(grad_textures).all()


def test_depth_gradient_matches_central_differences(backend):
    # one large triangle covering the whole image with varied depths: depth is smooth everywhere
    faces = torch.tensor([[[-3.0, -3.0, 1.0, 3.0, -3.0, 2.0, 0.0, 3.0, 3.0]]])
    weights = torch.rand(1, S, S, generator=torch.Generator().manual_seed(2))

    def loss(f):
        _, _, depth, _, _ = backend.forward(f, None, S, 0.1, 100.0, EPS, torch.zeros(1, 3))
        return float((depth.double() * weights).sum())

    face_index = backend.forward(faces, None, S, 0.1, 100.0, EPS, torch.zeros(1, 3))[0]
    assert (face_index == 0).all()
    analytic = backend.backward_depth(faces, face_index, weights)[0]
    h = 1e-2
    numeric = torch.zeros(9)
    for k in range(9):
        up, down = faces.clone(), faces.clone()
        up[0, 0, k] += h
        down[0, 0, k] -= h
        numeric[k] = (loss(up) - loss(down)) / (2 * h)
    assert torch.allclose(analytic, numeric, rtol=2e-3, atol=2e-3 * float(numeric.abs().max()))
