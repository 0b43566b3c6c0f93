"""`sealroom train --local` on the MNIST scenario: digits (the demo) and Fashion-MNIST IDX files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scenarios.mnist.prepare import prepare
from scenarios.mnist.save_model import make_model, model_onnx_bytes
from sealroom.cli.main import app

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "mnist"
FASHION = Path("/usr/share/datasets/fashion-mnist")
# Debian's dataset-fashion-mnist (.ci/run installs it when it runs as root); skip without it.
needs_fashion = pytest.mark.skipif(
    not all(
        (FASHION / f"train-{k}-idx{d}-ubyte.gz").is_file()
        for k, d in (("images", 3), ("labels", 1))
    ),
    reason="Debian's dataset-fashion-mnist is not installed at /usr/share/datasets/fashion-mnist",
)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the scenario's config parts with prepared digits and the consumer's ONNX model."""
    root = tmp_path_factory.mktemp("mnist")
    for part in SCENARIO.glob("*.yaml"):
        shutil.copy(part, root / part.name)
    prepare(root / "data" / "mnist")
    (root / "model").mkdir()
    (root / "model" / "model.onnx").write_bytes(model_onnx_bytes(make_model(0)))
    return root


def train(*args: str) -> dict:
    result = CliRunner().invoke(app, ["train", "--local", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{") :])


def test_digits_demo_reaches_95_percent(scenario: Path, tmp_path: Path) -> None:
    report = train(str(scenario), "--out", str(tmp_path))
    assert report["metrics"]["accuracy"] >= 0.95
    assert (tmp_path / "trained_model.onnx").is_file()
    assert (tmp_path / "confusion_matrix.png").is_file()


def test_quick_subset_and_epoch_override(scenario: Path, tmp_path: Path) -> None:
    report = train(str(scenario), "--out", str(tmp_path), "--epochs", "1", "--max-samples", "200")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["samples"] == {"train": 160, "val": 20, "test": 20}
    assert len(metrics["history"]) == 1
    assert report["outputs"] == sorted(p.name for p in tmp_path.iterdir())


def test_missing_dataset_folder_is_one_line_error(scenario: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", "--local", str(scenario), "--out", str(tmp_path), "--data", "mnist=/nope"]
    )
    assert result.exit_code == 1
    assert "dataset 'mnist': folder /nope not found" in result.output


def test_without_local_is_usage_error(scenario: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", str(scenario), "--out", str(tmp_path)])
    assert result.exit_code == 2


@needs_fashion
def test_same_configs_run_on_fashion_mnist_idx(scenario: Path, tmp_path: Path) -> None:
    report = train(
        str(scenario), "--data", f"mnist={FASHION}", "--out", str(tmp_path),
        "--epochs", "1", "--max-samples", "3000",
    )  # fmt: skip
    assert report["metrics"]["accuracy"] > 0.5  # ten classes: chance is 0.1


@pytest.mark.slow
@needs_fashion
def test_fashion_mnist_full_epoch(scenario: Path, tmp_path: Path) -> None:
    report = train(
        str(scenario), "--data", f"mnist={FASHION}", "--out", str(tmp_path), "--epochs", "1"
    )
    assert report["metrics"]["accuracy"] > 0.8


def test_composed_pipeline_file_finds_data_next_to_it(scenario: Path, tmp_path: Path) -> None:
    from sealroom.pipeline.compose import compose, dump_pipeline

    document = scenario / "pipeline.composed.json"
    document.write_text(dump_pipeline(compose(scenario)))
    report = train(str(document), "--out", str(tmp_path), "--epochs", "1", "--max-samples", "100")
    assert report["pipeline"] == "mnist"


def test_unknown_dataset_id_in_data_option(scenario: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", "--local", str(scenario), "--out", str(tmp_path), "--data", "other=/tmp"]
    )
    assert result.exit_code == 1
    assert "--data other: the pipeline has no dataset 'other'" in result.output


def test_train_local_runs_a_private_pipeline_with_dp_and_aggregates_only(
    scenario: Path, tmp_path: Path
) -> None:
    private = tmp_path / "private"
    shutil.copytree(scenario, private)
    shutil.copy(SCENARIO.parent / "dp-mnist" / "privacy.yaml", private / "privacy.yaml")
    out = tmp_path / "out"
    report = train(str(private), "--out", str(out), "--epochs", "1", "--max-samples", "400")
    assert report["privacy"]["epsilon_spent"] <= report["privacy"]["epsilon_target"]
    assert "confusion_matrix.png" not in report["outputs"]
    assert (out / "privacy_report.json").is_file()
