"""loss.png: labelled loss curves, log scale where the terms span decades."""

import io

from PIL import Image

from meshopt_cli.plots import loss_plot_png, spans_decades


def test_log_scale_only_where_the_terms_span_decades():
    assert spans_decades({"style": [1e-4, 5e-5], "tv": [2.0, 1.0]})
    assert not spans_decades({"silhouette": [0.4, 0.1], "total": [0.7, 0.3]})
    assert not spans_decades({"empty": []})


def test_the_plot_is_a_png_also_without_steps():
    for curves in ({"style": [3.0, 2.0, 1.0], "tv": [1e-3, 1e-3, 2e-3]}, {}):
        image = Image.open(io.BytesIO(loss_plot_png(curves, "style: loss terms")))
        assert image.format == "PNG" and image.size == (640, 400)


def pixels_of(image, colour: str):
    """(xs, ys) of the pixels drawn in ``colour`` ('#rrggbb')."""
    import numpy as np

    rgb = np.asarray(image.convert("RGB")).astype(int)
    want = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    ys, xs = np.nonzero((np.abs(rgb - want) <= 8).all(-1))
    return xs, ys


def test_each_curve_is_drawn_in_its_colour_where_its_values_are_finite():
    from meshopt_cli.plots import COLOURS, MARGINS, SIZE

    nan = float("nan")
    png = loss_plot_png({"late": [nan] * 10 + [1.0] * 10, "whole": [2.0] * 20}, "t")
    image = Image.open(io.BytesIO(png))
    left, right = MARGINS[0], SIZE[0] - MARGINS[2]
    late_x, _ = pixels_of(image, COLOURS[0])
    whole_x, whole_y = pixels_of(image, COLOURS[1])
    middle = left + (right - left) * 9 / 19  # step 10 of 1..20: the last NaN
    in_plot = late_x[late_x > left + 40]  # the legend's sample lines lie near the right border only
    assert len(in_plot) and in_plot.min() > middle - 3
    assert whole_x.min() <= left + 2 and whole_x.max() >= right - 2
    assert whole_y.min() < SIZE[1] / 2  # 2.0 is the top of the range


def test_values_a_hundredfold_apart_sit_evenly_on_the_log_scale():
    from meshopt_cli.plots import COLOURS, MARGINS, SIZE

    png = loss_plot_png({"big": [1.0] * 8, "mid": [1e-2] * 8, "small": [1e-4] * 8}, "t")
    _, mid_y = pixels_of(Image.open(io.BytesIO(png)), COLOURS[1])
    centre = (MARGINS[1] + SIZE[1] - MARGINS[3]) / 2
    assert abs(float(mid_y.mean()) - centre) < 12  # on a linear scale it would lie near the bottom
