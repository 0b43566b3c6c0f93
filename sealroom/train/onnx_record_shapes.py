"""Record-check rules for the shape operators: the batch size only as a shape's first entry."""

from __future__ import annotations

import math
from typing import Any

from sealroom.train.onnx_record_state import (
    BATCH,
    TAINT,
    Known,
    Node,
    Refused,
    State,
    normalise,
)


def shape(node: Node) -> list[State]:
    dims = node.dims(0)
    if dims is None:
        return node.out(Known(by_batch=True))
    entries = (BATCH, *dims[1:])
    start = int(node.attrs.get("start", 0))
    end = node.attrs.get("end")
    rank = len(entries)
    lo = normalise(start, rank) if start < 0 else start
    hi = rank if end is None else (normalise(int(end), rank) if int(end) < 0 else int(end))
    return node.out(Known(entries[max(lo, 0) : min(hi, rank)]))


def size(node: Node) -> list[State]:
    return node.out(Known((TAINT,)))


def _shape_argument(node: Node, i: int) -> tuple[Any, ...]:
    entries = node.values(i, "the target shape", partial=True)
    if any(e is BATCH or e is TAINT for e in entries[1:]) or (entries and entries[0] is TAINT):
        raise Refused("uses the batch size inside a record's shape")
    return entries


def reshape(node: Node) -> list[State]:
    if not node.records(0):
        raise Refused("reshapes to a shape that holds the batch size: rows would be positional")
    entries = _shape_argument(node, 1)
    if not entries:
        raise Refused("reshapes records to a scalar")
    first = entries[0]
    if first is BATCH or (first == 0 and not int(node.attrs.get("allowzero", 0))):
        return node.out()
    dims = node.dims(0)
    if first == -1 and dims is not None and all(isinstance(d, int) for d in dims[1:]):
        rest = list(entries[1:])
        positive = all(isinstance(e, int) and e > 0 for e in rest)
        if positive and math.prod(rest) == math.prod(dims[1:]):  # type: ignore[arg-type]
            return node.out()
    raise Refused(f"reshapes with first entry {first!r}, not the batch: records may merge or split")


def expand(node: Node) -> list[State]:
    entries = _shape_argument(node, 1)
    rank = node.rank(0)
    if node.records(0):
        if len(entries) > rank:
            raise Refused("expands records with new leading axes: the batch axis would move")
        if len(entries) == rank and not (entries[0] is BATCH or entries[0] == 1):
            raise Refused("expands the batch axis")
        return node.out()
    dims = node.dims(0) or ()
    aligned = len(entries) - rank
    if entries and entries[0] is BATCH and (aligned > 0 or (dims and dims[0] == 1)):
        return node.out()  # the same row for every record
    raise Refused("expands a tensor along the batch axis row by row: rows would be positional")


def constant_of_shape(node: Node) -> list[State]:
    entries = _shape_argument(node, 0)
    if entries and entries[0] is BATCH:
        return node.out()
    raise Refused("builds a tensor from the batch size")


def tile(node: Node) -> list[State]:
    repeats = node.values(1, "repeats")
    if any(r is TAINT for r in repeats) or any(r is BATCH for r in repeats[1:]):
        raise Refused("tiles by the batch size")
    if node.records(0):
        if repeats and repeats[0] != 1:
            raise Refused("repeats records along the batch axis")
        return node.out()
    dims = node.dims(0) or ()
    if repeats and repeats[0] is BATCH and dims and dims[0] == 1:
        return node.out()
    raise Refused("tiles a tensor along the batch axis: rows would be positional")


def pad(node: Node) -> list[State]:
    if not node.records(0):
        raise Refused("pads with amounts computed from records")
    node.others_per_record(0)
    pads = node.attrs.get("pads", node.attrs.get("paddings"))
    if node.version >= 11:
        pads = node.values(1, "pads")
    if pads is None:
        raise Refused("pads without constant amounts")
    half = len(pads) // 2
    axes = list(range(half))
    if node.version >= 18 and node.state(3) is not None:
        axes = [node.norm(int(a)) for a in node.values(3, "axes")]
    for k, axis in enumerate(axes):
        if axis == 0 and (int(pads[k]) != 0 or int(pads[k + half]) != 0):
            raise Refused("pads the batch axis (0): adds or drops records")
    return node.out()


def resize(node: Node) -> list[State]:
    if not node.records(0):
        raise Refused("resizes with settings computed from records")
    if node.version >= 11:
        node.require_per_record(1)
    axes = node.attrs.get("axes")
    if axes is not None and 0 not in {node.norm(int(a)) for a in axes}:
        node.others_per_record(0, 3)
        return node.out()
    scales_slot, sizes_slot = (1, None) if node.version < 11 else (2, 3)
    if sizes_slot is not None and node.state(sizes_slot) is not None:
        sizes = _shape_argument(node, sizes_slot)
        if sizes and sizes[0] is BATCH:
            return node.out()
        raise Refused("resizes the batch axis (sizes[0] is not the batch size)")
    node.require_per_record(scales_slot)
    scales = node.values(scales_slot, "scales")
    if scales and float(scales[0]) == 1.0:
        return node.out()
    raise Refused("resizes the batch axis (scales[0] != 1): interpolates between records")
