"""MRI scenario under DP-SGD: the U-Net trains privately on tiny generated hospitals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scenarios.mri.generate import generate
from scenarios.mri.prepare import prepare
from sealroom.data import DirectoryTree, MemoryTree
from sealroom.errors import PrivacyError
from sealroom.pipeline.compose import compose
from sealroom.pipeline.schema import Pipeline
from sealroom.privacy.trainer import DPTrainer
from sealroom.train.run import run_pipeline

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "mri"
HOSPITALS = ("hospital_a", "hospital_b", "hospital_c")


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DirectoryTree]:
    root = tmp_path_factory.mktemp("mri")
    generate(root / "raw", providers=3, patients=3, shape=(16, 16, 8))
    for hospital in HOSPITALS:
        prepare(root / "raw" / hospital, root / hospital)
    return {h: DirectoryTree(root / h) for h in HOSPITALS}


def tiny(norm: str = "group", **train: Any) -> Pipeline:
    """The scenario's pipeline with a two-level U-Net on 16×16 slices, one short epoch."""
    document = compose(SCENARIO).model_dump(mode="json")
    params = document["model"]["model"]["params"]
    params.update(channels=[4, 8], strides=[2], norm=norm, num_groups=1)
    document["model"]["input_shape"] = [1, 16, 16]
    document["train"].update({"epochs": 1, "batch_size": 8, "log_every": 1, **train})
    document["privacy"]["delta"] = 1e-3
    document["eval"]["samples"] = 2
    return Pipeline.model_validate(document)


def test_unet_trains_with_dp_sgd_and_reports_the_spend(trees: dict[str, DirectoryTree]) -> None:
    outcome = run_pipeline(tiny(), trees, MemoryTree({}), trainer_factory=DPTrainer, device="cpu")
    report = json.loads(outcome.outputs["privacy_report.json"])
    assert 0 < report["epsilon_spent"] <= report["epsilon_target"] == 8.0
    assert report["steps"] >= 1
    assert any(line.startswith("DP-SGD: n=") for line in outcome.log)
    # No training statistic leaves a private run: counters and ε only, noisy test metrics.
    assert not any("Train loss" in line or "Dice score" in line for line in outcome.log)
    assert any(line.startswith("Epoch: 1 | Step: ") for line in outcome.log)
    assert {"dice", "jaccard", "hausdorff"} <= set(outcome.metrics)
    assert len(report["evaluation"]["releases"]) == 1
    assert "segmentation_samples.png" not in outcome.outputs  # it would show records
    assert outcome.onnx_max_abs_diff is not None and outcome.onnx_max_abs_diff < 1e-3


def test_batch_norm_unet_gets_group_norm_named_in_the_log(
    trees: dict[str, DirectoryTree],
) -> None:
    outcome = run_pipeline(
        tiny(norm="batch"), trees, MemoryTree({}), trainer_factory=DPTrainer, device="cpu"
    )
    swaps = [line for line in outcome.log if line.startswith("DP: replaced layer")]
    assert swaps and all("BatchNorm2d) with GroupNorm" in line for line in swaps)


def test_private_pipeline_refuses_the_plain_trainer(trees: dict[str, DirectoryTree]) -> None:
    with pytest.raises(PrivacyError, match="no differentially private trainer"):
        run_pipeline(tiny(), trees, MemoryTree({}), device="cpu")
