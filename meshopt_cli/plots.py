"""``loss.png``: the loss curves of a run, as a person reads them (matplotlib, no pyplot state)."""

from __future__ import annotations

import io
import math


def spans_decades(curves: dict[str, list[float]], decades: float = 2.0) -> bool:
    """Whether the positive values of ``curves`` span more than ``decades`` powers of ten (then a
    log scale shows every term; on a linear one the small terms are a flat line at 0)."""
    values = [v for curve in curves.values() for v in curve if v > 0 and math.isfinite(v)]
    return bool(values) and math.log10(max(values) / min(values)) > decades


def loss_plot_png(curves: dict[str, list[float]], title: str, xlabel: str = "step", weights: dict | None = None) -> bytes:
    """A PNG of each curve (term name -> value per step), labelled, on a log scale where the terms
    span decades (:func:`spans_decades`) and all are positive. ``weights``: term -> its weight in
    the total, shown in the legend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    drawn = {name: curve for name, curve in curves.items() if curve}
    for name, curve in drawn.items():
        label = name if not weights or name not in weights else f"{name} (weight {weights[name]:g})"
        axes.plot(range(1, len(curve) + 1), curve, label=label, linewidth=1.2)
    positive = all(v > 0 for curve in drawn.values() for v in curve if math.isfinite(v))
    if drawn and positive and spans_decades(drawn):
        axes.set_yscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("loss (log scale)" if axes.get_yscale() == "log" else "loss")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    if drawn:
        axes.legend()
    else:
        axes.text(0.5, 0.5, "no steps were run", ha="center", va="center", transform=axes.transAxes)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
