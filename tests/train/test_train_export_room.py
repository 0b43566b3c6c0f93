"""The room's path end to end: a written BatchNorm + Dropout model trains as written in
run_pipeline and comes back as ONNX that still holds both layers."""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
import pytest
from onnx import numpy_helper
from torch import nn

from sealroom.data import MemoryTree
from sealroom.pipeline.schema import ModelPart
from sealroom.train.export import export_onnx
from sealroom.train.run import run_pipeline
from tests.train.test_train_export_training import SHAPE, in_the_room, user_net
from tests.train.tiny import classification_pipeline, idx_tree


def ops(data: bytes) -> list[str]:
    return [node.op_type for node in onnx.load_from_string(data).graph.node]


def running_mean(data: bytes) -> list[float]:
    proto = onnx.load_from_string(data)
    [name] = [n.input[3] for n in proto.graph.node if n.op_type == "BatchNormalization"]
    [tensor] = [t for t in proto.graph.initializer if t.name == name]
    return [float(v) for v in numpy_helper.to_array(tensor)]


def test_the_room_trains_batchnorm_and_dropout_and_exports_them_again() -> None:
    written = export_onnx(user_net(), SHAPE).data
    assert "BatchNormalization" in ops(written) and "Dropout" in ops(written)
    model = ModelPart.model_validate(
        {"model": {"format": "onnx", "file": "model.onnx"}, "input_shape": list(SHAPE)}
    )
    pipeline = classification_pipeline().model_copy(update={"model": model})
    outcome = run_pipeline(pipeline, {"blobs": idx_tree()}, MemoryTree({"model.onnx": written}))
    trained = outcome.outputs["trained_model.onnx"]
    assert "BatchNormalization" in ops(trained) and "Dropout" in ops(trained)
    assert running_mean(trained) != running_mean(written)  # batch statistics were tracked
    assert outcome.metrics["accuracy"] >= 0.8
    in_the_room(trained)  # and the room can train it again


def test_save_model_refuses_in_one_line_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from scenarios.mnist.save_model import export_cli

    out = tmp_path / "model.onnx"
    monkeypatch.setattr(sys, "argv", ["save_model.py", "--out", str(out)])
    with pytest.raises(SystemExit) as exited:
        export_cli(lambda seed: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Dropout2d(0.2)), out, "x")
    assert exited.value.code == 1 and not out.exists()
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ONNX export: layer 1 (Dropout2d)") and "\n" not in err
