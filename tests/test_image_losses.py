"""The image losses of `style` and `dream`: Gram matrices, masked style loss, content, total
variation, DeepDream loss, edge-length variance — checked against values computed by hand."""

import math

import pytest
import torch

from meshopt_cli.optimize import image_losses as L


def feats_2x2():
    # B=1, C=2, H=1, W=2: channel 0 = [1, 2], channel 1 = [3, 4]
    return torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])


# ----------------------------------------------------------------------------- Gram matrices


def test_gram_matrix_by_hand():
    g = L.gram_matrix(feats_2x2())
    # [[1*1+2*2, 1*3+2*4], [3*1+4*2, 3*3+4*4]] / (C*H*W = 2*1*2)
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4
    assert g.shape == (1, 2, 2)
    assert torch.allclose(g, expected)


def test_gram_matrix_masked_by_hand_area_pooling():
    # a 2x4 silhouette pooled to the 1x2 feature map by area: left cell 3/4 covered, right empty
    mask = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]])
    assert torch.allclose(L.pool_mask(mask, (1, 2)), torch.tensor([[[[0.75, 0.0]]]]))
    g = L.gram_matrix(feats_2x2(), mask)
    f0, f1 = 0.75 * 1.0, 0.75 * 3.0  # masked features; right column is zeroed
    expected = torch.tensor([[[f0 * f0, f0 * f1], [f1 * f0, f1 * f1]]]) / 4  # still / (C*H*W)
    assert torch.allclose(g, expected)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_gram_matrix_gradient_is_exact_and_keeps_the_features_layout(layout):
    # the symmetric backward (one product, dX = scale (dG + dGᵀ) X) against numerical derivatives, with
    # a mask whose gradient flows too; channels-last features get a channels-last gradient back
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(2, 5, 4, 3, dtype=torch.float64, generator=generator).contiguous(memory_format=layout)
    mask = torch.rand(2, 8, 6, dtype=torch.float64, generator=generator)
    features.requires_grad_(True)
    mask.requires_grad_(True)
    weights = torch.randn(2, 5, 5, dtype=torch.float64, generator=generator)  # not symmetric: dG is not either
    assert torch.autograd.gradcheck(lambda f, m: (L.gram_matrix(f, m) * weights).sum(), (features, mask))
    (L.gram_matrix(features) * weights).sum().backward()
    assert features.grad.is_contiguous(memory_format=layout)


def test_pool_mask_accepts_both_layouts_and_averages():
    m = torch.zeros(2, 4, 4)
    m[0, :2, :2] = 1  # one full 2x2 block
    m[1, 0, 0] = 1  # a quarter of a block
    p = L.pool_mask(m, (2, 2))
    assert p.shape == (2, 1, 2, 2)
    assert torch.allclose(p, L.pool_mask(m[:, None], (2, 2)))
    assert p[0, 0, 0, 0] == 1 and p[0].sum() == 1
    assert p[1, 0, 0, 0] == 0.25 and p[1].sum() == 0.25


# ----------------------------------------------------------------------------- style loss


def test_style_loss_by_hand_two_layers_mean_over_batch():
    f1 = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]]).repeat(2, 1, 1, 1)
    f1[1] *= 2  # second view: Gram x4
    f2 = torch.ones(2, 1, 2, 2)  # Gram [[4/4]] = [[1]]
    style = [torch.zeros(2, 2), torch.tensor([[[3.0]]])]
    g = torch.tensor([[5.0, 11.0], [11.0, 25.0]]) / 4
    layer1 = ((g**2).sum() + ((4 * g) ** 2).sum()) / 2  # mean over the two views
    layer2 = (1.0 - 3.0) ** 2
    loss = L.style_loss({"a": f1, "b": f2}, style)
    assert torch.allclose(loss, layer1 + layer2)


def test_style_loss_zero_for_same_features_and_gradient_flows():
    torch.manual_seed(0)
    target = torch.rand(1, 8, 4, 4)
    grams = L.gram_matrices([target])
    assert float(L.style_loss([target], grams)) == 0.0
    render = torch.rand(3, 8, 4, 4, requires_grad=True)
    loss = L.style_loss([render], grams)
    loss.backward()
    assert loss > 0 and render.grad.abs().sum() > 0


def test_style_loss_masked_out_region_does_not_change_it():
    torch.manual_seed(1)
    feats = torch.rand(2, 4, 4, 4)
    mask = torch.zeros(2, 16, 16)
    mask[:, :8, :8] = 1  # covers exactly the feature cells [:2, :2]
    grams = [torch.rand(4, 4)]
    base = L.style_loss([feats], grams, mask)
    outside = feats.clone()
    outside[:, :, 2:, :] = 100.0  # change only cells the silhouette does not cover
    outside[:, :, :, 2:] = -7.0
    assert torch.allclose(L.style_loss([outside], grams, mask), base)
    inside = feats.clone()
    inside[:, :, 0, 0] += 1.0
    assert not torch.allclose(L.style_loss([inside], grams, mask), base)
    # and without the mask the outside change does matter
    assert not torch.allclose(L.style_loss([outside], grams), L.style_loss([feats], grams))


