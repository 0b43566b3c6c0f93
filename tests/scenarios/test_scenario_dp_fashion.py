"""scenarios/dp-fashion: configs compose with the scattering transform, heads are DP-ready,
the contract admits the pipeline, the declaration parses, the prepare step says what is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from opacus.validators import ModuleValidator

from scenarios.fashion.prepare import FILES, MissingData, prepare
from scenarios.fashion.scatter_heads import head_onnx_bytes, make_head
from sealroom.contract.loading import load_contract_file
from sealroom.data import ArrayDataset, MemoryTree
from sealroom.data.transforms import apply_transforms
from sealroom.pipeline.checks import check_dataset, check_private_model
from sealroom.pipeline.compose import compose
from sealroom.policy import check_pipeline
from sealroom.privacy.fused import FusedClipper
from sealroom.train.models import build_model
from tests.kms.factories import random_key_b64

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "dp-fashion"


def test_pipeline_uses_the_registered_scattering_transform_at_epsilon_3() -> None:
    pipeline = compose(SCENARIO)
    assert pipeline.privacy is not None and pipeline.privacy.epsilon == 3.0
    assert pipeline.privacy.grad_sample_mode == "fused" and pipeline.privacy.poisson_sampling
    [dataset] = pipeline.datasets
    assert [t.name for t in dataset.transforms] == ["scattering"]
    check_dataset(dataset)
    check_private_model(pipeline.model)
    images = np.random.default_rng(0).random((2, 1, 28, 28)).astype(np.float32)
    ds = ArrayDataset(x=images, y=np.zeros(2, np.int64), name="fashion")
    features = apply_transforms(ds, dataset.transforms, where="datasets[0].transforms")
    assert features.x.shape[1:] == tuple(pipeline.model.input_shape or ())


def test_contract_admits_the_scenario_pipeline() -> None:
    def keys(name: str) -> tuple[str, str]:
        return random_key_b64(), random_key_b64()

    contract = load_contract_file(SCENARIO / "contract.yaml", resolve=keys)
    pipeline = compose(SCENARIO)
    decision = check_pipeline(contract, pipeline)
    assert decision.violations == [] and decision.allow
    budget = contract.datasets[0].privacy
    assert budget is not None and pipeline.privacy is not None
    assert pipeline.privacy.epsilon <= budget.per_run_epsilon
    assert contract.constraints.require_privacy


@pytest.mark.parametrize(("head", "params"), [("linear", 39_700), ("cnn", 17_706)])
def test_heads_convert_from_onnx_and_fused_clipping_takes_every_parameter(
    head: str, params: int
) -> None:
    pipeline = compose(SCENARIO)
    model = build_model(pipeline.model, MemoryTree({"model.onnx": head_onnx_bytes(head)}))
    assert sum(p.numel() for p in model.parameters()) == params
    assert ModuleValidator.validate(model, strict=False) == []
    x = torch.randn(3, 81, 7, 7)
    torch.testing.assert_close(model(x), make_head(head, 0)(x), rtol=1e-4, atol=1e-5)
    clipper = FusedClipper(model)  # refuses a model with a parameter it cannot clip
    clipper.close()


def test_declaration_holds_out_t10k_by_file_and_val_by_fraction() -> None:
    values = yaml.safe_load((SCENARIO / "declaration.yaml").read_text())
    assert values["dataset"] == compose(SCENARIO).datasets[0].id
    assert values["test"]["source"]["images"] == "t10k-images-idx3-ubyte.gz"
    assert values["val"] == {"fraction": 0.1} and values["min_size"] >= 1000
    train = compose(SCENARIO).datasets[0].source.model_dump()
    assert {k: train[k] for k in values["train"]["source"]} == values["train"]["source"]
    from sealroom.pipeline.declaration import check_declared_sources, read_declaration_draft

    declaration = read_declaration_draft(SCENARIO / "declaration.yaml")
    check_declared_sources({"fashion": declaration}, compose(SCENARIO).datasets)
    story = yaml.safe_load((SCENARIO / "story.yaml").read_text())
    assert story["providers"][0]["declaration"] == "declaration.yaml"
    contract = yaml.safe_load((SCENARIO / "contract.yaml").read_text())
    assert contract["datasets"][0]["declaration_digest"].startswith("sha256:")


def test_prepare_copies_the_idx_files_or_says_how_to_install_them(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    with pytest.raises(MissingData, match="apt-get install dataset-fashion-mnist"):
        prepare(tmp_path / "out", source)
    for name in FILES:
        (source / name).write_bytes(name.encode())
    written = prepare(tmp_path / "out", source)
    assert [p.read_bytes() for p in written] == [n.encode() for n in FILES]


def test_story_names_module_steps_the_engine_can_run() -> None:
    from sealroom.room.story import load_scenario

    story = load_scenario("dp-fashion")
    assert story.model is not None and story.model.prepare[0] == "scenarios.fashion.scatter_heads"
    assert [p.dataset for p in story.providers] == ["fashion"]


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(
    not (FASHION / FILES[0]).is_file(), reason="dataset-fashion-mnist not installed"
)
def test_scenario_trains_end_to_end_on_600_fashion_images(tmp_path: Path) -> None:
    """The scenario's pipeline as is (scattering in the loader, linear head, DP-SGD at ε 3),
    on the first 600 training images so it stays quick; the run spends at most its ε."""
    from sealroom.data import DirectoryTree
    from sealroom.data.files import maybe_gunzip
    from sealroom.data.loaders.idx import idx_bytes, parse_idx
    from sealroom.privacy.trainer import DPTrainer
    from sealroom.train.run import run_pipeline

    data = tmp_path / "fashion"
    data.mkdir()
    for name, ndim in ((FILES[0], 3), (FILES[1], 1)):
        array = parse_idx(maybe_gunzip((FASHION / name).read_bytes(), name), name, ndim)
        (data / name).write_bytes(idx_bytes(np.ascontiguousarray(array[:600])))
    base = compose(SCENARIO)
    train = base.train.model_copy(update={"epochs": 2, "batch_size": 128})
    pipeline = base.model_copy(update={"train": train})
    model = MemoryTree({"model.onnx": head_onnx_bytes("linear")})
    outcome = run_pipeline(
        pipeline, {"fashion": DirectoryTree(data)}, model, trainer_factory=DPTrainer
    )
    report = outcome.outputs["privacy_report.json"].decode()
    assert '"epsilon_target": 3.0' in report
    assert 0.0 <= outcome.metrics["accuracy"] <= 1.0
    assert "trained_model.onnx" in outcome.outputs
