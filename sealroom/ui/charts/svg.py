"""The shared pieces of every chart: a frame with axes, scaling and escaped text."""

from __future__ import annotations

import math
from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE = ("#1f5fbf", "#d9730d", "#1b7f3b", "#b3261e", "#7b3fb0", "#0f7c8c", "#8a6d00", "#5c6675")


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def text(x: float, y: float, value: object, cls: str = "", anchor: str = "start") -> str:
    klass = f' class="{cls}"' if cls else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{klass}>{escape(str(value))}</text>'
    )


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2 or 5 times a power of ten apart)."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0, 1.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def tick_label(value: float) -> str:
    return f"{value:.4g}"


@dataclass(frozen=True)
class Frame:
    """A plot area inside an SVG of ``width`` × ``height`` with margins for the axes."""

    width: int = 460
    height: int = 260
    left: int = 52
    right: int = 16
    top: int = 28
    bottom: int = 40

    @property
    def inner_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def inner_height(self) -> float:
        return self.height - self.top - self.bottom

    def x(self, value: float, low: float, high: float) -> float:
        span = (high - low) or 1.0
        return self.left + (value - low) / span * self.inner_width

    def y(self, value: float, low: float, high: float) -> float:
        span = (high - low) or 1.0
        return self.top + self.inner_height - (value - low) / span * self.inner_height


def document(frame: Frame, body: list[str], title: str, label: str) -> Markup:
    """The ``<svg>`` element: ``label`` is its accessible name (``aria-label``)."""
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {frame.width} {frame.height}" width="{frame.width}" '
        f'height="{frame.height}" xmlns="http://www.w3.org/2000/svg">',
        text(frame.left, 16, title, "title"),
        *body,
        "</svg>",
    ]
    return Markup("".join(parts))  # noqa: S704 - every piece of text went through escape()


def axes(
    frame: Frame,
    x_ticks: list[float],
    y_ticks: list[float],
    x_label: str,
    y_label: str,
) -> list[str]:
    """Grid lines, tick labels and axis titles for numeric axes."""
    x_low, x_high, y_low, y_high = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    out = []
    bottom = frame.top + frame.inner_height
    for tick in y_ticks:
        y = frame.y(tick, y_low, y_high)
        out.append(
            f'<line class="grid" x1="{frame.left}" x2="{frame.width - frame.right}" '
            f'y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        out.append(text(frame.left - 6, y + 4, tick_label(tick), anchor="end"))
    for tick in x_ticks:
        x = frame.x(tick, x_low, x_high)
        out.append(text(x, bottom + 15, tick_label(tick), anchor="middle"))
    out.append(
        f'<line class="axis" x1="{frame.left}" x2="{frame.width - frame.right}" '
        f'y1="{bottom}" y2="{bottom}"/>'
    )
    out.append(
        f'<line class="axis" x1="{frame.left}" x2="{frame.left}" y1="{frame.top}" y2="{bottom}"/>'
    )
    out.append(text(frame.left + frame.inner_width / 2, frame.height - 4, x_label, anchor="middle"))
    out.append(
        f'<text x="12" y="{frame.top + frame.inner_height / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {frame.top + frame.inner_height / 2:.1f})">'
        f"{escape(y_label)}</text>"
    )
    return out
