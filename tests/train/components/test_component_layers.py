"""Layers and architectures build from parameters only; the named ones are DP-compatible."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from opacus import GradSampleModule
from opacus.validators import ModuleValidator

from sealroom.errors import ConfigError
from sealroom.pipeline.schema import ArchitectureModel, LayerSpec
from sealroom.train.components.architectures import ARCHITECTURES, build_architecture
from sealroom.train.components.layers import LAYERS, build_layer, build_sequential

REQUIRED: dict[str, dict[str, Any]] = {
    "conv1d": {"in_channels": 1, "out_channels": 2},
    "conv2d": {"in_channels": 1, "out_channels": 2},
    "conv_transpose2d": {"in_channels": 1, "out_channels": 2},
    "linear": {"in_features": 3, "out_features": 2},
    "groupnorm": {"num_groups": 1, "num_channels": 2},
    "layernorm": {"normalized_shape": [3]},
    "instancenorm2d": {"num_features": 2},
    "batchnorm1d": {"num_features": 2},
    "batchnorm2d": {"num_features": 2},
}


@pytest.mark.parametrize("name", LAYERS.names())
def test_every_layer_builds_from_parameters(name: str) -> None:
    layer = build_layer(LayerSpec(type=name, params=REQUIRED.get(name, {})))
    assert isinstance(layer, torch.nn.Module)


def test_declarative_cnn_runs_forward() -> None:
    specs = [
        LayerSpec(type="conv2d", params={"in_channels": 1, "out_channels": 4, "padding": 1}),
        LayerSpec(type="groupnorm", params={"num_groups": 2, "num_channels": 4}),
        LayerSpec(type="relu"),
        LayerSpec(type="maxpool2d", params={"kernel_size": [2, 2]}),
        LayerSpec(type="flatten"),
        LayerSpec(type="linear", params={"in_features": 4 * 4 * 4, "out_features": 10}),
    ]
    assert build_sequential(specs)(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_layer_errors_name_the_layer() -> None:
    with pytest.raises(ConfigError, match=r"model.layers\[1\].type: unknown layer 'Conv2d'"):
        build_sequential([LayerSpec(type="relu"), LayerSpec(type="Conv2d")])
    with pytest.raises(ConfigError, match=r"layer.params: missing required parameter"):
        build_layer(LayerSpec(type="linear", params={"in_features": 3}))


def dp_ready(model: torch.nn.Module, x: torch.Tensor) -> None:
    assert ModuleValidator.validate(model, strict=False) == []
    wrapped = GradSampleModule(model)
    wrapped(x).sum().backward()
    for p in model.parameters():
        grad_sample = getattr(p, "grad_sample", None)  # set by Opacus
        assert grad_sample is not None and grad_sample.shape[0] == x.shape[0]


@pytest.mark.parametrize(
    "params",
    [
        {"channels": [8, 16, 32], "strides": [2, 2]},
        {"channels": [8, 16], "strides": [2], "norm": "group", "num_groups": 4, "num_res_units": 0},
    ],
)
def test_monai_unet_is_dp_compatible(params: dict[str, Any]) -> None:
    model = build_architecture(ArchitectureModel(name="monai_unet", params=params))
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    dp_ready(model, torch.randn(2, 1, 16, 16))


def test_simple_cnn_is_dp_compatible() -> None:
    model = build_architecture(ArchitectureModel(name="simple_cnn", params={"image_size": 8}))
    dp_ready(model, torch.randn(3, 1, 8, 8))
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_architecture_errors_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="divisible by num_groups"):
        build_architecture(
            ArchitectureModel(name="monai_unet", params={"norm": "group", "num_groups": 3})
        )
    with pytest.raises(ConfigError, match=r"model.params.depth: unknown parameter"):
        build_architecture(ArchitectureModel(name="simple_cnn", params={"depth": 3}))
    assert "monai_unet" in ARCHITECTURES and "simple_cnn" in ARCHITECTURES
