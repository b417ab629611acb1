"""The style loss's balance does not hinge on the backbone's feature scale (style_normalization
"target"): per-layer Gram errors relative to the painting's Gram norm, over the silhouette only."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from meshopt_cli.optimize.image_losses import gram_matrices, gram_matrix, style_loss, target_normalization


def features(seed, batch=2):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(batch, 8, 6, 6, generator=g), torch.rand(batch, 16, 3, 3, generator=g)]


@settings(max_examples=30, deadline=None, derandomize=True)
@given(seed=st.integers(0, 1000), scale=st.floats(1e-3, 1e3), layer_scale=st.floats(1e-2, 1e2))
def test_property_normalised_style_loss_is_independent_of_the_feature_scale(seed, scale, layer_scale):
    render, painting = features(seed), features(seed + 1, batch=1)
    mask = torch.ones(2, 12, 12)
    reference = style_loss(render, gram_matrices(painting), mask, target_normalization(gram_matrices(painting)), True)
    # a network whose features are larger or smaller, by a different factor per layer
    factors = [scale, scale * layer_scale]
    scaled_render = [f * k for f, k in zip(render, factors)]
    scaled_grams = gram_matrices([f * k for f, k in zip(painting, factors)])
    scaled = style_loss(scaled_render, scaled_grams, mask, target_normalization(scaled_grams), True)
    assert torch.allclose(scaled, reference, rtol=1e-4)
    # the absolute (paper) loss moves with the fourth power of each layer's scale
    for f, p, k in zip(render, painting, factors):
        absolute = style_loss([f * k], gram_matrices([p * k]), mask)
        assert torch.allclose(absolute, style_loss([f], gram_matrices([p]), mask) * k**4, rtol=1e-3)


def test_each_normalised_layer_costs_one_for_a_black_render():
    painting = features(3, batch=1)
    grams = gram_matrices(painting)
    black = [torch.zeros_like(f).expand(2, -1, -1, -1) for f in painting]
    loss = style_loss(black, grams, None, target_normalization(grams))
    assert torch.allclose(loss, torch.tensor(2.0))  # two layers


def test_by_area_gram_is_the_mean_over_the_silhouette():
    """Features equal to the painting's inside a silhouette covering the left half: the area Gram
    equals the painting's, the C·H·W one is half of it (the background's zeros count)."""
    torch.manual_seed(0)
    column = torch.rand(1, 4, 8, 1)
    painting = column.expand(1, 4, 8, 8)
    mask = torch.zeros(1, 8, 8)
    mask[:, :, :4] = 1
    target = gram_matrix(painting)
    assert torch.allclose(gram_matrix(painting, mask, by_area=True), target, rtol=1e-5)
    assert torch.allclose(gram_matrix(painting, mask), target / 2, rtol=1e-5)
