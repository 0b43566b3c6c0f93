"""Check a party's ONNX model before anything converts or runs it: models are data.

An ONNX tensor can say "my bytes are in a file next to me" (``data_location =
EXTERNAL`` with a relative ``location``). onnx2torch and onnxruntime resolve that
against the working directory, so a model could pull the operator's key files into
the trained weights. Tensors hide in many places (initializers, sparse initializers,
node attributes, If/Loop/Scan bodies, local functions, training_info graphs), so the
walk here visits every message of the protobuf tree by reflection instead of a
hand-picked list of fields, and also runs onnx's own tensor walk as a cross-check.

The room converts only a small, known set of operators (the default ONNX domain,
ops onnx2torch maps onto ordinary torch layers) and bounds the size of the graph.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import onnx
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from onnx.external_data_helper import _get_all_tensors

from sealroom.errors import TrainingError

# Generous for any model a room trains (protobuf itself stops at 2 GiB).
MAX_ONNX_BYTES = 1 << 30
MAX_NODES = 100_000  # nodes in all graphs together; a ResNet-50 has a few hundred
MAX_GRAPH_DEPTH = 4  # the main graph is depth 1; each If/Loop/Scan body adds one
MAX_NAME_CHARS = 60  # names are the sender's text: shorten them in messages

DEFAULT_DOMAINS = frozenset({"", "ai.onnx"})

# Operators of the default domain the room converts: layers, element-wise maths,
# reductions and shape plumbing that torch exporters emit for ordinary networks.
# Control flow (If, Loop, Scan) and anything onnx2torch cannot map stay out.
ALLOWED_OPS = frozenset(
    {
        # layers
        "Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization",
        "InstanceNormalization", "LayerNormalization", "LRN", "Dropout",
        "MaxPool", "AveragePool", "GlobalAveragePool", "Einsum",
        # activations
        "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid",
        "HardSwish", "Tanh", "Softmax", "LogSoftmax", "Softplus", "Softsign", "Erf", "Clip",
        # element-wise maths and comparisons
        "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Neg", "Abs", "Exp", "Log",
        "Floor", "Ceil", "Round", "Sign", "Mod", "Min", "Max", "Mean", "Sum",
        "Sin", "Cos", "Tan", "Asin", "Acos", "Atan",
        "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual",
        "And", "Or", "Xor", "Not", "Where", "IsNaN", "IsInf",
        # reductions
        "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd",
        "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp",
        "ArgMax", "ArgMin", "CumSum",
        # shapes and constants
        "Constant", "ConstantOfShape", "Identity", "Cast", "Shape", "Reshape", "Flatten",
        "Transpose", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Gather",
        "GatherElements", "GatherND", "Expand", "Tile", "Pad", "Resize", "DepthToSpace",
        "Range",
    }
)  # fmt: skip


class ModelError(TrainingError):
    """The model file or its weights cannot be loaded or do not fit the architecture."""


@dataclass(frozen=True)
class Visit:
    """One protobuf message of the model, where it sits and how deeply its graph nests."""

    message: Message
    label: str
    depth: int


def short(name: str) -> str:
    """A sender-chosen name, quoted and cut so it cannot flood a one-line message."""
    text = name if len(name) <= MAX_NAME_CHARS else name[:MAX_NAME_CHARS] + "..."
    return repr(text)


def _segment(field: FieldDescriptor, index: int | None, child: Message) -> str:
    """How one step down the tree reads in a message: names where the proto has them."""
    if isinstance(child, onnx.NodeProto):
        return f"node {short(child.name or f'#{index}')} ({short(child.op_type)})"
    if isinstance(child, onnx.AttributeProto):
        return f"attribute {short(child.name)}"
    if isinstance(child, onnx.TensorProto | onnx.SparseTensorProto):
        name = child.name if isinstance(child, onnx.TensorProto) else child.values.name
        return f"{field.name} {short(name or f'#{index}')}"
    if isinstance(child, onnx.FunctionProto):
        return f"function {short(child.domain + ':' + child.name)}"
    if isinstance(child, onnx.GraphProto):
        return f"{field.name} {short(child.name)}"
    return field.name if index is None else f"{field.name}[{index}]"


def walk(model: onnx.ModelProto) -> Iterator[Visit]:
    """Every message in ``model``, depth first, found by protobuf reflection.

    Reflection means a tensor in a field this code never heard of is still visited.
    Iterative (an explicit stack), so a deeply nested model cannot exhaust Python's stack.
    """
    stack = [Visit(model, "model", 0)]
    while stack:
        visit = stack.pop()
        yield visit
        children: list[Visit] = []
        for field, index, child in _message_fields(visit.message):
            depth = visit.depth + isinstance(child, onnx.GraphProto)
            label = f"{visit.label} / {_segment(field, index, child)}"
            children.append(Visit(child, label, depth))
        stack.extend(reversed(children))


def _message_fields(
    message: Message,
) -> Iterator[tuple[FieldDescriptor, int | None, Message]]:
    """The sub-messages of ``message``, by its descriptor.

    Only message-typed fields are read: ListFields() would also copy every tensor's
    raw_data into a bytes object, once per walk.
    """
    for field in message.DESCRIPTOR.fields:
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        value = getattr(message, field.name)  # a field of the schema, not a config string
        if field.message_type.GetOptions().map_entry:
            values = value.values()
            yield from ((field, i, v) for i, v in enumerate(values) if isinstance(v, Message))
        elif _repeated(field):
            yield from ((field, i, child) for i, child in enumerate(value))
        elif message.HasField(field.name):
            yield field, None, value


def _repeated(field: FieldDescriptor) -> bool:
    # protobuf >= 5 has is_repeated; 7 dropped ``label`` from the upb descriptor
    return bool(field.is_repeated)


def is_external(tensor: onnx.TensorProto) -> bool:
    """True when the tensor's bytes live (or claim to live) outside the model."""
    return tensor.data_location != onnx.TensorProto.DEFAULT or len(tensor.external_data) > 0


