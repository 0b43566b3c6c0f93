"""Operator rules for :mod:`sealroom.train.onnx_records`: which nodes keep records apart.

A rule either returns the states of a node's outputs or raises :class:`Refused` with one
line saying why. Anything without a rule is refused when a record or the batch size
reaches it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sealroom.train.onnx_record_shapes import (
    constant_of_shape,
    expand,
    pad,
    reshape,
    resize,
    shape,
    size,
    tile,
)
from sealroom.train.onnx_record_state import (
    FULL,
    RECORDS,
    Known,
    Node,
    Refused,
    State,
    axis_of,
    normalise,
)

# ---------------------------------------------------------------- element-wise

UNARY = {
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish",
    "Tanh", "Softplus", "Softsign", "Erf", "Clip", "Sqrt", "Reciprocal", "Neg", "Abs", "Exp",
    "Log", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan",
    "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Not", "IsNaN", "IsInf", "Cast", "CastLike",
    "Identity", "Dropout", "Gelu", "Mish", "Shrink", "ThresholdedRelu", "BitwiseNot",
}  # fmt: skip
BROADCAST = {
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Min", "Max", "Mean", "Sum", "Equal", "Greater",
    "GreaterOrEqual", "Less", "LessOrEqual", "And", "Or", "Xor", "Where", "BitwiseAnd",
    "BitwiseOr", "BitwiseXor", "BitShift",
}  # fmt: skip
PER_RECORD_LAYERS = {
    "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
    "LpPool", "GlobalLpPool", "LRN", "InstanceNormalization", "GroupNormalization",
    "DepthToSpace", "SpaceToDepth",
}  # fmt: skip


def unary(node: Node) -> list[State]:
    if node.proto.op_type == "PRelu":
        return broadcast(node)
    if not node.records(0):
        raise Refused("a setting of the operator is computed from records")
    node.others_per_record(0)
    return node.out()


def broadcast(node: Node) -> list[State]:
    """Records meet weights by broadcasting from the right: the batch must stay on axis 0."""
    present = [i for i, s in enumerate(node.inputs) if s is not None]
    ranks = {i: node.rank(i) for i in present}
    top = max(ranks.values())
    for i in present:
        state = node.inputs[i]
        if state is RECORDS:
            if ranks[i] != top:
                raise Refused(
                    f"input {i} (records, rank {ranks[i]}) broadcasts against rank {top}: "
                    "the batch axis would leave axis 0"
                )
        elif state is not None and state.by_batch:
            raise Refused("uses the batch size as a value")
        elif ranks[i] == top and (node.dims(i) or (None,))[0] != 1:
            raise Refused(
                f"input {i} has its own first axis, paired row by row with the records: "
                "a record's result would depend on its position in the batch"
            )
    return node.out()


def per_record_layer(node: Node) -> list[State]:
    if not node.records(0):
        raise Refused("its weights are computed from records")
    node.others_per_record(0)
    return node.out()


# ---------------------------------------------------------------- axes


def reduce(node: Node) -> list[State]:
    node.others_per_record(0, 1)
    axes = node.axes(1, "axes")
    if not axes:
        if int(node.attrs.get("noop_with_empty_axes", 0)):
            return node.out()
        raise Refused("reduces over every axis, the batch axis (0) too")
    if 0 in {node.norm(a) for a in axes}:
        raise Refused("reduces over the batch axis (0): every record's output depends on all")
    return node.out()


def single_axis(name: str, default: int | Callable[[Node], int], why: str) -> Callable[..., Any]:
    def rule(node: Node) -> list[State]:
        if not node.records(0):
            raise Refused("a setting of the operator is computed from records")
        node.others_per_record(0)
        fallback = default(node) if callable(default) else default
        if axis_of(node, name, fallback) == 0:
            raise Refused(why)
        return node.out()

    return rule


def _softmax_default(node: Node) -> int:
    return 1 if node.version < 13 else -1


def cumsum(node: Node) -> list[State]:
    node.others_per_record(0, 1)
    [axis] = node.values(1, "the axis")
    if node.norm(int(axis)) == 0:
        raise Refused("accumulates along the batch axis (0)")
    return node.out()


def flatten(node: Node) -> list[State]:
    axis = axis_of(node, "axis", 1)
    if axis == 0:
        raise Refused("flattens with axis 0: all records become one row")
    if axis > 1:
        raise Refused(f"flattens with axis {axis}: folds other axes into the batch axis")
    return node.out()


def transpose(node: Node) -> list[State]:
    perm = node.attrs.get("perm")
    first = int(perm[0]) if perm else node.rank(0) - 1
    if first != 0:
        raise Refused(f"moves the batch axis (perm[0] = {first}, not 0)")
    return node.out()


def squeeze(node: Node) -> list[State]:
    node.others_per_record(0, 1)
    axes = node.axes(1, "axes")
    if not axes:
        raise Refused(
            "squeezes every size-1 axis: the batch axis too when a batch holds one record"
        )
    if 0 in {node.norm(a) for a in axes}:
        raise Refused("squeezes the batch axis (0)")
    return node.out()


def unsqueeze(node: Node) -> list[State]:
    node.others_per_record(0, 1)
    axes = node.axes(1, "axes") or []
    rank = node.rank(0) + len(axes) if any(a < 0 for a in axes) else 0
    if 0 in {normalise(a, rank) for a in axes}:
        raise Refused("inserts an axis before the batch axis")
    return node.out()


def concat(node: Node) -> list[State]:
    for i, state in enumerate(node.inputs):
        if state is not RECORDS:
            raise Refused(f"joins input {i}, not per record, row by row with the records")
    if axis_of(node, "axis", 0) == 0:
        raise Refused("joins along the batch axis (0)")
    return node.out()


def split(node: Node) -> list[State]:
    node.others_per_record(0, 1)
    if axis_of(node, "axis", 0) == 0:
        raise Refused("splits along the batch axis (0)")
    return node.out()


def slice_(node: Node) -> list[State]:
    if not node.records(0):
        raise Refused("slices with bounds computed from records")
    node.others_per_record(0)
    starts: list[Any]
    ends: list[Any]
    axes: list[Any] | None
    steps: list[Any] | None
    if node.version < 10:
        starts, ends = list(node.attrs.get("starts", [])), list(node.attrs.get("ends", []))
        axes, steps = node.attrs.get("axes"), None
    else:
        starts = list(node.values(1, "starts", partial=True))
        ends = list(node.values(2, "ends", partial=True))
        axes = list(node.values(3, "axes")) if node.state(3) is not None else None
        steps = list(node.values(4, "steps", partial=True)) if node.state(4) is not None else None
    axes = list(axes) if axes is not None else list(range(len(starts)))
    steps = list(steps) if steps is not None else [1] * len(starts)
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=False):
        if node.norm(int(axis)) != 0:
            continue
        if None in (start, end, step) or not (start == 0 and end >= FULL and step == 1):
            raise Refused("slices the batch axis (0): keeps some records, drops others")
    return node.out()


def gather(node: Node) -> list[State]:
    data, indices = node.records(0), node.records(1)
    axis = axis_of(node, "axis", 0)
    if data and axis == 0:
        raise Refused("picks rows of the batch axis (0): records read other records")
    if data and indices:
        raise Refused("indexes records with indices computed from other records")
    if indices and axis != 0:
        raise Refused(f"looks up records along axis {axis}: the batch axis would move")
    return node.out()


def gather_elements(node: Node) -> list[State]:
    axis = axis_of(node, "axis", 0)
    data, indices = node.records(0), node.records(1)
    if data and indices and axis != 0:
        return node.out()
    if not data and indices and axis == 0:
        return node.out()
    raise Refused(f"gathers along axis {axis}: a record would read another row than its own")


def gather_nd(node: Node) -> list[State]:
    batch_dims = int(node.attrs.get("batch_dims", 0))
    data, indices = node.records(0), node.records(1)
    if batch_dims >= 1 and data and indices:
        return node.out()
    if batch_dims == 0 and not data and indices:
        return node.out()
    raise Refused("gathers across the batch axis: a record would read another row than its own")


# ---------------------------------------------------------------- products


def matmul(node: Node) -> list[State]:
    node.others_per_record(0, 1)
    ra, rb = node.rank(0), node.rank(1)
    a, b = node.records(0), node.records(1)
    top = max(ra, rb)
    if a and (ra < 2 or ra != top):
        raise Refused("multiplies with records on the contracted or broadcast side")
    if b and (rb < 3 or rb != top):
        raise Refused("contracts over the batch axis: records on the right of MatMul")
    for i, rank in ((0, ra), (1, rb)):
        if not node.records(i) and rank == top and top >= 3 and (node.dims(i) or (None,))[0] != 1:
            raise Refused(f"input {i} pairs its own first axis with the records")
    return node.out()


def gemm(node: Node) -> list[State]:
    if not node.records(0) or int(node.attrs.get("transA", 0)):
        raise Refused(
            "records are not the rows of A (transA or records in B): contracts over the batch"
        )
    node.require_per_record(1)
    if node.records(2):
        if node.rank(2) != 2:
            raise Refused("the bias C is computed from records with another rank")
    elif node.state(2) is not None:
        node.require_per_record(2)
        dims = node.dims(2)
        if dims is not None and len(dims) == 2 and dims[0] != 1:
            raise Refused("the bias C has its own rows, paired with the records")
    return node.out()


def einsum(node: Node) -> list[State]:
    raw = node.attrs.get("equation", b"")
    equation = (raw.decode() if isinstance(raw, bytes) else str(raw)).replace(" ", "")
    if "->" not in equation:
        raise Refused("an implicit output is refused; write the equation with '->'")
    lhs, rhs = equation.split("->")
    terms = lhs.split(",")
    batched = [t for t, s in zip(terms, node.inputs, strict=False) if s is RECORDS]
    if any("..." in t for t in batched):
        others = [t for t, s in zip(terms, node.inputs, strict=False) if s is not RECORDS]
        if (
            all(t.startswith("...") for t in batched)
            and rhs.startswith("...")
            and not any("..." in t for t in others)
        ):
            ranks = {node.rank(i) for i, s in enumerate(node.inputs) if s is RECORDS}
            if len(ranks) == 1:
                return node.out()
        raise Refused("the batch axis inside '...' cannot be followed here")
    letters = {t[:1] for t in batched}
    if len(letters) != 1:
        raise Refused("records of different operands are paired across the batch")
    [letter] = letters
    if not rhs.startswith(letter) or rhs.count(letter) != 1:
        raise Refused(f"sums or moves the batch index {letter!r}")
    for term, state in zip(terms, node.inputs, strict=False):
        if letter in term and (
            state is not RECORDS or not term.startswith(letter) or term.count(letter) != 1
        ):
            raise Refused(f"pairs the batch index {letter!r} with a non-record axis")
    return node.out()


def batch_norm(node: Node) -> list[State]:
    node.others_per_record(0)
    if int(node.attrs.get("training_mode", 0)):
        raise Refused("training_mode=1 normalises with statistics of the whole batch")
    if node.version < 7 and not int(node.attrs.get("is_test", 0)):
        raise Refused("is_test=0 normalises with statistics of the whole batch")
    if len([o for o in node.proto.output if o]) > 1:
        raise Refused("running statistics as outputs: normalises with the batch's statistics")
    return node.out()


def recurrent(node: Node) -> list[State]:
    if int(node.attrs.get("layout", 0)) != 1:
        raise Refused("sequence-first layout puts the batch on axis 1")
    if not node.records(0):
        raise Refused("its weights or states are computed from records")
    node.others_per_record(0)
    return node.out()


# ---------------------------------------------------------------- dispatch

RULES: dict[str, Callable[[Node], list[State]]] = {
    **dict.fromkeys(UNARY, unary),
    **dict.fromkeys(BROADCAST, broadcast),
    **dict.fromkeys(PER_RECORD_LAYERS, per_record_layer),
    "ArgMax": single_axis("axis", 0, "arg-max over the batch axis (0)"),
    "ArgMin": single_axis("axis", 0, "arg-min over the batch axis (0)"),
    "Softmax": single_axis("axis", _softmax_default, "softmax over the batch axis (0)"),
    "LogSoftmax": single_axis("axis", _softmax_default, "softmax over the batch axis (0)"),
    "Hardmax": single_axis("axis", _softmax_default, "hardmax over the batch axis (0)"),
    "LpNormalization": single_axis("axis", -1, "normalises over the batch axis (0)"),
    "TopK": single_axis("axis", -1, "top-k over the batch axis (0)"),
    "LayerNormalization": single_axis("axis", -1, "normalises over the batch axis (0) and after"),
    "CumSum": cumsum,
    "Flatten": flatten,
    "Transpose": transpose,
    "Squeeze": squeeze,
    "Unsqueeze": unsqueeze,
    "Concat": concat,
    "Split": split,
    "Slice": slice_,
    "Gather": gather,
    "GatherElements": gather_elements,
    "GatherND": gather_nd,
    "Shape": shape,
    "Size": size,
    "Reshape": reshape,
    "Expand": expand,
    "ConstantOfShape": constant_of_shape,
    "Tile": tile,
    "Pad": pad,
    "Resize": resize,
    "MatMul": matmul,
    "Gemm": gemm,
    "Einsum": einsum,
    "BatchNormalization": batch_norm,
    "RNN": recurrent,
    "GRU": recurrent,
    "LSTM": recurrent,
}
REDUCTIONS = (
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
    "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp",
)  # fmt: skip
RULES.update(dict.fromkeys(REDUCTIONS, reduce))


# Inputs that may carry the batch size: a shape argument whose first entry it is.
SHAPE_SLOTS = {"Reshape": 1, "Expand": 1, "ConstantOfShape": 0, "Tile": 1, "Resize": 3}


def apply_rule(node: Node) -> list[State]:
    """The outputs of a node some record (or the batch size) reaches, or Refused."""
    op = node.proto.op_type
    for i, state in enumerate(node.inputs):
        if isinstance(state, Known) and state.by_batch and SHAPE_SLOTS.get(op) != i:
            raise Refused("uses the batch size as a value: a record's result would depend on it")
    return RULES.get(op, _unknown)(node)


def _unknown(node: Node) -> list[State]:
    raise Refused("operator not known to keep records apart")
