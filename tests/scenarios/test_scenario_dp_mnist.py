"""scenarios/dp-mnist: configs compose, the CNN needs no DP fixes, the contract admits the run."""

from __future__ import annotations

from pathlib import Path

import yaml
from opacus.validators import ModuleValidator

from scenarios.mnist.dp_cnn import make_model
from scenarios.mnist.save_model import model_onnx_bytes
from sealroom.data import MemoryTree
from sealroom.pipeline.compose import compose
from sealroom.train.models import build_model

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "dp-mnist"


def test_pipeline_is_private_and_the_onnx_cnn_is_dp_ready() -> None:
    pipeline = compose(SCENARIO)
    assert pipeline.privacy is not None and pipeline.privacy.epsilon == 3.0
    onnx = model_onnx_bytes(make_model(0))
    model = build_model(pipeline.model, MemoryTree({"model.onnx": onnx}))
    assert ModuleValidator.validate(model, strict=False) == []
    assert not any("BatchNorm" in type(m).__name__ for m in model.modules())
    assert sum(p.numel() for p in model.parameters()) == 26_010


def test_contract_values_admit_the_scenario_pipeline() -> None:
    pipeline = compose(SCENARIO)
    values = yaml.safe_load((SCENARIO / "contract.yaml").read_text())
    constraints = values["constraints"]
    [dataset] = values["datasets"]
    assert pipeline.privacy is not None
    assert dataset["id"] == pipeline.datasets[0].id
    assert pipeline.privacy.epsilon <= dataset["privacy"]["per_run_epsilon"]
    assert pipeline.privacy.delta <= dataset["privacy"]["per_run_delta"]
    assert set(pipeline.eval.metrics) <= set(constraints["metrics"])
    assert pipeline.train.optimizer.name in constraints["optimizers"]
    assert pipeline.train.epochs <= constraints["max_epochs"]
    assert "privacy_report" in constraints["released_outputs"]
    assert constraints["require_privacy"] is True


def test_story_names_module_steps_the_engine_can_run() -> None:
    from sealroom.room.story import load_scenario

    story = load_scenario("dp-mnist")
    assert story.model is not None and story.model.prepare[0] == "scenarios.mnist.dp_cnn"
    assert [p.dataset for p in story.providers] == ["mnist"]


def test_the_hospital_declares_the_held_out_splits_the_room_uses() -> None:
    from sealroom.pipeline.declaration import check_declared_sources, read_declaration_draft
    from sealroom.room.story import load_scenario

    declaration = read_declaration_draft(SCENARIO / "declaration.yaml")
    pipeline = compose(SCENARIO)
    check_declared_sources({"mnist": declaration}, pipeline.datasets)  # trains on the train files
    assert declaration.seed == 0 and declaration.min_size == 100
    [provider] = load_scenario("dp-mnist").providers
    assert provider.declaration == "declaration.yaml"
    values = yaml.safe_load((SCENARIO / "contract.yaml").read_text())
    assert values["datasets"][0]["declaration_digest"].startswith("sha256:")