def parse_model(data: bytes, where: str) -> onnx.ModelProto:
    """Parse ONNX bytes without resolving anything outside them; size-capped first."""
    if len(data) > MAX_ONNX_BYTES:
        raise ModelError(
            f"{where}: the ONNX model is {len(data):,} bytes (at most {MAX_ONNX_BYTES:,})"
        )
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as exc:  # DecodeError, RecursionError, ... for malformed input
        raise ModelError(f"{where}: not a valid ONNX model ({type(exc).__name__})") from None
    return proto


def check_no_external_data(model: onnx.ModelProto, where: str) -> None:
    """Refuse a model any of whose tensors is stored outside it; nothing is read."""
    for visit in walk(model):
        if isinstance(visit.message, onnx.TensorProto) and is_external(visit.message):
            _refuse_external(where, visit.label, visit.message)
    # onnx's own walk, in case reflection and onnx ever disagree about where tensors are.
    for tensor in _get_all_tensors(model):
        if is_external(tensor):
            _refuse_external(where, f"tensor {short(tensor.name)}", tensor)


def _refuse_external(where: str, label: str, tensor: onnx.TensorProto) -> None:
    raise ModelError(
        f"{where}: {label}: tensor data stored outside the model file (external data) "
        "is refused; embed the weights in the ONNX file"
    )


def check_structure(model: onnx.ModelProto, where: str) -> None:
    """Bound the graph (node count, nesting) and refuse model-local functions."""
    nodes = 0
    for visit in walk(model):
        message = visit.message
        if visit.depth > MAX_GRAPH_DEPTH:
            raise ModelError(
                f"{where}: {visit.label}: graphs nest {visit.depth} deep "
                f"(at most {MAX_GRAPH_DEPTH})"
            )
        if isinstance(message, onnx.FunctionProto):
            raise ModelError(
                f"{where}: {visit.label}: model-local functions are refused; "
                "export the model with plain operators"
            )
        if isinstance(message, onnx.NodeProto):
            nodes += 1
            if nodes > MAX_NODES:
                raise ModelError(f"{where}: the model has over {MAX_NODES:,} nodes")


def check_operators(model: onnx.ModelProto, where: str) -> None:
    """Refuse any node outside the default domain or the room's operator allow-list."""
    for visit in walk(model):
        node = visit.message
        if not isinstance(node, onnx.NodeProto):
            continue
        if node.domain not in DEFAULT_DOMAINS:
            raise ModelError(
                f"{where}: {visit.label}: operator domain {short(node.domain)} is refused "
                "(only the default ONNX domain)"
            )
        if node.op_type not in ALLOWED_OPS:
            raise ModelError(
                f"{where}: {visit.label}: operator {short(node.op_type)} is not one the room "
                "converts (see docs/pipeline.md, ONNX models)"
            )


def check_onnx(data: bytes, where: str, *, operators: bool = True) -> onnx.ModelProto:
    """Parse and check a party's ONNX bytes; the model returned is safe to hand on.

    ``operators=False`` skips the allow-list, for models run by onnxruntime on the
    party's own machine; external data, functions and size are always checked.
    """
    model = parse_model(data, where)
    check_no_external_data(model, where)
    check_structure(model, where)
    if operators:
        check_operators(model, where)
    return model
