"""Another job's ONNX model is data: hostile files are refused before any converter or
runtime sees them, in one line naming the step (load_model and evaluate alike)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sealroom.lab.attempts import ArtifactBlob, AttemptPayload
from sealroom.lab.runner import execute

REF = "${jobs.job-2.artifacts.model}"
ENTRY = """
name: judge
parameters:
  model: {type: artifact}
steps:
  - {name: data, task: load_data, args: {dataset: digits, train_size: 20, test_size: 10}}
  - {name: STEP, task: TASK, args: ARGS}
"""


def _graph(weight: TensorProto, op: str = "MatMul", domain: str = "") -> bytes:
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"]),
        helper.make_node(op, ["flat", "W"], ["output"], domain=domain),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 10])],
        initializer=[weight],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def _weight() -> TensorProto:
    return numpy_helper.from_array(np.zeros((64, 10), dtype=np.float32), "W")


def external_data_model() -> bytes:
    weight = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[64, 10])
    weight.data_location = TensorProto.EXTERNAL
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "../../../../../etc/passwd"
    return _graph(weight)


def run(task: str, args: str, data: bytes) -> str:
    entry = ENTRY.replace("STEP", "judge").replace("TASK", task).replace("ARGS", args)
    blob = ArtifactBlob("model", "onnx", "model.onnx", data)
    outcome = execute(AttemptPayload("job-3", 1, "e", entry, {"model": REF}, inputs={REF: blob}))
    assert outcome.status == "failed" and outcome.error is not None
    assert "\n" not in outcome.error
    return outcome.error


LOAD = ("load_model", '{file: "${parameters.model}"}')
EVAL = ("evaluate", '{model: "${parameters.model}", data: "${steps.data.data}"}')


@pytest.mark.parametrize(("task", "args"), [LOAD, EVAL])
def test_an_onnx_input_with_external_data_is_refused(task: str, args: str) -> None:
    error = run(task, args, external_data_model())
    assert error.startswith(f"step judge ({task}): ")
    assert "tensor data stored outside the model file (external data) is refused" in error


@pytest.mark.parametrize(("task", "args"), [LOAD, EVAL])
def test_an_onnx_input_with_a_foreign_operator_is_refused(task: str, args: str) -> None:
    error = run(task, args, _graph(_weight(), op="Exec", domain="evil.ops"))
    assert error.startswith(f"step judge ({task}): ")
    assert "operator domain 'evil.ops' is refused" in error


def test_bytes_that_are_not_onnx_are_refused() -> None:
    error = run(*LOAD, b"\xff" * 64)
    assert error.startswith("step judge (load_model): file: not a valid ONNX model")


def test_a_benign_model_of_the_same_shape_is_accepted() -> None:
    """The control: the refusals above are about the hostile parts, not the graph."""
    good = _graph(_weight())
    onnx.checker.check_model(onnx.load_from_string(good))
    entry = ENTRY.replace("STEP", "judge").replace("TASK", EVAL[0]).replace("ARGS", EVAL[1])
    blob = ArtifactBlob("model", "onnx", "model.onnx", good)
    outcome = execute(AttemptPayload("job-3", 1, "e", entry, {"model": REF}, inputs={REF: blob}))
    assert outcome.status == "succeeded", outcome.error
    assert [m.name for m in outcome.metrics] == ["accuracy"]
