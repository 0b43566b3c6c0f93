"""Tiny datasets and pipelines for the training tests (seconds on one core)."""

from __future__ import annotations

import io
from typing import Any

import h5py
import numpy as np

from sealroom.data import MemoryTree
from sealroom.data.loaders.idx import idx_bytes
from sealroom.pipeline.schema import Pipeline


def blob_images(n: int = 150, side: int = 8, classes: int = 3, seed: int = 0) -> tuple[Any, Any]:
    """uint8 images where the class decides which third of the rows is bright: easy to learn."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, side, side)).astype(np.uint8)
    band = side // classes
    for i, label in enumerate(labels):
        images[i, label * band : (label + 1) * band, :] += 200
    return images, labels


def idx_tree(n: int = 150, side: int = 8, classes: int = 3) -> MemoryTree:
    images, labels = blob_images(n, side, classes)
    return MemoryTree(
        {"train-images-idx3-ubyte": idx_bytes(images), "train-labels-idx1-ubyte": idx_bytes(labels)}
    )


def hdf5_tree(features: np.ndarray, targets: np.ndarray) -> MemoryTree:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        handle["features"] = features
        handle["targets"] = targets
    return MemoryTree({"data.h5": buffer.getvalue()})


def classification_pipeline(**train: Any) -> Pipeline:
    """A declarative linear classifier on 8x8 single-channel images with three classes."""
    doc: dict[str, Any] = {
        "name": "tiny",
        "datasets": [
            {
                "id": "blobs",
                "source": {
                    "format": "idx",
                    "images": "train-images-idx3-ubyte",
                    "labels": "train-labels-idx1-ubyte",
                },
            }
        ],
        "split": {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 1},
        "model": {
            "model": {
                "format": "declarative",
                "layers": [
                    {"type": "flatten"},
                    {"type": "linear", "params": {"in_features": 64, "out_features": 16}},
                    {"type": "relu"},
                    {"type": "dropout", "params": {"p": 0.1}},
                    {"type": "linear", "params": {"in_features": 16, "out_features": 3}},
                ],
            },
            "input_shape": [1, 8, 8],
        },
        "loss": {"components": {"ce": {"name": "cross_entropy"}}, "expression": "ce"},
        "train": {
            "optimizer": {"name": "adam", "params": {"lr": 0.01}},
            "epochs": 3,
            "batch_size": 16,
            "seed": 3,
            "device": "cpu",
            **train,
        },
        "eval": {
            "task": "classification",
            "metrics": ["loss", "accuracy", "f1", "precision", "recall", "confusion_matrix"],
        },
    }
    return Pipeline.model_validate(doc)
