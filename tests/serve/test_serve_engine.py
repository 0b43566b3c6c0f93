"""The served model: checked before ORT parses it, and its input/output fixed at load."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sealroom.contract.inference import InputSignature
from sealroom.serve.engine import EngineError, EngineFailure, InputMismatch, ModelEngine
from sealroom.train.onnx_check import ModelError

WEIGHTS = np.arange(12, dtype=np.float32).reshape(4, 3) / 10.0


def linear_onnx(
    batch: str | int = "n",
    features: int = 4,
    dtype: int = TensorProto.FLOAT,
    out_shape: list[str | int] | None = None,
    op: str = "MatMul",
) -> bytes:
    """x[batch, features] @ W -> logits[batch, 3], built with onnx.helper."""
    x = helper.make_tensor_value_info("x", dtype, [batch, features])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_shape or [batch, 3])
    w = numpy_helper.from_array(WEIGHTS[:features], "w")
    nodes = [helper.make_node(op, ["x", "w"], ["logits"])]
    if dtype != TensorProto.FLOAT:
        nodes = [
            helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
            helper.make_node(op, ["xf", "w"], ["logits"]),
        ]
    if out_shape is not None and len(out_shape) == 3:
        nodes[-1] = helper.make_node(op, [nodes[-1].input[0], "w"], ["flat"])
        nodes.append(helper.make_node("Unsqueeze", ["flat", "axes"], ["logits"]))
        axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
        graph = helper.make_graph(nodes, "g", [x], [y], [w, axes])
    else:
        graph = helper.make_graph(nodes, "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


SIG = InputSignature(name="x", dtype="float32", shape=[4])


def test_a_model_runs_from_bytes_and_returns_its_logits() -> None:
    engine = ModelEngine.from_bytes(linear_onnx(), SIG, threads=1)
    batch = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    assert engine.classes == 3
    np.testing.assert_allclose(engine.run(batch), batch @ WEIGHTS, rtol=1e-5)


def test_an_unnamed_signature_takes_the_only_input() -> None:
    engine = ModelEngine.from_bytes(linear_onnx(), InputSignature(shape=[4]))
    assert engine.input_name == "x"


def test_external_data_is_refused_before_onnxruntime_sees_the_bytes() -> None:
    model = onnx.load_from_string(linear_onnx())
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="../../keys/ledger.key")
    with pytest.raises(ModelError, match="external"):
        ModelEngine.from_bytes(model.SerializeToString(), SIG)


def test_an_operator_outside_the_allow_list_is_refused() -> None:
    model = onnx.load_from_string(linear_onnx())
    model.graph.node[0].op_type = "Loop"
    with pytest.raises(ModelError, match="Loop"):
        ModelEngine.from_bytes(model.SerializeToString(), SIG)


def test_a_fixed_batch_axis_is_refused_with_a_clear_line() -> None:
    with pytest.raises(EngineError, match=r"batch axis is fixed at 1.*dynamic"):
        ModelEngine.from_bytes(linear_onnx(batch=1), SIG)


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        (InputSignature(name="pixels", shape=[4]), "contract names the input 'pixels'"),
        (InputSignature(name="x", dtype="int64", shape=[4]), "declares int64.*tensor\\(float\\)"),
        (InputSignature(name="x", shape=[5]), "axis 1 is 4 in the model, 5 in the contract"),
        (InputSignature(name="x", shape=[2, 2]), "rank 2"),
    ],
)
def test_a_signature_the_model_does_not_take_is_refused_at_load(
    signature: InputSignature, message: str
) -> None:
    with pytest.raises(EngineError, match=message):
        ModelEngine.from_bytes(linear_onnx(), signature)


def test_an_output_that_is_not_2d_logits_is_refused() -> None:
    with pytest.raises(EngineError, match="2-D logits"):
        ModelEngine.from_bytes(linear_onnx(out_shape=["n", 1, 3]), SIG)


def test_garbage_bytes_are_refused_in_one_line() -> None:
    with pytest.raises(ModelError):
        ModelEngine.from_bytes(b"not an onnx model", SIG)


def test_an_integer_input_is_declared_and_served() -> None:
    engine = ModelEngine.from_bytes(
        linear_onnx(dtype=TensorProto.UINT8), InputSignature(dtype="uint8", shape=[4])
    )
    batch = np.array([[1, 2, 3, 4]], dtype=np.uint8)
    np.testing.assert_allclose(engine.run(batch), batch.astype(np.float32) @ WEIGHTS, rtol=1e-5)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 4), dtype=np.float64), "must be float32"),
        (np.zeros((2, 5), dtype=np.float32), "shape \\[4\\]"),
        (np.zeros((4,), dtype=np.float32), "shape \\[4\\]"),
        (np.zeros((0, 4), dtype=np.float32), "1 to 8 examples"),
        (np.zeros((9, 4), dtype=np.float32), "1 to 8 examples"),
    ],
)
def test_check_input_refuses_what_the_signature_does_not_describe(
    array: np.ndarray, message: str
) -> None:
    engine = ModelEngine.from_bytes(linear_onnx(), SIG)
    with pytest.raises(InputMismatch, match=message):
        engine.check_input(array, max_examples=8)


def test_a_failing_run_says_a_fixed_line_without_data() -> None:
    engine = ModelEngine.from_bytes(linear_onnx(), SIG)
    with pytest.raises(EngineFailure, match=r"^the model failed on this batch$"):
        engine.run(np.full((1, 7), 1234.5, dtype=np.float32))
