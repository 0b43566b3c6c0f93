"""The consumer's model is data: ONNX tensors that point at host files are refused unread.

The attack (issue 12): a tensor with ``data_location = EXTERNAL`` and a relative
``location`` is read by onnx2torch relative to the working directory, so the
operator's key files would come back inside the trained model. Each test puts a
canary file where the hostile model points and proves it is neither opened, nor
quoted in the refusal, nor handed to the converter.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
import onnx2torch
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.data import MemoryTree
from sealroom.pipeline.schema import ModelPart
from sealroom.train import onnx_check
from sealroom.train.models import ModelError, build_model, load_onnx
from tests.adversary.hostile_onnx import (
    CANARY,
    CANARY_FILE,
    HOSTILE,
    benign,
    graph,
    model,
    via_constant,
)

WHERE = "model.file model.onnx"
_OPENED: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Record every open() of the canary seen by Python.

    onnx opens external data in C++ and wraps the descriptor with ``os.fdopen``, which
    audits ``open`` with the bare descriptor: resolve it through /proc/self/fd.
    """
    if event != "open":
        return
    target = args[0]
    if isinstance(target, int):
        try:
            target = os.readlink(f"/proc/self/fd/{target}")
        except OSError:
            return
    if isinstance(target, str | bytes | os.PathLike):
        name = os.fsdecode(target)
        if os.path.basename(name) == CANARY_FILE:
            _OPENED.append(name)


sys.addaudithook(_audit)  # cannot be removed; it only appends to _OPENED


@pytest.fixture
def canary_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Work in a folder holding the canary where every hostile tensor points."""
    (tmp_path / CANARY_FILE).write_bytes(CANARY)
    monkeypatch.chdir(tmp_path)
    _OPENED.clear()
    yield tmp_path
    _OPENED.clear()


@pytest.fixture
def conversions(monkeypatch: pytest.MonkeyPatch) -> list[onnx.ModelProto]:
    """Models that reached onnx2torch (load_onnx imports ``convert`` at call time)."""
    seen: list[onnx.ModelProto] = []
    real = onnx2torch.convert

    def spy(proto: onnx.ModelProto, *args: Any, **kwargs: Any) -> Any:
        seen.append(proto)
        return real(proto, *args, **kwargs)

    monkeypatch.setattr(onnx2torch, "convert", spy)
    return seen


def test_the_attack_is_real_without_the_check(canary_cwd: Path) -> None:
    """Control: onnx2torch on its own does read the canary into the model's state."""
    converted = onnx2torch.convert(via_constant())
    leaked = b"".join(t.numpy().tobytes() for t in converted.state_dict().values())
    assert CANARY in leaked and _OPENED


@pytest.mark.parametrize("name", list(HOSTILE))
def test_external_data_anywhere_is_refused_unread(
    name: str, canary_cwd: Path, conversions: list[onnx.ModelProto]
) -> None:
    data = HOSTILE[name]().SerializeToString()
    with pytest.raises(ModelError) as info:
        load_onnx(data, WHERE)
    message = str(info.value)
    assert message.startswith(f"{WHERE}: ") and "external data" in message
    assert "\n" not in message and CANARY.decode() not in message
    assert conversions == [] and _OPENED == []


def test_build_model_refuses_the_constant_attack(
    canary_cwd: Path, conversions: list[onnx.ModelProto]
) -> None:
    part = ModelPart.model_validate({"model": {"format": "onnx"}, "input_shape": [4]})
    tree = MemoryTree({"model.onnx": via_constant().SerializeToString()})
    with pytest.raises(ModelError, match=r"node 'leak' \('Constant'\) / attribute 'value'"):
        build_model(part, tree)
    assert conversions == [] and _OPENED == []


def test_task_predict_refuses_external_data_next_to_the_model(canary_cwd: Path) -> None:
    """`task predict` hands onnxruntime bytes, never a path it would resolve files against."""
    path = canary_cwd / "model.onnx"
    path.write_bytes(via_constant().SerializeToString())
    result = CliRunner().invoke(
        app, ["task", "predict", str(path), "--dataset", str(canary_cwd), "--out", "p.npy"]
    )
    assert result.exit_code == 1 and "external data" in result.output
    assert CANARY.decode() not in result.output and _OPENED == []
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (
            helper.make_node("NonMaxSuppression", ["x", "x"], ["y"], name="nms"),
            "'NonMaxSuppression'",
        ),
        (helper.make_node("Loop", ["x"], ["y"], name="loop"), "'Loop'"),
        (helper.make_node("Shell", ["x"], ["y"], name="sh", domain="evil"), "domain 'evil'"),
        (helper.make_node("Relu", ["x"], ["y"], name="r", domain="com.microsoft"), "com.microsoft"),
    ],
)
def test_operators_outside_the_allow_list_are_refused(
    node: onnx.NodeProto, expected: str, conversions: list[onnx.ModelProto]
) -> None:
    with pytest.raises(ModelError) as info:
        load_onnx(model(graph([node])).SerializeToString(), WHERE)
    assert expected in str(info.value) and f"node {node.name!r}" in str(info.value)
    assert conversions == []


def test_model_local_functions_are_refused_by_name(conversions: list[onnx.ModelProto]) -> None:
    add = helper.make_node("Add", ["a", "a"], ["b"], name="add")
    opset = [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)]
    function = helper.make_function("local", "Double", ["a"], ["b"], [add], opset)
    call = helper.make_node("Double", ["x"], ["y"], name="call", domain="local")
    proto = helper.make_model(graph([call]), opset_imports=opset, functions=[function])
    with pytest.raises(ModelError, match=r"function 'local:Double'.*functions are refused"):
        load_onnx(proto.SerializeToString(), WHERE)
    assert conversions == []


def test_oversized_model_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    data = benign().SerializeToString()
    monkeypatch.setattr(onnx_check, "MAX_ONNX_BYTES", len(data) - 1)
    with pytest.raises(ModelError, match=rf"{len(data):,} bytes \(at most {len(data) - 1:,}\)"):
        load_onnx(data, WHERE)


def test_too_many_nodes_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_check, "MAX_NODES", 10)
    nodes = [
        helper.make_node("Identity", [f"t{i}"], [f"t{i + 1}"], name=f"n{i}") for i in range(11)
    ]
    nodes[0].input[0], nodes[-1].output[0] = "x", "y"
    with pytest.raises(ModelError, match="over 10 nodes"):
        load_onnx(model(graph(nodes)).SerializeToString(), WHERE)


def test_deeply_nested_subgraphs_are_refused() -> None:
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    body = helper.make_graph([helper.make_node("Identity", ["x"], ["y"], name="id")], "b0", [], [y])
    for level in range(1, onnx_check.MAX_GRAPH_DEPTH + 1):
        node = helper.make_node(
            "If", ["c"], ["y"], name=f"if{level}", then_branch=body, else_branch=body
        )
        body = helper.make_graph([node], f"b{level}", [], [y])
    proto = model(graph(list(body.node)))
    with pytest.raises(ModelError, match=f"nest {onnx_check.MAX_GRAPH_DEPTH + 1} deep"):
        load_onnx(proto.SerializeToString(), WHERE)


def test_hostile_names_stay_on_one_short_line() -> None:
    node = helper.make_node("Evil\nOp" + "x" * 500, ["x"], ["y"], name="a\nb")
    with pytest.raises(ModelError) as info:
        load_onnx(model(graph([node])).SerializeToString(), WHERE)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400