def test_style_loss_gradient_reaches_the_mask():
    feats = torch.rand(1, 3, 2, 2)
    mask = torch.full((1, 8, 8), 0.5, requires_grad=True)
    L.style_loss([feats], [torch.zeros(3, 3)], mask).backward()
    assert mask.grad.abs().sum() > 0


def test_style_loss_layer_count_mismatch():
    with pytest.raises(ValueError, match="2 feature layers but 1"):
        L.style_loss([torch.rand(1, 2, 2, 2)] * 2, [torch.zeros(2, 2)])


# ----------------------------------------------------------------------------- content, TV


def test_content_loss_by_hand():
    v0 = torch.zeros(3, 3)
    v = v0.clone()
    v[0] = torch.tensor([1.0, 2.0, 0.0])
    v[2, 1] = -3.0
    v.requires_grad_(True)
    loss = L.content_loss(v, v0)
    assert float(loss.detach()) == 1 + 4 + 9
    loss.backward()
    assert torch.allclose(v.grad, 2 * v.detach())


def test_total_variation_by_hand():
    img = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # vertical (2-0)^2 + (4-1)^2 = 13, horizontal (1-0)^2 + (4-2)^2 = 5
    assert float(L.total_variation(img)) == 18.0
    mask = torch.tensor([[[1.0, 1.0], [1.0, 0.0]]])  # bottom-right pixel outside
    # only pairs with both pixels inside: vertical (0, 2) -> 4, horizontal (0, 1) -> 1
    assert float(L.total_variation(img, mask)) == 5.0
    assert float(L.total_variation(img, mask[:, None])) == 5.0


def test_total_variation_masked_out_region_does_not_change_it_and_channels_sum():
    torch.manual_seed(2)
    img = torch.rand(2, 3, 8, 8)
    mask = torch.zeros(2, 8, 8)
    mask[:, 2:6, 1:5] = 1
    base = L.total_variation(img, mask)
    changed = img.clone()
    changed[:, :, :, 5:] = 9.0  # outside the silhouette (and its border pixels' neighbours)
    changed[:, :, :2, :] = -4.0
    assert torch.allclose(L.total_variation(changed, mask), base)
    inside = img.clone()
    inside[:, :, 3, 3] += 1.0
    assert L.total_variation(inside, mask) != base
    # channels add up, batch is averaged
    per = [L.total_variation(img[i : i + 1, c : c + 1], mask[i : i + 1]) for i in range(2) for c in range(3)]
    assert torch.allclose(base, sum(per) / 2)


def test_total_variation_does_not_differentiate_the_mask():
    img = torch.rand(1, 3, 4, 4, requires_grad=True)
    mask = torch.full((1, 4, 4), 0.7, requires_grad=True)
    L.total_variation(img, mask).backward()
    assert mask.grad is None and img.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- dream


def test_dream_loss_value_and_sign():
    act = torch.tensor([[[[1.0, -2.0]], [[0.0, 3.0]]]], requires_grad=True)
    loss = L.dream_loss(act)
    assert float(loss.detach()) == -(1 + 4 + 0 + 9) / 4
    loss.backward()
    # descending the loss moves every activation away from zero
    stepped = act.detach() - 0.1 * act.grad
    assert (stepped.abs() >= act.detach().abs()).all()
    assert float(L.dream_loss(stepped)) < float(loss.detach())


def regular_tetrahedron():
    v = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    f = torch.tensor([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])
    return v, f


def test_edge_length_variance_of_regular_meshes_is_zero():
    v, f = regular_tetrahedron()
    assert float(L.edge_length_variance(v, f)) == pytest.approx(0.0, abs=1e-6)
    # regular octahedron
    v = torch.tensor([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
    f = torch.tensor([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    assert L.unique_edges(f).shape == (12, 2)
    assert float(L.edge_length_variance(v, f)) == pytest.approx(0.0, abs=1e-6)


def test_edge_length_variance_by_hand_and_batched():
    # a unit square as two triangles: edges 1, 1, 1, 1 and the diagonal sqrt(2), counted once
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    f = torch.tensor([[0, 1, 2], [0, 2, 3]])
    lengths = torch.tensor([1.0, 1, 1, 1, math.sqrt(2)])
    expected = lengths.var(unbiased=False) * 2  # x number of faces
    assert torch.allclose(L.edge_length_variance(v, f), expected)
    batch = torch.stack([v, 2 * v])  # scaling by 2 multiplies the variance by 4
    assert torch.allclose(L.edge_length_variance(batch, f), (expected + 4 * expected) / 2)
    edges = L.unique_edges(f)
    assert torch.allclose(L.edge_length_variance(v, f, edges), expected)


def test_edge_length_variance_gradient_is_finite_with_a_collapsed_edge():
    v = torch.tensor([[0.0, 0, 0], [0, 0, 0], [1, 1, 0]], requires_grad=True)
    L.edge_length_variance(v, torch.tensor([[0, 1, 2]])).backward()
    assert torch.isfinite(v.grad).all()
