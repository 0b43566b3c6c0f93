"""MRI scenario, consumer side: the parts compose; a join of unequal slice sizes is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios.mri.generate import generate
from scenarios.mri.prepare import PrepareConfig, prepare
from sealroom.data import DirectoryTree, load_splits
from sealroom.errors import DataError
from sealroom.pipeline.compose import compose
from sealroom.pipeline.schema import ArchitectureModel
from sealroom.train.components.losses import build_loss

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "mri"


def test_scenario_composes_to_a_private_unet_pipeline() -> None:
    pipeline = compose(SCENARIO)
    assert [d.id for d in pipeline.datasets] == ["hospital_a", "hospital_b", "hospital_c"]
    assert pipeline.join.kind == "union"
    assert pipeline.split.group_by == "patient"
    model = pipeline.model.model
    assert isinstance(model, ArchitectureModel) and model.name == "monai_unet"
    assert model.params["norm"] == "batch"
    assert pipeline.loss.expression == "dice + 2 * bce"
    assert pipeline.eval.task == "segmentation"
    assert pipeline.eval.samples == 0  # no overlays under DP
    assert {"dice", "jaccard", "hausdorff"} <= set(pipeline.eval.metrics)
    assert pipeline.privacy is not None and pipeline.privacy.epsilon == 8.0
    build_loss(pipeline.loss)  # the expression resolves to registered components


def test_union_of_hospitals_with_different_slice_sizes_is_refused(tmp_path: Path) -> None:
    generate(tmp_path / "raw", providers=2, patients=1, shape=(24, 24, 8))
    prepare(tmp_path / "raw" / "hospital_a", tmp_path / "hospital_a")
    prepare(tmp_path / "raw" / "hospital_b", tmp_path / "hospital_b", PrepareConfig(size=(16, 16)))
    pipeline = compose(SCENARIO)
    trees = {h: DirectoryTree(tmp_path / h) for h in ("hospital_a", "hospital_b")}
    with pytest.raises(DataError) as refused:
        load_splits(pipeline.datasets[:2], pipeline.join, pipeline.split, trees)
    message = str(refused.value)
    assert message.startswith("union join: sample shape of dataset hospital_b")
    assert "(1, 16, 16)" in message and "(1, 24, 24)" in message
    assert "dataset hospital_a" in message


def test_contract_template_allows_the_scenario_pipeline() -> None:
    from sealroom.contract.loading import load_contract_file
    from sealroom.crypto.identity import Party
    from sealroom.policy.pipeline_check import check_pipeline

    def keys(name: str) -> tuple[str, str]:
        identity = Party.generate(name, "provider").identity
        return identity.signing_key, identity.encryption_key

    contract = load_contract_file(SCENARIO / "contract.yaml", keys)
    assert [d.id for d in contract.datasets] == ["hospital_a", "hospital_b", "hospital_c"]
    pipeline = compose(SCENARIO)
    decision = check_pipeline(contract, pipeline)
    assert decision.allow, decision.violations
    louder = pipeline.model_copy(
        update={"privacy": pipeline.privacy.model_copy(update={"epsilon": 9.0})}  # type: ignore[union-attr]
    )
    refused = check_pipeline(contract, louder)
    assert "epsilon 9.0 exceeds dataset hospital_a's limit 8.0" in refused.violations


def test_provider_step_keeps_raw_volumes_out_of_the_sealed_folder(tmp_path: Path) -> None:
    from scenarios.mri.provider import main as provider_main

    out = tmp_path / "provider-hospital_b" / "hospital_b"
    provider_main(["hospital_b", str(out), "--patients", "2", "--shape", "24", "24", "8"])
    assert sorted(p.name for p in out.iterdir()) == ["slices.h5"]
    assert sorted(p.name for p in (out.parent / "raw").iterdir()) == ["BraTS_B_001", "BraTS_B_002"]
    with pytest.raises(SystemExit, match="unknown hospital 'hospital_z'"):
        provider_main(["hospital_z", str(out)])
