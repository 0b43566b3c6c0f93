"""`sealroom task train|predict|score` on a tiny private pipeline; `sealroom budget show`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.pipeline.compose import dump_pipeline
from sealroom.privacy.budget import BudgetBook
from sealroom.workspace import Workspace
from tests.privacy.helpers import make_contract, private_pipeline
from tests.train.tiny import blob_images

runner = CliRunner()


def _scenario(tmp_path: Path) -> Path:
    """A composed private pipeline file, its IDX data folder and a dataset part."""
    from sealroom.data.loaders.idx import idx_bytes

    data = tmp_path / "data" / "blobs"
    data.mkdir(parents=True)
    images, labels = blob_images()
    (data / "train-images-idx3-ubyte").write_bytes(idx_bytes(images))
    (data / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    pipeline = private_pipeline({"accountant": "rdp"}, num_threads=1)
    (tmp_path / "pipeline.json").write_text(dump_pipeline(pipeline))
    (tmp_path / "dataset.yaml").write_text(json.dumps(pipeline.datasets[0].model_dump(mode="json")))
    return tmp_path


def test_train_predict_score_each_on_its_own(tmp_path: Path) -> None:
    base = _scenario(tmp_path)
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["task", "train", str(base / "pipeline.json"), "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout)
    assert trained["privacy"]["epsilon_spent"] <= 3.0
    assert trained["privacy"]["n_train"] == 90 and trained["privacy"]["batch_size"] == 16
    assert "confusion_matrix.png" not in trained["outputs"]  # aggregate outputs only
    assert "confusion_matrix" not in json.loads((out / "metrics.json").read_text())["metrics"]
    assert (out / "privacy_report.json").is_file()

    preds = tmp_path / "preds.npy"
    result = runner.invoke(
        app,
        [
            "task", "predict", str(out / "trained_model.onnx"), "--dataset", str(base),
            "--out", str(preds), "--labels-out", str(tmp_path / "labels.csv"), "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["shape"] == [150, 3]
    assert np.load(preds, allow_pickle=False).shape == (150, 3)

    result = runner.invoke(
        app,
        ["task", "score", str(preds), "--labels", str(tmp_path / "labels.csv"), "--json"],
    )
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)
    assert scored["samples"] == 150 and 0.0 <= scored["metrics"]["accuracy"] <= 1.0
    labels = np.loadtxt(tmp_path / "labels.csv", delimiter=",", skiprows=1)
    expected = float((np.load(preds).argmax(1) == labels).mean())
    assert abs(scored["metrics"]["accuracy"] - expected) < 1e-9


def test_score_refuses_mismatched_lengths_and_pickles(tmp_path: Path) -> None:
    np.save(tmp_path / "p.npy", np.zeros((4, 3), np.float32))
    np.save(tmp_path / "l.npy", np.zeros(5, np.int64))
    result = runner.invoke(
        app, ["task", "score", str(tmp_path / "p.npy"), "--labels", str(tmp_path / "l.npy")]
    )
    assert result.exit_code == 1 and "4 predictions but 5 labels" in result.output
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    result = runner.invoke(
        app, ["task", "score", str(tmp_path / "o.npy"), "--labels", str(tmp_path / "l.npy")]
    )
    assert result.exit_code == 1 and "not a plain .npy array" in result.output


def test_budget_show_lists_spent_reserved_remaining_and_runs(workspace: Workspace) -> None:
    contract = make_contract()
    with BudgetBook(workspace) as book:
        book.reserve("run-a", contract, 3.0, 1e-5)
        book.settle("run-a", 2.9)
        book.reserve("run-b", contract, 2.0, 1e-5)
    result = runner.invoke(app, ["budget", "show", "mnist", "--json"])
    assert result.exit_code == 0, result.output
    [budget] = json.loads(result.stdout)
    assert budget["spent"] == 2.9 and budget["reserved"] == 2.0
    assert abs(budget["remaining"] - 3.1) < 1e-9
    assert [r["run_id"] for r in budget["runs"]] == ["run-a", "run-b"]
    text = runner.invoke(app, ["budget", "show"]).output
    assert "remaining 3.1" in text and "run-a" in text
    assert "no privacy budget" in runner.invoke(app, ["budget", "show", "other"]).output
