"""Configs that ask the room for unbounded memory are refused before anything is allocated."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sealroom.data import MemoryTree
from sealroom.errors import ConfigError, TrainingError
from sealroom.pipeline.schema import LayerSpec, ModelPart
from sealroom.train.components.layers import build_declarative
from sealroom.train.models import MAX_PARAMETERS, build_bounded, build_model


def part(model: dict[str, Any], input_shape: list[int]) -> ModelPart:
    return ModelPart.model_validate({"model": model, "input_shape": input_shape})


def declarative(*layers: dict[str, Any]) -> dict[str, Any]:
    return {"format": "declarative", "layers": list(layers)}


def refusal(model: dict[str, Any], input_shape: list[int]) -> str:
    with pytest.raises((TrainingError, ConfigError)) as info:
        build_model(part(model, input_shape), MemoryTree({}))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_huge_linear_layer_is_refused_without_allocating() -> None:
    huge = {"type": "linear", "params": {"in_features": 10**6, "out_features": 10**6}}
    message = refusal(declarative({"type": "flatten"}, huge), [10**6])
    assert message == (
        f"model.layers: the model has {10**12 + 10**6:,} parameters (at most {MAX_PARAMETERS:,})"
    )


def test_a_huge_architecture_is_refused() -> None:
    model = {"format": "architecture", "name": "simple_cnn", "params": {"width": 40_000}}
    assert "parameters (at most" in refusal(model, [1, 28, 28])


def test_integers_beyond_any_size_are_a_config_error() -> None:
    layer = {"type": "linear", "params": {"in_features": 4, "out_features": 10**30}}
    assert refusal(declarative(layer), [4]).startswith("model.layers[0].params: ")


@pytest.mark.parametrize("shape", [[1, 100_000, 100_000], [0, 28, 28], [1, -28, 28]])
def test_input_shapes_are_bounded_before_a_sample_is_made(shape: list[int]) -> None:
    message = refusal(declarative({"type": "flatten"}), shape)
    assert message.startswith(f"model.input_shape {shape}: sizes must be >= 1")


def test_an_exploding_activation_fails_cleanly() -> None:
    layer = {"type": "upsample", "params": {"scale_factor": 1e9}}
    assert refusal(declarative(layer), [1, 28, 28]).startswith("model.input_shape [1, 28, 28]: ")


def test_counting_on_the_meta_device_draws_no_random_numbers() -> None:
    specs = [LayerSpec(type="linear", params={"in_features": 8, "out_features": 4})]
    torch.manual_seed(0)
    plain = build_declarative(specs)
    torch.manual_seed(0)
    bounded = build_bounded(lambda: build_declarative(specs), "model.layers")
    assert all(
        torch.equal(a, b) for a, b in zip(plain.parameters(), bounded.parameters(), strict=True)
    )
    assert all(p.device.type == "cpu" for p in bounded.parameters())
