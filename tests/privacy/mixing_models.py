"""Models that mix the records of a batch (issue 13), as a consumer would write them."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import Tensor, nn


def issue_graph(
    input_dims: tuple[int, ...] = (4,), hidden: int = 8, classes: int = 3, opset: int = 13
) -> onnx.ModelProto:
    """``Gemm → ReduceMean(axes=[0]) → Sub → Tanh → Gemm``: each record minus the batch mean."""
    features = int(np.prod(input_dims))
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *input_dims])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])
    initializers = [
        numpy_helper.from_array(rng.normal(size=(hidden, features)).astype(np.float32), "w1"),
        numpy_helper.from_array(np.zeros(hidden, np.float32), "b1"),
        numpy_helper.from_array(rng.normal(size=(classes, hidden)).astype(np.float32), "w2"),
        numpy_helper.from_array(np.zeros(classes, np.float32), "b2"),
    ]
    nodes = [helper.make_node("Flatten", ["x"], ["flat"], axis=1, name="flatten")]
    nodes.append(helper.make_node("Gemm", ["flat", "w1", "b1"], ["h"], transB=1, name="fc1"))
    if opset >= 18:
        initializers.append(numpy_helper.from_array(np.array([0], np.int64), "axes"))
        nodes.append(helper.make_node("ReduceMean", ["h", "axes"], ["m"], name="batch_mean"))
    else:
        nodes.append(helper.make_node("ReduceMean", ["h"], ["m"], axes=[0], name="batch_mean"))
    nodes += [
        helper.make_node("Sub", ["h", "m"], ["c"], name="center"),
        helper.make_node("Tanh", ["c"], ["t"], name="tanh"),
        helper.make_node("Gemm", ["t", "w2", "b2"], ["y"], transB=1, name="fc2"),
    ]
    graph = helper.make_graph(nodes, "batch-mean", [x], [y], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def graph_of(
    nodes: list[onnx.NodeProto],
    inputs: tuple[int, ...] = (4,),
    outputs: tuple[int | str, ...] = ("N", 4),
    initializers: dict[str, np.ndarray] | None = None,
    opset: int = 17,
) -> onnx.ModelProto:
    """A one-input graph ``x [N, *inputs] -> y``; ``initializers`` by name."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *inputs])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(outputs))
    weights = [numpy_helper.from_array(v, k) for k, v in (initializers or {}).items()]
    graph = helper.make_graph(nodes, "g", [x], [y], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


class Lambda(nn.Module):
    """A linear layer followed by ``fn(h)``: the consumer's own forward."""

    def __init__(self, fn: Callable[[Tensor], Tensor], features: int = 4) -> None:
        super().__init__()
        self.fn = fn
        self.linear = nn.Linear(features, features)

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.linear(x))


def exported(
    module: nn.Module, input_shape: tuple[int, ...], training: bool = False
) -> onnx.ModelProto:
    """``module`` as torch exports it (dynamic batch axis), optionally in training mode."""
    buffer = io.BytesIO()
    mode = torch.onnx.TrainingMode.TRAINING if training else torch.onnx.TrainingMode.EVAL
    module.train(training)
    torch.onnx.export(
        module,
        (torch.randn(8, *input_shape),),
        buffer,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
        opset_version=17,
        dynamo=False,
        training=mode,
        do_constant_folding=not training,
    )
    return onnx.load_from_string(buffer.getvalue())
