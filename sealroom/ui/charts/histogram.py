"""Histograms over fixed buckets: a serving room's request latency."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from sealroom.ui.charts.svg import Frame, color, document, nice_ticks, text, tick_label


@dataclass(frozen=True)
class Bucket:
    """One bar: its label on the x axis (``≤ 5``, ``> 10000``) and how many fell in it."""

    label: str
    count: int


def histogram(
    buckets: Sequence[Bucket],
    *,
    title: str,
    x_label: str,
    y_label: str = "requests",
    frame: Frame | None = None,
) -> Markup:
    """One bar per bucket, in the order given; each bar carries its count (``data-count``
    and a tooltip), so a reader and a test see the same figures."""
    frame = frame or Frame(width=640, height=280, bottom=70)
    if not buckets:
        empty = [text(frame.width / 2, frame.height / 2, "no data", anchor="middle")]
        return document(frame, empty, title, f"{title}: no data")
    y_ticks = nice_ticks(0.0, float(max(max(b.count for b in buckets), 1)))
    y_high = y_ticks[-1]
    bottom = frame.top + frame.inner_height
    body: list[str] = []
    for tick in y_ticks:
        y = frame.y(tick, 0.0, y_high)
        body.append(
            f'<line class="grid" x1="{frame.left}" x2="{frame.width - frame.right}" '
            f'y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        body.append(text(frame.left - 6, y + 4, tick_label(tick), anchor="end"))
    slot = frame.inner_width / len(buckets)
    width = max(1.0, slot * 0.8)
    for i, bucket in enumerate(buckets):
        x = frame.left + i * slot + (slot - width) / 2
        top = frame.y(bucket.count, 0.0, y_high)
        label = escape(bucket.label)
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" '
            f'height="{bottom - top:.1f}" fill="{color(0)}" data-bucket="{label}" '
            f'data-count="{bucket.count:d}"><title>{label}: {bucket.count:d}</title></rect>'
        )
        cx, cy = x + width / 2, bottom + 10
        body.append(
            f'<text x="{cx:.1f}" y="{cy:.1f}" text-anchor="end" '
            f'transform="rotate(-50 {cx:.1f} {cy:.1f})">{label}</text>'
        )
    body.append(
        f'<line class="axis" x1="{frame.left}" x2="{frame.width - frame.right}" '
        f'y1="{bottom}" y2="{bottom}"/>'
    )
    body.append(text(frame.left + frame.inner_width / 2, frame.height - 4, x_label, "", "middle"))
    mid = frame.top + frame.inner_height / 2
    body.append(
        f'<text x="12" y="{mid:.1f}" text-anchor="middle" transform="rotate(-90 12 {mid:.1f})">'
        f"{escape(y_label)}</text>"
    )
    total = sum(b.count for b in buckets)
    return document(frame, body, title, f"{title}: {total} in {len(buckets)} buckets")
