"""Hostile names in every registry a config reaches, and in graph ids: refused at compose time.

The loss-expression suite is in test_pipeline_hostile.py; this one covers the other
places a config names code: metrics, loss components, schedulers, architectures,
transforms, parameter keys, and the ids / inputs of a declarative graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sealroom.errors import ConfigError
from sealroom.pipeline.compose import compose

HOSTILE = ["__import__", "os.system", "torch.os.system", "builtins.eval", "__class__", "eval()"]


def refusal(directory: Path) -> str:
    with pytest.raises(ConfigError) as info:
        compose(directory)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", HOSTILE)
def test_metric_names_reach_only_the_registry(make_scenario, name: str) -> None:
    message = refusal(make_scenario(eval={"task": "classification", "metrics": ["loss", name]}))
    assert message.startswith("eval.yaml: metrics[1]: ")


@pytest.mark.parametrize("name", [*HOSTILE, "torch.nn.CrossEntropyLoss"])
def test_loss_component_names_reach_only_the_registry(make_scenario, name: str) -> None:
    loss = {"components": {"ce": {"name": name}}, "expression": "ce"}
    assert refusal(make_scenario(loss=loss)).startswith("loss.yaml: components.ce.name: ")


@pytest.mark.parametrize("name", [*HOSTILE, "torch.optim.lr_scheduler.StepLR"])
def test_scheduler_names_reach_only_the_registry(make_scenario, name: str) -> None:
    train = {"optimizer": {"name": "sgd"}, "scheduler": {"name": name}}
    assert refusal(make_scenario(train=train)).startswith("train.yaml: scheduler.name: ")


@pytest.mark.parametrize("name", [*HOSTILE, "monai.networks.nets.UNet"])
def test_architecture_names_reach_only_the_registry(make_scenario, name: str) -> None:
    model = {"model": {"format": "architecture", "name": name}, "input_shape": [1, 8, 8]}
    assert refusal(make_scenario(model=model)).startswith("model.yaml: model.name: ")


@pytest.mark.parametrize("name", HOSTILE)
def test_transform_names_reach_only_the_registry(make_scenario, name: str) -> None:
    dataset = {
        "id": "digits",
        "source": {"format": "idx", "images": "i.gz", "labels": "l.gz"},
        "transforms": [{"name": name}],
    }
    message = refusal(make_scenario(dataset=dataset))
    assert message.startswith("dataset.yaml: ") and "transforms[0]" in message


@pytest.mark.parametrize("key", ["__class__", "__init__", "__globals__", "params", "self"])
def test_parameter_keys_are_only_the_factory_keywords(make_scenario, key: str) -> None:
    train = {"optimizer": {"name": "adam", "params": {key: 1}}}
    assert "optimizer.params." in refusal(make_scenario(train=train))
    layer: dict[str, Any] = {"type": "relu", "params": {key: 1}}
    model = {"model": {"format": "declarative", "layers": [layer]}, "input_shape": [4]}
    assert refusal(make_scenario(model=model)).startswith("model.yaml: model.layers[0].params")


@pytest.mark.parametrize(
    "layer",
    [
        {"type": "relu", "id": "__class__"},
        {"type": "relu", "id": "os.system"},
        {"type": "add", "inputs": ["__builtins__", "input"]},
        {"type": "add", "inputs": ["input", "torch.os"]},
        {"type": "add", "inputs": ["input"] * 9},
    ],
)
def test_graph_ids_and_inputs_are_plain_names(make_scenario, layer: dict[str, Any]) -> None:
    model = {"model": {"format": "declarative", "layers": [layer]}, "input_shape": [4]}
    assert refusal(make_scenario(model=model)).startswith("model.yaml: model.layers[0].")
