"""The states the ONNX record check follows (:mod:`sealroom.train.onnx_records`).

A tensor is either ``RECORDS`` (computed from the graph input, batch on axis 0, one row
per record) or :class:`Known` (no record reaches it: weights, constants, shapes). A Known
tensor may hold the batch size (``BATCH``) or numbers computed from it (``TAINT``). Known
values are followed through the shape plumbing exporters emit (``Shape → Gather →
Concat → Reshape``), so a reshape's target is checked entry by entry.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import onnx
from onnx import numpy_helper


class _Symbol:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


BATCH = _Symbol("BATCH")  # the number of records in the batch
TAINT = _Symbol("TAINT")  # a number computed from the batch size
BATCH_SYMBOL = "sealroom_batch"  # the graph inputs' first dim, for shape inference
MAX_KNOWN = 4096  # values followed for tensors up to this size
FULL = 2**31 - 1  # a Slice end at least this large keeps the whole axis


class Records:
    """A tensor with one row per record on axis 0."""

    by_batch = False

    def __repr__(self) -> str:
        return "RECORDS"


RECORDS = Records()


@dataclass(frozen=True)
class Known:
    """A tensor no record reaches; its flat values when small and computable."""

    entries: tuple[Any, ...] | None = None
    by_batch: bool = False  # some value depends on the batch size

    def __post_init__(self) -> None:
        if self.entries is not None and any(e is BATCH or e is TAINT for e in self.entries):
            object.__setattr__(self, "by_batch", True)


State = Records | Known


class Refused(Exception):
    """The node may mix records; the message says why, in one line."""


class Node:
    """One node with the states of its inputs, the opset and the inferred shapes."""

    def __init__(
        self,
        proto: onnx.NodeProto,
        inputs: list[State | None],
        opset: int,
        shapes: dict[str, tuple[object, ...] | None],
    ) -> None:
        self.proto = proto
        self.inputs = inputs
        self.opset = opset
        self.shapes = shapes
        self.attrs = {a.name: onnx.helper.get_attribute_value(a) for a in proto.attribute}

    @property
    def version(self) -> int:
        """The since-version of this operator's schema at the model's opset."""
        try:
            return int(onnx.defs.get_schema(self.proto.op_type, self.opset, "").since_version)
        except Exception:  # unknown operator: the newest semantics
            return self.opset

    def state(self, i: int) -> State | None:
        return self.inputs[i] if i < len(self.inputs) else None

    def records(self, i: int) -> bool:
        return self.state(i) is RECORDS

    def touches_records(self) -> bool:
        return any(s is RECORDS for s in self.inputs)

    def any_by_batch(self) -> bool:
        return any(s is not None and s.by_batch for s in self.inputs)

    def dims(self, i: int) -> tuple[object, ...] | None:
        if i >= len(self.proto.input) or not self.proto.input[i]:
            return None
        return self.shapes.get(self.proto.input[i])

    def rank(self, i: int) -> int:
        dims = self.dims(i)
        if dims is None:
            raise Refused(f"the rank of input {i} is unknown, so the batch axis cannot be followed")
        return len(dims)

    def norm(self, axis: int, data: int = 0) -> int:
        """``axis`` of input ``data`` as a non-negative index (the rank only when needed)."""
        return axis if axis >= 0 else axis + self.rank(data)

    def values(self, i: int, what: str, partial: bool = False) -> tuple[Any, ...]:
        """A constant argument (axes, shape, pads): fail closed when unknown. ``partial``
        lets single entries be unknown (a shape's per-record dims)."""
        state = self.state(i)
        entries = state.entries if isinstance(state, Known) else None
        if entries is None or (not partial and any(e is None for e in entries)):
            source = " from the batch size" if state is not None and state.by_batch else ""
            raise Refused(f"{what} is computed at run time{source}; the check needs it constant")
        return entries

    def axes(self, i: int, name: str) -> list[int] | None:
        """Axes from input ``i`` (newer opsets) or attribute ``name``; None when absent."""
        if self.state(i) is not None:
            return [int(a) for a in self.values(i, name)]
        value = self.attrs.get(name)
        return None if value is None else [int(a) for a in value]

    def require_per_record(self, *slots: int) -> None:
        """Inputs at ``slots`` are weights or settings: no record and no batch size in them."""
        for i in slots:
            state = self.state(i)
            if state is RECORDS:
                raise Refused(f"input {i} (a weight or setting) is computed from records")
            if state is not None and state.by_batch:
                raise Refused("uses the batch size as a value")

    def others_per_record(self, *keep: int) -> None:
        self.require_per_record(*(i for i in range(len(self.inputs)) if i not in keep))

    def out(self, state: State = RECORDS) -> list[State]:
        return [state] * len(self.proto.output)


def normalise(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def axis_of(node: Node, name: str, default: int, data: int = 0) -> int:
    axis = int(node.attrs.get(name, default))
    return axis if axis >= 0 else normalise(axis, node.rank(data))


# ---------------------------------------------------------------- known values

_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "Add": operator.add,
    "Sub": operator.sub,
    "Mul": operator.mul,
    "Div": lambda a, b: int(a / b) if isinstance(a, int) and isinstance(b, int) else a / b,
    "Equal": operator.eq,
    "Max": max,
    "Min": min,
}


def evaluate_known(node: Node) -> list[State]:
    """Outputs of a node no record reaches: values followed through shape plumbing."""
    op = node.proto.op_type
    inputs = node.inputs
    by_batch = node.any_by_batch()
    first = inputs[0] if inputs else None
    if op == "Shape":
        dims = node.dims(0)
        entries = (
            None
            if dims is None
            else tuple(d if d is BATCH or isinstance(d, int) else None for d in dims)
        )
        return node.out(Known(entries, by_batch=entries is None and by_batch))
    if op == "ConstantOfShape" and isinstance(first, Known) and first.entries is not None:
        return node.out(Known(_filled(first.entries, node.attrs.get("value"))))
    if op == "Where" and len(inputs) == 3 and all(isinstance(s, Known) for s in inputs):
        return node.out(Known(_where(*(s.entries for s in inputs if isinstance(s, Known)))))
    if op in ("Identity", "Cast", "Unsqueeze", "Squeeze", "Reshape", "Flatten") and isinstance(
        first, Known
    ):
        return node.out(Known(first.entries, by_batch=first.by_batch))
    if op == "Concat" and all(isinstance(s, Known) for s in inputs):
        parts = [s.entries for s in inputs if isinstance(s, Known)]
        if all(p is not None for p in parts):
            return node.out(Known(tuple(e for p in parts for e in p or ())))
    if op == "Gather" and isinstance(first, Known) and first.entries is not None:
        index = inputs[1] if len(inputs) > 1 else None
        if isinstance(index, Known) and index.entries is not None and not index.by_batch:
            try:
                return node.out(Known(tuple(first.entries[int(i)] for i in index.entries)))
            except (IndexError, TypeError, ValueError):
                pass
    if (
        op == "Slice"
        and isinstance(first, Known)
        and first.entries is not None
        and len(inputs) >= 3
    ):
        bounds = [s.entries if isinstance(s, Known) else None for s in inputs[1:3]]
        if all(b is not None and len(b) == 1 for b in bounds):
            lo, hi = (int(b[0]) for b in bounds if b is not None)
            return node.out(Known(first.entries[lo : min(hi, len(first.entries))]))
    if op in _ARITHMETIC and len(inputs) == 2:
        a, b = inputs
        if (
            isinstance(a, Known)
            and isinstance(b, Known)
            and a.entries is not None
            and b.entries is not None
        ):
            return node.out(Known(_elementwise(_ARITHMETIC[op], a.entries, b.entries)))
    return node.out(Known(by_batch=by_batch))


def _elementwise(
    fn: Callable[[Any, Any], Any], a: Sequence[Any], b: Sequence[Any]
) -> tuple[Any, ...] | None:
    if len(a) != len(b) and 1 not in (len(a), len(b)):
        return None
    n = max(len(a), len(b))
    out: list[Any] = []
    for k in range(n):
        x, y = a[0 if len(a) == 1 else k], b[0 if len(b) == 1 else k]
        if fn is operator.eq and _never_batch(x, y):
            out.append(False)  # torch's expand export asks "is this entry -1?" of the batch
        elif any(v is BATCH or v is TAINT for v in (x, y)):
            out.append(TAINT)
        elif x is None or y is None:
            out.append(None)
        else:
            try:
                out.append(fn(x, y))
            except (ArithmeticError, TypeError):
                out.append(None)
    return tuple(out)


def _never_batch(x: Any, y: Any) -> bool:
    """The batch size is at least 1: ``BATCH == k`` is false for any constant k < 1."""
    pair = {id(x): y, id(y): x}
    other = pair.get(id(BATCH))
    return other is not None and isinstance(other, int | float) and other < 1


def _where(
    cond: tuple[Any, ...] | None, a: tuple[Any, ...] | None, b: tuple[Any, ...] | None
) -> tuple[Any, ...] | None:
    if cond is None or a is None or b is None:
        return None
    n = max(len(cond), len(a), len(b))
    if any(len(t) not in (1, n) for t in (cond, a, b)):
        return None
    out: list[Any] = []
    for k in range(n):
        c = cond[0 if len(cond) == 1 else k]
        if c is True or c is False or isinstance(c, int):
            out.append((a if c else b)[0 if len(a if c else b) == 1 else k])
        else:
            out.append(TAINT if c is TAINT else None)
    return tuple(out)


def _filled(dims: tuple[Any, ...], value: Any) -> tuple[Any, ...] | None:
    """ConstantOfShape's values when small: ``value``'s one entry (0 by default)."""
    if not all(isinstance(d, int) and d >= 0 for d in dims):
        return None
    count = 1
    for d in dims:
        count *= d
    if count > MAX_KNOWN:
        return None
    if value is None:
        return (0.0,) * count
    if value.data_location != onnx.TensorProto.DEFAULT or len(value.external_data) > 0:
        return None  # never read a file an attribute names
    fill = numpy_helper.to_array(value).reshape(-1).tolist()[0]
    return (fill,) * count
