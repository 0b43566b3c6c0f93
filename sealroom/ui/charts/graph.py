"""A job graph as SVG: a layered layout computed here, nodes coloured by status.

Layers run left to right: a job sits one column right of its deepest dependency (longest
path from a root, Kahn's order). Jobs caught in a dependency cycle, which the lab refuses
but a damaged store may hold, go to one last column marked "cycle" instead of looping.
Within a column, jobs are ordered by the mean row of their dependencies (the barycenter
heuristic, two sweeps), which keeps most edges short; a column taller than
:data:`MAX_ROWS` wraps into sub-columns so fifty jobs still fit a screen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

from sealroom.ui.charts.svg import Frame, document, text

NODE_W = 184
NODE_H = 38
COL_GAP = 56
ROW_GAP = 12
MAX_ROWS = 14
LABEL_CHARS = 27
LEGEND_H = 26
# status -> (fill, stroke); unknown statuses get DEFAULT.
STATUS_COLORS = {
    "waiting": ("#eceff3", "#8a94a3"),
    "queued": ("#fff1d6", "#a15c00"),
    "running": ("#dfe9fb", "#1f5fbf"),
    "succeeded": ("#dcf1e2", "#1b7f3b"),
    "failed": ("#fbe1de", "#b3261e"),
    "cancelled": ("#f4f5f7", "#9aa3ae"),
    "missing": ("#ffffff", "#b3261e"),
}
DEFAULT = ("#ffffff", "#5c6675")
DASHED = frozenset({"cancelled", "missing"})


@dataclass(frozen=True)
class Node:
    """A job: ``depends_on`` names other nodes' ids (unknown ids become "missing" nodes);
    ``href`` is its page (None: not a link)."""

    id: str
    label: str
    status: str
    href: str | None
    depends_on: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True)
class Layout:
    columns: list[list[str]]  # node ids per layer, top to bottom
    cycle: frozenset[str]  # ids in a dependency cycle (placed in the last layer)


def layout(nodes: Sequence[Node]) -> Layout:
    ids = [n.id for n in nodes]
    known = set(ids)
    deps = {
        n.id: [d for d in dict.fromkeys(n.depends_on) if d in known and d != n.id] for n in nodes
    }
    dependants: dict[str, list[str]] = {i: [] for i in ids}
    for node_id, found in deps.items():
        for dep in found:
            dependants[dep].append(node_id)
    remaining = {i: len(deps[i]) for i in ids}
    depth = dict.fromkeys(ids, 0)
    ready = [i for i in ids if remaining[i] == 0]
    done: set[str] = set()
    while ready:
        current = ready.pop()
        done.add(current)
        for nxt in dependants[current]:
            depth[nxt] = max(depth[nxt], depth[current] + 1)
            remaining[nxt] -= 1
            if remaining[nxt] == 0:
                ready.append(nxt)
    cycle = frozenset(i for i in ids if i not in done)
    last = max((depth[i] for i in done), default=-1) + 1
    for node_id in cycle:
        depth[node_id] = last
    columns: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for node_id in ids:
        columns[depth[node_id]].append(node_id)
    for _ in range(2):
        row = {i: r for column in columns for r, i in enumerate(column)}
        for column in columns[1:]:
            column.sort(key=lambda i: _barycenter(deps[i], row, row[i]))
    return Layout(columns=[c for c in columns if c], cycle=cycle)


def _barycenter(found: list[str], row: dict[str, int], own: int) -> float:
    return sum(row[d] for d in found) / len(found) if found else float(own)


def _short(value: str) -> str:
    return value if len(value) <= LABEL_CHARS else value[: LABEL_CHARS - 1] + "…"


def job_graph(nodes: Sequence[Node], *, title: str) -> Markup:
    """The graph of ``nodes`` with a status legend; each node links to its ``href``."""
    known = {n.id for n in nodes}
    ghosts = [
        Node(dep, "not in the store", "missing", None)
        for dep in dict.fromkeys(d for n in nodes for d in n.depends_on)
        if dep not in known
    ]
    everything = [*ghosts, *nodes]
    if not everything:
        frame = Frame(width=300, height=60, left=8, right=8, top=24, bottom=8)
        return document(frame, [text(8, 44, "no jobs")], title, f"{title}: no jobs")
    shape = layout(everything)
    # A column taller than MAX_ROWS wraps into ceil(n / MAX_ROWS) sub-columns.
    position: dict[str, tuple[float, float]] = {}
    x = 12.0
    for column in shape.columns:
        wraps = math.ceil(len(column) / MAX_ROWS)
        for k, node_id in enumerate(column):
            sub, row = divmod(k, MAX_ROWS)
            position[node_id] = (x + sub * (NODE_W + COL_GAP / 2), row * (NODE_H + ROW_GAP))
        x += wraps * NODE_W + (wraps - 1) * COL_GAP / 2 + COL_GAP
    top = 24 + LEGEND_H
    rows = max(min(len(c), MAX_ROWS) for c in shape.columns)
    width = max(int(x - COL_GAP + 12), 420)
    height = int(top + rows * (NODE_H + ROW_GAP) + 8)
    frame = Frame(width=width, height=height, left=12, right=12, top=top, bottom=8)
    body = [
        '<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#8a94a3"/></marker></defs>'
    ]
    body.extend(_legend(sorted({n.status for n in everything}, key=_status_order)))
    by_id = {n.id: n for n in everything}
    for node in everything:
        for dep in dict.fromkeys(node.depends_on):
            if dep in position and dep != node.id:
                body.append(_edge(position[dep], position[node.id], top, node.id, dep))
    for node in everything:
        body.append(_node(by_id[node.id], position[node.id], top, node.id in shape.cycle))
    statuses = ", ".join(f"{n.id} {n.status}" for n in nodes)
    return document(frame, body, title, f"{title}: {statuses}")


def _status_order(status: str) -> tuple[int, str]:
    order = list(STATUS_COLORS)
    return (order.index(status), status) if status in order else (len(order), status)


def _legend(statuses: list[str]) -> list[str]:
    out = []
    x = 12.0
    for status in statuses:
        fill, stroke = STATUS_COLORS.get(status, DEFAULT)
        out.append(
            f'<rect class="legend" x="{x:.1f}" y="30" width="12" height="12" rx="2" '
            f'fill="{fill}" stroke="{stroke}" data-status="{escape(status)}"/>'
        )
        out.append(text(x + 16, 40, status))
        x += 28 + 7 * len(status)
    return out


def _edge(
    start: tuple[float, float], end: tuple[float, float], top: float, to: str, frm: str
) -> str:
    x1, y1 = start[0] + NODE_W, top + start[1] + NODE_H / 2
    x2, y2 = end[0], top + end[1] + NODE_H / 2
    bend = max(24.0, (x2 - x1) / 2)
    # An edge that skips columns is drawn fainter: it passes behind the jobs between.
    faint = ' stroke-opacity="0.45"' if x2 - x1 > COL_GAP + 1 else ""
    return (
        f'<path class="edge"{faint} d="M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} '
        f'{x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}" fill="none" stroke="#a9b1bd" '
        f'stroke-width="1.2" marker-end="url(#arrow)" data-from="{escape(frm)}" '
        f'data-to="{escape(to)}"/>'
    )


def _node(node: Node, at: tuple[float, float], top: float, in_cycle: bool) -> str:
    x, y = at[0], top + at[1]
    fill, stroke = STATUS_COLORS.get(node.status, DEFAULT)
    dash = ' stroke-dasharray="4 3"' if node.status in DASHED or in_cycle else ""
    note = f"{node.status}, in a dependency cycle" if in_cycle else node.status
    parts = [
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="5" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"{dash}/>',
        text(x + 8, y + 15, _short(node.id), "node-id"),
        text(x + 8, y + 30, _short(node.label if not in_cycle else "cycle · " + node.label)),
        f"<title>{escape(node.id)} · {escape(node.label)} · {escape(note)}</title>",
    ]
    attrs = f'class="node" data-job="{escape(node.id)}" data-status="{escape(node.status)}"'
    inner = "".join(parts)
    if node.href is None:
        return f"<g {attrs}>{inner}</g>"
    return f'<a {attrs} href="{escape(node.href)}">{inner}</a>'
