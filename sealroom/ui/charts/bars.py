"""Horizontal stacked bars: a privacy budget's spent / reserved / remaining ε."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from sealroom.ui.charts.svg import Frame, document, text


@dataclass(frozen=True)
class Part:
    """One segment of a bar: a name (legend and tooltip), its value and colour."""

    name: str
    value: float
    fill: str


def stacked_bar(parts: Sequence[Part], *, total: float, title: str, unit: str = "") -> Markup:
    """One bar of length ``total`` split into ``parts`` in order, with a legend that
    carries each part's number (so a reader and a test see the same figures)."""
    frame = Frame(width=460, height=74, left=8, right=8, top=24, bottom=26)
    body = [
        f'<rect x="{frame.left}" y="{frame.top}" width="{frame.inner_width:.1f}" height="18" '
        'fill="#eef1f5"/>'
    ]
    x = float(frame.left)
    scale = frame.inner_width / total if total > 0 else 0.0
    for part in parts:
        width = max(0.0, min(part.value * scale, frame.left + frame.inner_width - x))
        body.append(
            f'<rect x="{x:.1f}" y="{frame.top}" width="{width:.1f}" height="18" '
            f'fill="{part.fill}" data-part="{escape(part.name)}" data-value="{part.value:g}">'
            f"<title>{escape(part.name)}: {part.value:.4g}{escape(unit)}</title></rect>"
        )
        x += width
    legend_x = float(frame.left)
    for part in parts:
        body.append(
            f'<rect x="{legend_x:.1f}" y="{frame.height - 14}" width="10" height="10" '
            f'fill="{part.fill}"/>'
        )
        label = f"{part.name} {part.value:.3g}{unit}"
        body.append(text(legend_x + 14, frame.height - 5, label))
        legend_x += 24 + 7 * len(label)
    summary = ", ".join(f"{p.name} {p.value:.3g}" for p in parts)
    return document(frame, body, title, f"{title}: {summary} of {total:.3g}")
