"""The release filter: contract kinds and metrics; aggregate-only under privacy."""

from __future__ import annotations

import json

from sealroom.privacy.release import filter_outputs
from tests.privacy.helpers import make_contract

METRICS = {"loss": 0.3, "accuracy": 0.9, "f1": 0.88, "confusion_matrix": [[5, 1], [0, 4]]}
LOG = "Epoch: 1 | Train loss: 0.5 | Val loss: 0.4\nTest accuracy: 0.9000\nTest f1: 0.8800\n"


def _outputs() -> dict[str, bytes]:
    return {
        "trained_model.onnx": b"onnx",
        "trained_model.safetensors": b"st",
        "metrics.json": json.dumps({"metrics": METRICS, "history": [{"epoch": 1}]}).encode(),
        "training_log.txt": LOG.encode(),
        "confusion_matrix.png": b"png",
        "training_curves.png": b"png",
        "segmentation_samples.png": b"png",
        "privacy_report.json": b"{}",
        "checkpoints/step-0000010.safetensors": b"st",
        "notes.bin": b"?",
    }


def test_private_run_releases_aggregates_only() -> None:
    constraints = make_contract(metrics=["loss", "accuracy", "confusion_matrix"]).constraints
    kept = filter_outputs(_outputs(), constraints, private=True)
    assert sorted(kept) == [
        "checkpoints/step-0000010.safetensors",
        "metrics.json",
        "privacy_report.json",
        "trained_model.onnx",
        "trained_model.safetensors",
        "training_curves.png",
        "training_log.txt",
    ]
    assert json.loads(kept["metrics.json"])["metrics"] == {"loss": 0.3, "accuracy": 0.9}
    assert "f1" not in kept["training_log.txt"].decode()


def test_private_run_releases_confusion_matrix_when_named_explicitly() -> None:
    contract = make_contract(
        metrics=["accuracy", "confusion_matrix"],
        released=["model", "metrics", "plots", "confusion_matrix", "samples"],
    )
    kept = filter_outputs(_outputs(), contract.constraints, private=True)
    assert "confusion_matrix.png" in kept and "segmentation_samples.png" in kept
    report = json.loads(kept["metrics.json"])
    assert report["metrics"] == {"accuracy": 0.9, "confusion_matrix": [[5, 1], [0, 4]]}
    assert report["history"] == [{"epoch": 1}]  # counters only: loss is not released here
    assert "Epoch:" not in kept["training_log.txt"].decode()


def test_non_private_run_keeps_contract_kinds_and_metrics() -> None:
    contract = make_contract(
        metrics=["accuracy", "confusion_matrix"], released=["metrics", "plots"]
    )
    kept = filter_outputs(_outputs(), contract.constraints, private=False)
    assert sorted(kept) == [
        "confusion_matrix.png",
        "metrics.json",
        "training_curves.png",
        "training_log.txt",
    ]
    assert set(json.loads(kept["metrics.json"])["metrics"]) == {"accuracy", "confusion_matrix"}


def test_log_lines_keep_only_released_statistics() -> None:
    from sealroom.privacy.release import release_line

    allowed = {"accuracy"}
    step = "Epoch: 3 | Step: 50 | Train loss: 0.345 | Accuracy: 0.887"
    assert release_line(step, allowed) == "Epoch: 3 | Step: 50 | Accuracy: 0.887"
    assert release_line("Epoch: 1 | Train loss: 2.1 | Val loss: 1.5", allowed) is None
    assert release_line("Epoch: 1 | Step: 50 | Train loss: 0.3 | Dice score: 0.8", allowed) is None
    assert release_line("Test f1: 0.96", allowed) is None
    assert release_line("Test accuracy: 0.97", allowed) == "Test accuracy: 0.97"
    assert release_line("Training samples: 1437", allowed) == "Training samples: 1437"
    assert release_line("Test iou: 0.7", {"jaccard"}) == "Test iou: 0.7"
