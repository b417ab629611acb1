"""``loss.png``: the loss curves of a run, as a person reads them, drawn with Pillow.

Pillow, not matplotlib: importing matplotlib and drawing one figure took 0.6-0.7 s of a 10 s
default fit on a 2-vCPU machine (docs/design.md, "The fit: parameterization, schedule, evaluator"); this module draws the same
content (one line per term, axes with ticks, a log scale where the terms span decades, a title, a
legend) in a few milliseconds.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache

SIZE = (640, 400)  # pixels
# plot area inside the image: left, top, right, bottom margins in pixels
MARGINS = (74, 34, 18, 48)
# matplotlib's default cycle, so that loss.png keeps the colours users know
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
GRID = (225, 225, 225)
INK = (40, 40, 40)


def spans_decades(curves: dict[str, list[float]], decades: float = 2.0) -> bool:
    """Whether the positive values of ``curves`` span more than ``decades`` powers of ten (then a
    log scale shows every term; on a linear one the small terms are a flat line at 0)."""
    values = [v for curve in curves.values() for v in curve if v > 0 and math.isfinite(v)]
    return bool(values) and math.log10(max(values) / min(values)) > decades


def linear_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [low, high], about ``count``."""
    if not high > low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9)
    return [k * step for k in range(first, int(math.floor(high / step + 1e-9)) + 1)]


def log_ticks(low: float, high: float) -> list[float]:
    """The powers of ten in [low, high] (both > 0)."""
    return [10.0**k for k in range(math.ceil(math.log10(low) - 1e-9), math.floor(math.log10(high) + 1e-9) + 1)]


def tick_label(value: float) -> str:
    return f"{value:g}" if value == 0 or 1e-3 <= abs(value) < 1e5 else f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")


@lru_cache(maxsize=4)
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)  # Pillow's own scalable font: no font file needed


def loss_plot_png(curves: dict[str, list[float]], title: str, xlabel: str = "step", weights: dict | None = None) -> bytes:
    """A PNG (640 × 400) of each curve (term name -> value per step; non-finite values leave gaps),
    labelled, on a log scale where the terms span decades (:func:`spans_decades`) and all are
    positive. ``weights``: term -> its weight in the total, shown in the legend."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", SIZE, "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(13), _font(11)
    left, top = MARGINS[0], MARGINS[1]
    right, bottom = SIZE[0] - MARGINS[2], SIZE[1] - MARGINS[3]
    draw.text(((left + right) / 2, top / 2), title, fill=INK, font=font, anchor="mm")
    drawn = {name: curve for name, curve in curves.items() if curve}
    finite = [v for curve in drawn.values() for v in curve if math.isfinite(v)]
    log = bool(finite) and all(v > 0 for v in finite) and spans_decades(drawn)

    if finite:
        low, high = min(finite), max(finite)
        if log:
            low, high = math.log10(low), math.log10(high)
        pad = (high - low) * 0.05 or (abs(high) * 0.05 or 1.0)
        low, high = low - pad, high + pad
        steps = max(len(curve) for curve in drawn.values())
        x_low, x_high = 1.0, float(max(steps, 2))

        def to_x(step: float) -> float:
            return left + (step - x_low) / (x_high - x_low) * (right - left)

        def to_y(value: float) -> float:
            v = math.log10(value) if log else value
            return bottom - (v - low) / (high - low) * (bottom - top)

        y_ticks = log_ticks(10**low, 10**high) if log else linear_ticks(low, high)
        for value in y_ticks:
            y = to_y(value)
            draw.line([(left, y), (right, y)], fill=GRID)
            draw.text((left - 6, y), tick_label(value), fill=INK, font=small, anchor="rm")
        for step in linear_ticks(x_low, x_high):
            x = to_x(step)
            draw.line([(x, top), (x, bottom)], fill=GRID)
            draw.text((x, bottom + 6), tick_label(step), fill=INK, font=small, anchor="mt")
        for index, curve in enumerate(drawn.values()):
            colour = COLOURS[index % len(COLOURS)]
            run: list[tuple[float, float]] = []
            for step, value in enumerate(curve, start=1):
                if math.isfinite(value) and (value > 0 or not log):
                    run.append((to_x(step), to_y(value)))
                    continue
                _polyline(draw, run, colour)
                run = []
            _polyline(draw, run, colour)
        _legend(draw, drawn, weights, right, top, small)
    else:
        message = "no steps were run" if not drawn else "no finite values"
        draw.text(((left + right) / 2, (top + bottom) / 2), message, fill=INK, font=font, anchor="mm")
    draw.rectangle([left, top, right, bottom], outline=INK)
    draw.text(((left + right) / 2, SIZE[1] - 12), xlabel, fill=INK, font=font, anchor="mm")
    _vertical_label(image, "loss (log scale)" if log else "loss", (14, (top + bottom) // 2), font)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _polyline(draw, points: list[tuple[float, float]], colour: str) -> None:
    if len(points) > 1:
        draw.line(points, fill=colour, width=2, joint="curve")
    elif points:
        x, y = points[0]
        draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=colour)


def _legend(draw, drawn: dict, weights: dict | None, right: int, top: int, font) -> None:
    labels = [name if not weights or name not in weights else f"{name} (weight {weights[name]:g})" for name in drawn]
    width = max(draw.textlength(label, font=font) for label in labels) + 36
    height = 16 * len(labels) + 8
    x0, y0 = right - width - 8, top + 8
    draw.rectangle([x0, y0, x0 + width, y0 + height], fill="white", outline=GRID)
    for index, label in enumerate(labels):
        y = y0 + 12 + 16 * index
        draw.line([(x0 + 6, y), (x0 + 26, y)], fill=COLOURS[index % len(COLOURS)], width=2)
        draw.text((x0 + 30, y), label, fill=INK, font=font, anchor="lm")


def _vertical_label(image, text: str, centre: tuple[int, int], font) -> None:
    from PIL import Image, ImageDraw

    probe = ImageDraw.Draw(image)
    width = int(probe.textlength(text, font=font)) + 4
    strip = Image.new("RGB", (width, 18), "white")
    ImageDraw.Draw(strip).text((width / 2, 9), text, fill=INK, font=font, anchor="mm")
    strip = strip.rotate(90, expand=True)
    image.paste(strip, (centre[0] - strip.width // 2, centre[1] - strip.height // 2))
