"""The ONNX walker and checks: every tensor is visited, real exports pass, labels name the spot."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper
from onnx.external_data_helper import _get_all_tensors

from scenarios.mnist.save_model import make_model, model_onnx_bytes
from sealroom.train.onnx_check import (
    ALLOWED_OPS,
    ModelError,
    check_onnx,
    is_external,
    parse_model,
    short,
    walk,
)
from tests.adversary.hostile_onnx import (
    HOSTILE,
    benign,
    external_tensor,
    via_sparse_initializer,
    via_training_info,
)
from tests.train.test_train_models import onnx_bytes, small_cnn


def external_labels(proto: onnx.ModelProto) -> list[str]:
    return [
        v.label
        for v in walk(proto)
        if isinstance(v.message, TensorProto) and is_external(v.message)
    ]


@pytest.mark.parametrize("name", list(HOSTILE))
def test_walk_finds_the_one_external_tensor_of_each_hostile_model(name: str) -> None:
    assert len(external_labels(HOSTILE[name]())) >= 1


def test_walk_visits_every_tensor_onnx_itself_knows() -> None:
    for build in HOSTILE.values():
        proto = build()
        walked = {
            v.message.SerializeToString() for v in walk(proto) if isinstance(v.message, TensorProto)
        }
        assert {t.SerializeToString() for t in _get_all_tensors(proto)} <= walked


def test_walk_reaches_tensors_onnx_helpers_miss() -> None:
    """Why the walk is by reflection: onnx's own helper skips these two places."""
    for proto in (via_sparse_initializer(), via_training_info()):
        assert not any(is_external(t) for t in _get_all_tensors(proto))
        assert external_labels(proto)


def test_labels_name_graph_node_attribute_and_tensor() -> None:
    (label,) = external_labels(HOSTILE["if_subgraph"]())[:1]
    assert "node 'if' ('If')" in label and "node 'leak' ('Constant')" in label
    assert label.endswith("attribute 'value' / t 'z'")


def test_subgraph_depth_counts_graphs() -> None:
    depths = {
        v.depth
        for v in walk(HOSTILE["nested_subgraph"]())
        if isinstance(v.message, onnx.GraphProto)
    }
    assert depths == {1, 2, 3}


def test_is_external_on_location_or_entries() -> None:
    assert is_external(external_tensor("w"))
    tensor = helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])
    assert not is_external(tensor)
    tensor.external_data.add(key="location", value="x")
    assert is_external(tensor)


def test_benign_and_exported_models_pass() -> None:
    for data in (
        benign().SerializeToString(),
        model_onnx_bytes(make_model(0)),
        onnx_bytes(small_cnn(), (1, 8, 8)),
    ):
        proto = check_onnx(data, "model.onnx")
        assert {n.op_type for n in proto.graph.node} <= ALLOWED_OPS


def test_operators_false_skips_only_the_allow_list() -> None:
    loop = helper.make_node("Loop", ["x"], ["y"], name="loop")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    data = helper.make_model(helper.make_graph([loop], "g", [x], [y])).SerializeToString()
    with pytest.raises(ModelError, match="operator 'Loop'"):
        check_onnx(data, "m.onnx")
    check_onnx(data, "m.onnx", operators=False)
    with pytest.raises(ModelError, match="external data"):
        check_onnx(HOSTILE["constant"]().SerializeToString(), "m.onnx", operators=False)


@pytest.mark.parametrize("data", [b"\x80\x04not onnx", b"\xff" * 64])
def test_garbage_is_one_line(data: bytes) -> None:
    with pytest.raises(ModelError, match=r"^m\.onnx: not a valid ONNX model \(\w+\)$"):
        parse_model(data, "m.onnx")


def test_short_quotes_and_cuts_names() -> None:
    assert short("a\nb") == "'a\\nb'"
    assert len(short("x" * 1000)) < 70


def test_every_allowed_operator_is_one_onnx2torch_converts() -> None:
    """The allow-list names nothing the converter would then refuse in a worse way."""
    from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY

    convertible = {key.operation_type for key in _CONVERTER_REGISTRY if key.domain == ""}
    assert convertible >= ALLOWED_OPS, sorted(ALLOWED_OPS - convertible)
    assert not {"If", "Loop", "Scan"} & ALLOWED_OPS
