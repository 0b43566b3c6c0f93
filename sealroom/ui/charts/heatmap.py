"""A matrix as coloured cells, each labelled with its value: transferability of adversarial
examples (rows: the model they were crafted on, columns: the model they were tried on)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from sealroom.ui.charts.svg import Frame, document, text

CELL_W = 64
CELL_H = 34
LOW_RGB = (247, 251, 255)
HIGH_RGB = (8, 48, 107)
EMPTY = "#eceff3"


def shade(value: float, low: float, high: float) -> str:
    """A colour from pale (``low``) to dark blue (``high``)."""
    t = 0.0 if high <= low else min(1.0, max(0.0, (value - low) / (high - low)))
    r, g, b = (round(a + (z - a) * t) for a, z in zip(LOW_RGB, HIGH_RGB, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float | None]],
    *,
    title: str,
    row_label: str,
    column_label: str,
    low: float = 0.0,
    high: float = 1.0,
) -> Markup:
    """``values[i][j]`` for row ``i``, column ``j`` (None: no value, drawn grey with a dash).
    Cells where the row and column name the same thing are outlined (the diagonal)."""
    left = 24 + 7 * max((len(r) for r in rows), default=4)
    top = 58
    frame = Frame(
        width=max(left + CELL_W * len(columns) + 16, 300),
        height=top + CELL_H * len(rows) + 14,
        left=left,
        right=16,
        top=top,
        bottom=14,
    )
    body = [
        text(left + CELL_W * len(columns) / 2, 32, column_label, anchor="middle"),
        f'<text x="10" y="{top + CELL_H * len(rows) / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 10 {top + CELL_H * len(rows) / 2:.1f})">{escape(row_label)}</text>',
    ]
    for j, column in enumerate(columns):
        body.append(text(left + CELL_W * j + CELL_W / 2, top - 8, column, anchor="middle"))
    for i, row in enumerate(rows):
        y = top + CELL_H * i
        body.append(text(left - 6, y + CELL_H / 2 + 4, row, anchor="end"))
        for j, column in enumerate(columns):
            x = left + CELL_W * j
            value = values[i][j] if j < len(values[i]) else None
            diagonal = ' stroke="#13233d" stroke-width="2"' if row == column else ' stroke="#fff"'
            fill = EMPTY if value is None else shade(value, low, high)
            label = "–" if value is None else f"{value:.2f}"
            dark = value is not None and value > low + 0.55 * (high - low)
            ink = "ink-light" if dark else "ink-dark"  # a class: the stylesheet sets text fill
            data = "" if value is None else f' data-value="{value:.6g}"'
            body.append(
                f'<g class="cell" data-row="{escape(row)}" data-column="{escape(column)}"{data}>'
                f'<rect x="{x}" y="{y}" width="{CELL_W}" height="{CELL_H}" '
                f'fill="{fill}"{diagonal}/>'
                f'<text x="{x + CELL_W / 2:.1f}" y="{y + CELL_H / 2 + 4:.1f}" text-anchor="middle" '
                f'class="{ink}">{escape(label)}</text>'
                f"<title>{escape(row)} → {escape(column)}: {escape(label)}</title></g>"
            )
    return document(frame, body, title, f"{title}: {len(rows)} × {len(columns)}")
