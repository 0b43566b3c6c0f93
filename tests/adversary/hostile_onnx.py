"""Hostile ONNX models built with onnx.helper: tensors that point at files outside the model.

Each builder returns a ModelProto whose graph is otherwise ordinary (input ``x`` of
shape [1, 4], output ``y``) so a refusal can only come from the hostile part.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx
from onnx import TensorProto, helper

CANARY_FILE = "canary.key"
CANARY = b"CANARY-SECRET-4f1c9e"  # 20 bytes: exactly 5 float32 values
OPSET = [helper.make_opsetid("", 17)]


def external_tensor(
    name: str, location: str = CANARY_FILE, dims: tuple[int, ...] = (5,)
) -> TensorProto:
    """A float tensor whose bytes 'live' in ``location``, relative to wherever it is read."""
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(dims))
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(len(CANARY)))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def plain_tensor(name: str, values: list[float]) -> TensorProto:
    return helper.make_tensor(name, TensorProto.FLOAT, [len(values)], values)


def graph(nodes: list[onnx.NodeProto], **kwargs: object) -> onnx.GraphProto:
    """x [1, 4] -> nodes -> y [1, 4]."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    return helper.make_graph(nodes, "g", [x], [y], **kwargs)  # type: ignore[arg-type]


def model(g: onnx.GraphProto, **kwargs: object) -> onnx.ModelProto:
    return helper.make_model(g, opset_imports=OPSET, **kwargs)  # type: ignore[arg-type]


def benign() -> onnx.ModelProto:
    """x + Constant(1) reshaped: passes every check and converts."""
    const = helper.make_node("Constant", [], ["c"], name="c", value=plain_tensor("c", [1.0] * 4))
    return model(graph([const, helper.make_node("Add", ["x", "c"], ["y"], name="add")]))


def via_constant() -> onnx.ModelProto:
    """The issue's attack: Constant.value read from a file in the working directory."""
    const = helper.make_node("Constant", [], ["c"], name="leak", value=external_tensor("c"))
    slice_ = helper.make_node("Identity", ["x"], ["y"], name="out")
    return model(graph([const, slice_]))


def via_constant_of_shape() -> onnx.ModelProto:
    shape = helper.make_node("Shape", ["x"], ["s"], name="shape")
    fill = helper.make_node(
        "ConstantOfShape", ["s"], ["y"], name="leak", value=external_tensor("v", dims=(1,))
    )
    return model(graph([shape, fill]))


def via_initializer() -> onnx.ModelProto:
    add = helper.make_node("Add", ["x", "w"], ["y"], name="add")
    return model(graph([add], initializer=[external_tensor("w")]))


def via_sparse_initializer() -> onnx.ModelProto:
    values = external_tensor("w")
    indices = helper.make_tensor("w_idx", TensorProto.INT64, [5], [0, 1, 2, 3, 4])
    sparse = helper.make_sparse_tensor(values, indices, [8])
    add = helper.make_node("Identity", ["x"], ["y"], name="out")
    return model(graph([add], sparse_initializer=[sparse]))


def via_sparse_attribute() -> onnx.ModelProto:
    indices = helper.make_tensor("i", TensorProto.INT64, [5], [0, 1, 2, 3, 4])
    sparse = helper.make_sparse_tensor(external_tensor("v"), indices, [8])
    const = helper.make_node("Constant", [], ["c"], name="leak", sparse_value=sparse)
    return model(graph([const, helper.make_node("Identity", ["x"], ["y"], name="out")]))


def via_tensors_attribute() -> onnx.ModelProto:
    """An attribute of type TENSORS (a list), which no standard op has: still walked."""
    node = helper.make_node("Identity", ["x"], ["y"], name="leak")
    node.attribute.append(helper.make_attribute("stash", [external_tensor("t")]))
    return model(graph([node]))


def via_if_subgraph() -> onnx.ModelProto:
    const = helper.make_node("Constant", [], ["z"], name="leak", value=external_tensor("z"))
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [5])
    branch = helper.make_graph([const], "branch", [], [z])
    cond = helper.make_node(
        "Constant",
        [],
        ["cond"],
        name="cond",
        value=helper.make_tensor("b", TensorProto.BOOL, [], [1]),
    )
    if_ = helper.make_node("If", ["cond"], ["y"], name="if", then_branch=branch, else_branch=branch)
    return model(graph([cond, if_]))


def via_nested_subgraph() -> onnx.ModelProto:
    """An initializer two If levels down."""
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [5])
    inner = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["z"], name="id")],
        "inner",
        [],
        [z],
        initializer=[external_tensor("w")],
    )
    cond = helper.make_tensor("b", TensorProto.BOOL, [], [1])
    mid_if = helper.make_node(
        "If", ["cond"], ["z"], name="mid", then_branch=inner, else_branch=inner
    )
    middle = helper.make_graph([mid_if], "middle", [], [z])
    top_cond = helper.make_node("Constant", [], ["cond"], name="cond", value=cond)
    top_if = helper.make_node(
        "If", ["cond"], ["y"], name="top", then_branch=middle, else_branch=middle
    )
    return model(graph([top_cond, top_if]))


def via_local_function() -> onnx.ModelProto:
    const = helper.make_node("Constant", [], ["c"], name="leak", value=external_tensor("c"))
    add = helper.make_node("Add", ["a", "c"], ["b"], name="add")
    function = helper.make_function("evil.local", "Leak", ["a"], ["b"], [const, add], OPSET)
    call = helper.make_node("Leak", ["x"], ["y"], name="call", domain="evil.local")
    opsets = [*OPSET, helper.make_opsetid("evil.local", 1)]
    return helper.make_model(graph([call]), opset_imports=opsets, functions=[function])


def via_training_info() -> onnx.ModelProto:
    proto = benign()
    info = proto.training_info.add()
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT, [5])
    info.initialization.CopyFrom(
        helper.make_graph(
            [helper.make_node("Identity", ["w0"], ["w"], name="init")],
            "init",
            [],
            [w],
            initializer=[external_tensor("w0")],
        )
    )
    return proto


def via_external_data_entry_only() -> onnx.ModelProto:
    """data_location says DEFAULT, but external_data entries are there: refused anyway."""
    proto = benign()
    tensor = proto.graph.node[0].attribute[0].t
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", CANARY_FILE
    return proto


HOSTILE: dict[str, Callable[[], onnx.ModelProto]] = {
    "constant": via_constant,
    "constant_of_shape": via_constant_of_shape,
    "initializer": via_initializer,
    "sparse_initializer": via_sparse_initializer,
    "sparse_attribute": via_sparse_attribute,
    "tensors_attribute": via_tensors_attribute,
    "if_subgraph": via_if_subgraph,
    "nested_subgraph": via_nested_subgraph,
    "local_function": via_local_function,
    "training_info": via_training_info,
    "external_data_entry_only": via_external_data_entry_only,
}
