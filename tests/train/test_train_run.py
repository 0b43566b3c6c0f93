"""run_pipeline: the one entry point; outputs, their release kinds, refusals, other tasks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sealroom.data import MemoryTree
from sealroom.errors import DataError, PrivacyError
from sealroom.pipeline.schema import Pipeline, PrivacyConfig
from sealroom.train.run import DirectorySink, MemorySink, run_pipeline
from tests.train.tiny import hdf5_tree

EXPECTED = {
    "trained_model.onnx": "model",
    "trained_model.safetensors": "model",
    "metrics.json": "metrics",
    "training_log.txt": "metrics",
    "confusion_matrix.png": "plots",
    "training_curves.png": "plots",
    "per_class.png": "plots",
}


def test_run_produces_model_metrics_and_plots(tiny_pipeline, tiny_trees, tmp_path) -> None:
    outcome = run_pipeline(tiny_pipeline, tiny_trees, MemoryTree({}), sink=DirectorySink(tmp_path))
    assert outcome.kinds == EXPECTED
    assert outcome.metrics["accuracy"] >= 0.9
    assert outcome.onnx_max_abs_diff is not None and outcome.onnx_max_abs_diff < 1e-4
    report = json.loads(outcome.outputs["metrics.json"])
    assert report["samples"] == {"train": 90, "val": 30, "test": 30}
    assert report["pipeline_digest"].startswith("sha256:")
    assert outcome.outputs["confusion_matrix.png"].startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(EXPECTED)
    log = outcome.outputs["training_log.txt"].decode()
    assert "Training samples: 90" in log and "Test accuracy: " in log


def test_same_seed_same_outputs(tiny_pipeline, tiny_trees) -> None:
    a = run_pipeline(tiny_pipeline, tiny_trees, MemoryTree({}))
    b = run_pipeline(tiny_pipeline, tiny_trees, MemoryTree({}))
    assert a.metrics == b.metrics
    assert a.outputs["trained_model.safetensors"] == b.outputs["trained_model.safetensors"]


def test_checkpoints_reach_the_sink(tiny_trees) -> None:
    from tests.train.tiny import classification_pipeline

    sink = MemorySink()
    run_pipeline(classification_pipeline(checkpoint_every=6), tiny_trees, MemoryTree({}), sink=sink)
    checkpoints = sorted(n for n in sink.files if n.startswith("checkpoints/"))
    assert checkpoints == [f"checkpoints/step-{s:07d}.safetensors" for s in (6, 12, 18)]


def test_privacy_pipeline_needs_the_private_trainer(tiny_pipeline, tiny_trees) -> None:
    private = tiny_pipeline.model_copy(update={"privacy": PrivacyConfig(epsilon=1, delta=1e-5)})
    with pytest.raises(PrivacyError, match="differentially private trainer"):
        run_pipeline(private, tiny_trees, MemoryTree({}))


def test_missing_dataset_tree_is_named(tiny_pipeline) -> None:
    with pytest.raises(DataError, match="dataset 'blobs'"):
        run_pipeline(tiny_pipeline, {}, MemoryTree({}))


def test_segmentation_run_writes_overlays() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((24, 1, 8, 8)).astype(np.float32)
    y = (x > 0.5).astype(np.float32)  # the mask is a threshold of the image: learnable
    pipeline = Pipeline.model_validate(
        {
            "name": "seg",
            "datasets": [{"id": "scans", "source": {"format": "hdf5", "file": "data.h5"}}],
            "split": {"train": 0.5, "val": 0.25, "test": 0.25},
            "model": {
                "model": {
                    "format": "declarative",
                    "layers": [
                        {
                            "type": "conv2d",
                            "params": {"in_channels": 1, "out_channels": 1, "kernel_size": 1},
                        },
                    ],
                },
                "input_shape": [1, 8, 8],
            },
            "loss": {"components": {"bce": {"name": "bce_with_logits"}}, "expression": "bce"},
            "train": {
                "optimizer": {"name": "adam", "params": {"lr": 0.1}},
                "epochs": 5,
                "batch_size": 4,
                "device": "cpu",
            },
            "eval": {
                "task": "segmentation",
                "metrics": ["loss", "dice", "jaccard", "hausdorff"],
                "samples": 2,
            },
        }
    )
    outcome = run_pipeline(pipeline, {"scans": hdf5_tree(x, y)}, MemoryTree({}))
    assert outcome.kinds["segmentation_samples.png"] == "samples"
    assert outcome.metrics["dice"] > 0.8
    assert "confusion_matrix.png" not in outcome.outputs


def test_regression_run_reports_r2() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5], dtype=np.float32)).astype(np.float32)
    pipeline = Pipeline.model_validate(
        {
            "name": "reg",
            "datasets": [{"id": "table", "source": {"format": "hdf5", "file": "data.h5"}}],
            "model": {
                "model": {
                    "format": "declarative",
                    "layers": [{"type": "linear", "params": {"in_features": 3, "out_features": 1}}],
                },
                "input_shape": [3],
            },
            "loss": {"components": {"mse": {"name": "mse"}}, "expression": "mse"},
            "train": {
                "optimizer": {"name": "adam", "params": {"lr": 0.1}},
                "epochs": 20,
                "batch_size": 8,
                "device": "cpu",
            },
            "eval": {"task": "regression", "metrics": ["loss", "mse", "mae", "r2"]},
        }
    )
    outcome = run_pipeline(pipeline, {"table": hdf5_tree(x, y)}, MemoryTree({}))
    assert outcome.metrics["r2"] > 0.9
