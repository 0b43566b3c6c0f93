"""A small valid scenario folder, written part by part, for compose tests."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

PARTS: dict[str, dict[str, Any]] = {
    "pipeline": {
        "name": "mnist-digits",
        "split": {"train": 0.8, "val": 0.1, "test": 0.1, "seed": 7},
    },
    "model": {"model": {"format": "onnx", "file": "model.onnx"}, "input_shape": [1, 28, 28]},
    "dataset": {
        "id": "digits",
        "source": {"format": "idx", "images": "images.idx.gz", "labels": "labels.idx.gz"},
    },
    "loss": {
        "components": {"ce": {"name": "cross_entropy"}},
        "variables": {"alpha": 0.25, "gamma": 2},
        "expression": "alpha * (1 - pt)**gamma * ce",
    },
    "train": {
        "optimizer": {"name": "adam", "params": {"lr": 0.001}},
        "scheduler": {"name": "steplr", "params": {"step_size": 1, "gamma": 0.5}},
        "epochs": 2,
        "batch_size": 64,
    },
    "eval": {"task": "classification", "metrics": ["loss", "accuracy"]},
}


def write_parts(directory: Path, parts: dict[str, Any], suffix: str = ".yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in parts.items():
        path = directory / f"{name}{suffix}"
        if isinstance(content, str):
            path.write_text(content)
        elif suffix == ".json":
            path.write_text(json.dumps(content))
        else:
            path.write_text(yaml.safe_dump(content, sort_keys=False))
    return directory


MakeScenario = Callable[..., Path]


@pytest.fixture
def make_scenario(tmp_path: Path) -> MakeScenario:
    """``make_scenario(loss={...}, extra={"dataset_b": ...}, drop=["eval"], suffix=".json")``."""
    counter = iter(range(1000))

    def make(
        suffix: str = ".yaml",
        drop: tuple[str, ...] = (),
        extra: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Path:
        parts = {k: copy.deepcopy(v) for k, v in PARTS.items() if k not in drop}
        parts.update(overrides)
        parts.update(extra or {})
        return write_parts(tmp_path / f"scenario{next(counter)}", parts, suffix)

    return make


@pytest.fixture
def scenario(make_scenario: MakeScenario) -> Path:
    return make_scenario()
