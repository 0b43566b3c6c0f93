"""Does an ONNX graph keep the records of a batch apart? A static check (issue 13).

DP-SGD bounds each record's influence by clipping its own gradient; that bound holds
only if record i's output depends on record i alone. ``Gemm → ReduceMean(axes=[0]) →
Sub`` lets every record move every other record's gradient. This walk follows which
tensors carry records (those computed from the graph input) with the batch on axis 0,
and which small integer tensors carry the batch size (``Shape``), and refuses every node
that reduces, reshapes, transposes, joins, indexes or normalises across axis 0, that
puts the batch elsewhere, that uses the batch size as a number, or that it cannot
classify. Findings are one line each: node name, operator, why.

The operator rules live in :mod:`sealroom.train.onnx_record_rules` and ``_shapes``.
"""

from __future__ import annotations

import onnx
from onnx import numpy_helper

from sealroom.train.onnx_check import DEFAULT_DOMAINS, is_external, short
from sealroom.train.onnx_record_rules import apply_rule
from sealroom.train.onnx_record_state import (
    BATCH,
    BATCH_SYMBOL,
    MAX_KNOWN,
    RECORDS,
    Known,
    Node,
    Refused,
    State,
    evaluate_known,
)


def record_mixing(model: onnx.ModelProto) -> list[str]:
    """Every node of ``model`` that could let one record's output depend on another's."""
    opset = _default_opset(model)
    shapes = _inferred_shapes(model)
    findings: list[str] = []
    _walk(model.graph, {}, opset, shapes, findings)
    return findings


def _walk(
    graph: onnx.GraphProto,
    outer: dict[str, State],
    opset: int,
    shapes: dict[str, tuple[object, ...] | None],
    findings: list[str],
) -> None:
    states: dict[str, State] = dict(outer)
    initializers = {t.name for t in graph.initializer}
    for tensor in graph.initializer:
        states[tensor.name] = Known(_values(tensor))
    for value in graph.input:
        if value.name not in initializers:
            states[value.name] = RECORDS
    downstream: set[str] = set()  # tensors after a refused node: their nodes are not reported
    for index, proto in enumerate(graph.node):
        inputs = [states.get(name, Known()) if name else None for name in proto.input]
        node = Node(proto, inputs, opset, shapes)
        try:
            outputs = _outputs(node, states)
        except Refused as refusal:
            if not downstream.intersection(proto.input):
                label = short(proto.name or f"#{index}")
                findings.append(f"node {label} ({short(proto.op_type)}): {refusal}")
            downstream.update(proto.output)
            outputs = [RECORDS] * len(proto.output)  # follow on as records
        if downstream.intersection(proto.input):
            downstream.update(proto.output)
        for name, state in zip(proto.output, outputs, strict=False):
            if name:
                states[name] = state


def _outputs(node: Node, states: dict[str, State]) -> list[State]:
    proto = node.proto
    if proto.domain not in DEFAULT_DOMAINS:
        if node.touches_records():
            raise Refused(
                f"operator of domain {short(proto.domain)} is not known to keep records apart"
            )
        return [Known(by_batch=node.any_by_batch())] * len(proto.output)
    if any(_subgraphs(proto)):
        outer = {n for g in _subgraphs(proto) for n in _names_used(g)}
        captured = [states[n] for n in outer if n in states]
        if node.touches_records() or any(s is RECORDS or s.by_batch for s in captured):
            raise Refused("control flow over records cannot be checked; unroll it")
        return [Known()] * len(proto.output)
    if proto.op_type == "Constant":
        return [Known(_constant_values(proto))]
    if not node.touches_records() and not _batch_shape_to_records(node):
        return evaluate_known(node)
    return apply_rule(node)


def _batch_shape_to_records(node: Node) -> bool:
    """Expand/ConstantOfShape/Tile whose shape argument holds the batch size make records."""
    return node.proto.op_type in ("Expand", "ConstantOfShape", "Tile") and node.any_by_batch()


