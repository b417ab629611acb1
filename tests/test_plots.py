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
