"""Under privacy a BatchNorm the consumer wrote is refused by name, with a GroupNorm hint.

The export now keeps BatchNorm in the ONNX graph (it used to fold it into the Conv), so
the room sees it: batch statistics mix the records of a batch, and swapping the layer
for GroupNorm would train another network than the one written.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from sealroom.data import MemoryTree
from sealroom.errors import ConfigError, PrivacyError
from sealroom.pipeline.checks import check_private_model
from sealroom.pipeline.schema import ModelPart, Pipeline
from sealroom.privacy.compat import make_private_compatible
from sealroom.privacy.independence import check_pipeline_model
from sealroom.train.export import export_onnx
from sealroom.train.models import load_onnx
from tests.privacy.helpers import private_pipeline

SHAPE = (1, 8, 8)


class Written(nn.Module):
    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), norm, nn.Tanh())
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(x).flatten(1)))


def onnx_pipeline() -> Pipeline:
    doc: dict[str, Any] = private_pipeline().model_dump(mode="json")
    doc["model"] = {"model": {"format": "onnx", "file": "model.onnx"}, "input_shape": list(SHAPE)}
    return Pipeline.model_validate(doc)


def test_the_rooms_check_refuses_a_written_batchnorm_by_name() -> None:
    data = export_onnx(Written(nn.BatchNorm2d(4)), SHAPE).data
    with pytest.raises(PrivacyError) as refused:
        check_pipeline_model(onnx_pipeline(), MemoryTree({"model.onnx": data}))
    message = str(refused.value)
    assert "layer features.1 (BatchNorm" in message
    assert "mixes records across the batch" in message
    assert message.endswith("use GroupNorm (nn.GroupNorm) instead") and "\n" not in message


def test_the_dp_trainer_path_refuses_it_too_instead_of_swapping() -> None:
    model = load_onnx(export_onnx(Written(nn.BatchNorm2d(4)), SHAPE).data, "model.file m.onnx")
    with pytest.raises(PrivacyError, match="use GroupNorm"):
        make_private_compatible(model)


def test_the_groupnorm_version_passes_with_its_dropout() -> None:
    data = export_onnx(Written(nn.GroupNorm(2, 4)), SHAPE).data
    check_pipeline_model(onnx_pipeline(), MemoryTree({"model.onnx": data}))
    model, fixes = make_private_compatible(load_onnx(data, "model.file m.onnx"))
    assert fixes == [] and any("Dropout" in type(m).__name__ for m in model.modules())


def test_a_declared_batchnorm_gets_the_same_hint() -> None:
    layers = [{"type": "batchnorm2d", "params": {"num_features": 1}}]
    part = ModelPart.model_validate(
        {"model": {"format": "declarative", "layers": layers}, "input_shape": list(SHAPE)}
    )
    with pytest.raises(ConfigError, match=r"use GroupNorm \(layer type groupnorm\)"):
        check_private_model(part)