def _subgraphs(proto: onnx.NodeProto) -> list[onnx.GraphProto]:
    graphs: list[onnx.GraphProto] = []
    for attribute in proto.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            graphs.append(attribute.g)
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            graphs.extend(attribute.graphs)
    return graphs


def _names_used(graph: onnx.GraphProto) -> set[str]:
    """Names a (nested) subgraph reads, its own definitions included: a superset is safe."""
    names: set[str] = set()
    for node in graph.node:
        names.update(node.input)
        for sub in _subgraphs(node):
            names |= _names_used(sub)
    return names


def _default_opset(model: onnx.ModelProto) -> int:
    versions = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    return max(versions) if versions else onnx.defs.onnx_opset_version()


def _values(tensor: onnx.TensorProto) -> tuple[object, ...] | None:
    """A small tensor's values, flattened; None for big ones (weights are never needed).
    Never reads external data (onnx would open the file it names)."""
    if is_external(tensor):
        return None
    count = 1
    for dim in tensor.dims:
        count *= dim
    if count > MAX_KNOWN:
        return None
    try:
        return tuple(numpy_helper.to_array(tensor).reshape(-1).tolist())
    except Exception:  # an odd dtype or malformed data: unknown, never a crash
        return None


def _constant_values(proto: onnx.NodeProto) -> tuple[object, ...] | None:
    for attribute in proto.attribute:
        if attribute.name == "value":
            return _values(attribute.t)
        if attribute.name in ("value_int", "value_float"):
            return (onnx.helper.get_attribute_value(attribute),)
        if attribute.name in ("value_ints", "value_floats"):
            return tuple(onnx.helper.get_attribute_value(attribute))
    return None


def _inferred_shapes(model: onnx.ModelProto) -> dict[str, tuple[object, ...] | None]:
    """Each tensor's dims (int, BATCH, or None when unknown) from onnx shape inference,
    run on a copy whose graph inputs have a symbolic first axis and no large weights."""
    copy = onnx.ModelProto()
    copy.ir_version = model.ir_version
    copy.opset_import.extend(model.opset_import)
    graph = model.graph
    copy.graph.node.extend(graph.node)
    copy.graph.input.extend(graph.input)
    copy.graph.output.extend(graph.output)
    copy.graph.value_info.extend(graph.value_info)
    for tensor in graph.initializer:  # weights without their bytes: dims are all it needs
        small = _values(tensor) is not None  # shape arguments keep their values
        copy.graph.initializer.append(tensor if small else _stub(tensor))
    initializers = {t.name for t in graph.initializer}
    for value in copy.graph.input:
        dims = value.type.tensor_type.shape.dim
        if value.name not in initializers and len(dims) > 0:
            dims[0].Clear()
            dims[0].dim_param = BATCH_SYMBOL
    try:
        inferred = onnx.shape_inference.infer_shapes(copy, strict_mode=False, data_prop=True)
    except Exception:  # inference is a help, not a requirement: rules refuse without ranks
        inferred = copy
    shapes: dict[str, tuple[object, ...] | None] = {}
    found = inferred.graph
    for value in [*found.input, *found.value_info, *found.output]:
        tensor_type = value.type.tensor_type
        if not tensor_type.HasField("shape"):
            shapes[value.name] = None
            continue
        shapes[value.name] = tuple(_dim(d) for d in tensor_type.shape.dim)
    for tensor in model.graph.initializer:
        shapes[tensor.name] = tuple(int(d) for d in tensor.dims)
    return shapes


def _stub(tensor: onnx.TensorProto) -> onnx.TensorProto:
    """Name, type and dims of a weight, without its bytes."""
    stub = onnx.TensorProto(name=tensor.name, data_type=tensor.data_type)
    stub.dims.extend(tensor.dims)
    return stub


def _dim(dim: onnx.TensorShapeProto.Dimension) -> object:
    if dim.HasField("dim_value"):
        return int(dim.dim_value)
    if dim.dim_param == BATCH_SYMBOL:
        return BATCH
    return None
