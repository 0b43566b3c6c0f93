"""Line charts: ε curves, training metrics per epoch, robustness curves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from sealroom.ui.charts.svg import Frame, axes, color, document, nice_ticks, text


@dataclass(frozen=True)
class Series:
    """One named line: ``points`` are (x, y), drawn in the order given."""

    name: str
    points: Sequence[tuple[float, float]]


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    y_floor: float | None = None,
    frame: Frame | None = None,
) -> Markup:
    """A chart with one polyline and dots per series, and a legend; ``y_floor`` pins the
    lower end of the y axis (0 for ε or accuracy)."""
    frame = frame or Frame()
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    if not xs:
        body = [text(frame.width / 2, frame.height / 2, "no data", anchor="middle")]
        return document(frame, body, title, f"{title}: no data")
    y_low = min(ys) if y_floor is None else min(y_floor, min(ys))
    x_ticks = nice_ticks(min(xs), max(xs))
    y_ticks = nice_ticks(y_low, max(ys))
    body = axes(frame, x_ticks, y_ticks, x_label, y_label)
    x_range = (x_ticks[0], x_ticks[-1])
    y_range = (y_ticks[0], y_ticks[-1])
    for i, line in enumerate(series):
        coords = [(frame.x(x, *x_range), frame.y(y, *y_range)) for x, y in line.points]
        stroke = color(i)
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        body.append(
            f'<polyline fill="none" stroke="{stroke}" stroke-width="2" points="{path}" '
            f'data-series="{escape(line.name)}"/>'
        )
        for (x, y), (px, py) in zip(coords, line.points, strict=True):
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{stroke}">'
                f"<title>{escape(line.name)}: {px:.4g}, {py:.4g}</title></circle>"
            )
        legend_y = frame.top + 4 + 14 * i
        legend_x = frame.width - frame.right - 120
        body.append(f'<rect x="{legend_x}" y="{legend_y}" width="10" height="10" fill="{stroke}"/>')
        body.append(text(legend_x + 14, legend_y + 9, line.name))
    names = ", ".join(s.name for s in series)
    return document(frame, body, title, f"{title}: {names}")
