"""build_model: ONNX via onnx2torch, declarative stacks, architectures, safetensors weights."""

from __future__ import annotations

import io

import pytest
import torch
from safetensors.torch import save
from torch import nn

from sealroom.data import MemoryTree
from sealroom.pipeline.schema import ModelPart
from sealroom.train.export import export_onnx
from sealroom.train.models import ConvertedOnnx, ModelError, build_model


def onnx_bytes(model: nn.Module, shape: tuple[int, ...]) -> bytes:
    return export_onnx(model, shape).data


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3)
    )


DECLARATIVE = {
    "format": "declarative",
    "layers": [
        {"type": "flatten"},
        {"type": "linear", "params": {"in_features": 4, "out_features": 2}},
    ],
}


def test_onnx_model_converts_and_matches_the_original() -> None:
    original = small_cnn()
    part = ModelPart.model_validate({"model": {"format": "onnx"}, "input_shape": [1, 8, 8]})
    model = build_model(part, MemoryTree({"model.onnx": onnx_bytes(original, (1, 8, 8))}))
    assert isinstance(model, ConvertedOnnx)
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(model(x), original(x))
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in original.parameters()
    )


def test_onnx_garbage_is_refused_naming_the_file() -> None:
    part = ModelPart.model_validate({"model": {"format": "onnx"}, "input_shape": [1, 8, 8]})
    with pytest.raises(ModelError, match=r"model\.file model\.onnx: not a valid ONNX model"):
        build_model(part, MemoryTree({"model.onnx": b"\x80\x04not onnx"}))


def test_input_shape_mismatch_is_caught_before_training() -> None:
    part = ModelPart.model_validate({"model": {"format": "onnx"}, "input_shape": [1, 12, 12]})
    with pytest.raises(ModelError, match="input_shape"):
        build_model(part, MemoryTree({"model.onnx": onnx_bytes(small_cnn(), (1, 8, 8))}))


def test_declarative_stack_loads_safetensors_weights() -> None:
    weights = {"1.weight": torch.arange(8.0).reshape(2, 4), "1.bias": torch.tensor([1.0, -1.0])}
    part = ModelPart.model_validate(
        {"model": {**DECLARATIVE, "weights": "w.safetensors"}, "input_shape": [1, 2, 2]}
    )
    model = build_model(part, MemoryTree({"w.safetensors": save(weights)}))
    out = model(torch.ones(1, 1, 2, 2))
    assert out.tolist() == [[0 + 1 + 2 + 3 + 1.0, 4 + 5 + 6 + 7 - 1.0]]


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"1.weight": torch.zeros(2, 4)}, "missing"),
        (
            {"1.weight": torch.zeros(2, 4), "1.bias": torch.zeros(2), "x": torch.zeros(1)},
            "unexpected",
        ),
        ({"1.weight": torch.zeros(3, 4), "1.bias": torch.zeros(2)}, "shape"),
    ],
)
def test_weights_that_do_not_fit_are_refused(
    weights: dict[str, torch.Tensor], message: str
) -> None:
    part = ModelPart.model_validate(
        {"model": {**DECLARATIVE, "weights": "w.safetensors"}, "input_shape": [1, 2, 2]}
    )
    with pytest.raises(ModelError, match=message):
        build_model(part, MemoryTree({"w.safetensors": save(weights)}))


def test_pickled_weights_are_not_loaded() -> None:
    part = ModelPart.model_validate(
        {"model": {**DECLARATIVE, "weights": "w.pt"}, "input_shape": [1, 2, 2]}
    )
    buffer = io.BytesIO()
    torch.save({"1.weight": torch.zeros(2, 4)}, buffer)
    with pytest.raises(ModelError, match="not a safetensors file"):
        build_model(part, MemoryTree({"w.pt": buffer.getvalue()}))


def test_registered_architecture_builds() -> None:
    part = ModelPart.model_validate(
        {
            "model": {"format": "architecture", "name": "simple_cnn", "params": {"num_classes": 4}},
            "input_shape": [1, 28, 28],
        }
    )
    model = build_model(part, MemoryTree({}))
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 4)
