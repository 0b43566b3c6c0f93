"""Export: ONNX round trip through onnxruntime (also for onnx2torch models) and safetensors."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from safetensors.torch import load
from torch import nn

from sealroom.data import MemoryTree
from sealroom.pipeline.schema import ModelPart
from sealroom.train.export import ExportError, export_onnx, export_safetensors
from sealroom.train.models import build_model
from tests.train.test_train_models import onnx_bytes, small_cnn


def test_onnx_round_trip_matches_torch_on_any_batch_size() -> None:
    model = small_cnn()
    exported = export_onnx(model, [1, 8, 8], check_batch=torch.randn(4, 1, 8, 8))
    assert exported.max_abs_diff < 1e-4
    session = ort.InferenceSession(exported.data, providers=["CPUExecutionProvider"])
    batch = torch.randn(11, 1, 8, 8)  # another batch size: the batch axis is dynamic
    (out,) = session.run(["output"], {"input": batch.numpy()})
    np.testing.assert_allclose(out, model(batch).detach().numpy(), atol=1e-4)


def test_onnx2torch_model_exports_again() -> None:
    part = ModelPart.model_validate({"model": {"format": "onnx"}, "input_shape": [1, 8, 8]})
    converted = build_model(part, MemoryTree({"model.onnx": onnx_bytes(small_cnn(), (1, 8, 8))}))
    exported = export_onnx(converted, [1, 8, 8], check_batch=torch.randn(3, 1, 8, 8))
    assert exported.max_abs_diff < 1e-4


def test_unexportable_model_is_an_export_error() -> None:
    class Branchy(nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"a": x}  # no tensor output named "output"

    with pytest.raises(ExportError):
        export_onnx(Branchy(), [2])


def test_safetensors_holds_every_parameter() -> None:
    model = small_cnn()
    state = load(export_safetensors(model))
    assert set(state) == set(model.state_dict())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_export_leaves_the_model_as_it_was() -> None:
    model = small_cnn().train()
    export_onnx(model, [1, 8, 8])
    assert model.training
    assert next(model.parameters()).device.type == "cpu"
