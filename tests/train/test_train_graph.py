"""Declarative models as a small graph: ``id`` / ``inputs`` with add, concat and multiply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from opacus import GradSampleModule
from pydantic import ValidationError
from safetensors.torch import save
from torch import nn

from sealroom.data import MemoryTree
from sealroom.errors import ConfigError
from sealroom.pipeline.compose import load_part
from sealroom.pipeline.schema import DeclarativeModel, ModelPart
from sealroom.train.components.layers import LayerGraph, build_declarative
from sealroom.train.export import export_onnx
from sealroom.train.models import ModelError, build_model
from sealroom.train.run import run_pipeline
from tests.train.tiny import classification_pipeline, idx_tree


def conv(cin: int, cout: int, **extra: Any) -> dict[str, Any]:
    params = {"in_channels": cin, "out_channels": cout, "padding": 1}
    return {"type": "conv2d", "params": params, **extra}


RESIDUAL: list[dict[str, Any]] = [
    {**conv(1, 4), "id": "stem"},
    {"type": "relu", "id": "block_in"},
    conv(4, 4),
    {"type": "relu"},
    {**conv(4, 4), "id": "conv2"},
    {"type": "add", "inputs": ["block_in", "conv2"]},
    {"type": "relu"},
    {"type": "flatten"},
    {"type": "linear", "params": {"in_features": 4 * 6 * 6, "out_features": 3}},
]


def model_part(layers: list[dict[str, Any]], **extra: Any) -> ModelPart:
    model = {"format": "declarative", "layers": layers, **extra}
    return ModelPart.model_validate({"model": model, "input_shape": [1, 6, 6]})


def residual_model() -> nn.Module:
    torch.manual_seed(0)
    return build_model(model_part(RESIDUAL), MemoryTree({}))


def test_residual_block_adds_the_skip_to_the_block_output() -> None:
    model = residual_model()
    assert isinstance(model, LayerGraph)
    m = dict(model.named_children())
    x = torch.randn(5, 1, 6, 6)
    block_in = torch.relu(m["0"](x))
    conv2 = m["4"](torch.relu(m["2"](block_in)))
    expected = m["8"](torch.flatten(torch.relu(block_in + conv2), 1))
    torch.testing.assert_close(model(x), expected)


def test_graph_weights_use_the_same_keys_as_a_plain_stack() -> None:
    keys = set(residual_model().state_dict())
    assert keys == {f"{i}.{p}" for i in (0, 2, 4, 8) for p in ("weight", "bias")}
    state = {k: torch.full_like(v, 0.01) for k, v in residual_model().state_dict().items()}
    part = model_part(RESIDUAL, weights="w.safetensors")
    model = build_model(part, MemoryTree({"w.safetensors": save(state)}))
    assert all(bool((p == 0.01).all()) for p in model.parameters())


def test_concat_joins_channels_and_multiply_gates() -> None:
    layers = [
        {**conv(1, 2), "id": "a"},
        {**conv(1, 3), "id": "b", "inputs": ["input"]},
        {"type": "concat", "inputs": ["a", "b"], "id": "ab"},
        {"type": "sigmoid", "id": "gate"},
        {"type": "multiply", "inputs": ["ab", "gate"]},
    ]
    model = build_declarative(DeclarativeModel.model_validate({"layers": layers}).layers)
    x = torch.randn(2, 1, 6, 6)
    m = dict(model.named_children())
    ab = torch.cat([m["0"](x), m["1"](x)], dim=1)
    torch.testing.assert_close(model(x), ab * torch.sigmoid(ab))


def test_a_plain_stack_stays_sequential() -> None:
    linear = {"type": "linear", "params": {"in_features": 36, "out_features": 2}}
    part = model_part([{"type": "flatten", "id": "f"}, linear])
    assert isinstance(build_model(part, MemoryTree({})), nn.Sequential)


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([{"type": "relu", "inputs": ["stem"]}], r"layers\[0\]\.inputs: 'stem' is not an earlier"),
        (
            [{"type": "add", "inputs": ["later", "input"]}, {"type": "relu", "id": "later"}],
            r"layers\[0\]\.inputs: 'later' is not an earlier",
        ),
        (
            [{"type": "relu", "id": "a"}, {"type": "relu", "id": "a"}],
            r"layers\[1\]\.id: 'a' is used twice",
        ),
        ([{"type": "relu", "id": "input"}], r"layers\[0\]\.id: 'input' is used twice"),
    ],
)
def test_schema_refuses_inputs_that_name_no_earlier_layer(
    layers: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        DeclarativeModel.model_validate({"layers": layers})


def test_unknown_id_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(
        "model:\n  format: declarative\n  layers:\n"
        "    - {type: relu, id: a}\n    - {type: add, inputs: [a, b]}\n"
        "input_shape: [1, 6, 6]\n"
    )
    with pytest.raises(ConfigError, match=r"model\.yaml: .*'b' is not an earlier layer's id"):
        load_part(path)


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (
            [{"type": "relu", "id": "a"}, {"type": "add", "inputs": ["a"]}],
            r"model\.layers\[1\]\.inputs: 'add' merges layers; name at least two",
        ),
        (
            [{"type": "relu", "id": "a"}, {"type": "relu", "inputs": ["a", "input"]}],
            r"model\.layers\[1\]\.inputs: 'relu' takes one input",
        ),
    ],
)
def test_merge_arity_is_checked_when_building(layers: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_model(model_part(layers), MemoryTree({}))


def test_a_shape_mismatch_names_the_merge_layer() -> None:
    shrink: dict[str, Any] = {"type": "conv2d", "params": {"in_channels": 1, "out_channels": 1}}
    layers = [{**shrink, "id": "a"}, {"type": "add", "inputs": ["input", "a"]}]  # 6x6 + 4x4
    with pytest.raises(ModelError, match=r"rejects it at model\.layers\[1\] \(add\)"):
        build_model(model_part(layers), MemoryTree({}))


def test_residual_graph_exports_to_onnx_and_trains_under_opacus() -> None:
    model = residual_model()
    exported = export_onnx(model, [1, 6, 6], torch.randn(3, 1, 6, 6))
    assert exported.max_abs_diff < 1e-4
    wrapped = GradSampleModule(model)
    wrapped(torch.randn(4, 1, 6, 6)).sum().backward()
    for p in model.parameters():
        grad_sample = getattr(p, "grad_sample", None)  # set by Opacus
        assert grad_sample is not None and grad_sample.shape[0] == 4


def test_a_graph_model_trains_and_exports_through_run_pipeline() -> None:
    base = classification_pipeline()
    layers = [
        {"type": "flatten"},
        {"type": "linear", "params": {"in_features": 64, "out_features": 16}, "id": "h"},
        {"type": "relu"},
        {"type": "linear", "params": {"in_features": 16, "out_features": 16}, "id": "h2"},
        {"type": "add", "inputs": ["h", "h2"]},
        {"type": "relu"},
        {"type": "linear", "params": {"in_features": 16, "out_features": 3}},
    ]
    model = ModelPart.model_validate(
        {"model": {"format": "declarative", "layers": layers}, "input_shape": [1, 8, 8]}
    )
    outcome = run_pipeline(
        base.model_copy(update={"model": model}), {"blobs": idx_tree()}, MemoryTree({})
    )
    assert outcome.metrics["accuracy"] >= 0.9
    assert outcome.onnx_max_abs_diff is not None and outcome.onnx_max_abs_diff < 1e-4
