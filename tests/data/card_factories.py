"""Builders for the data-card tests: a tiny MNIST-format folder, its sealed package, a draft."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sealroom.crypto.identity import Party
from sealroom.crypto.package import SealResult, seal
from sealroom.data.loaders.idx import idx_bytes

IMAGES, LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
T10K_IMAGES, T10K_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
CLASSES = [str(i) for i in range(10)]


def write_digits(folder: Path, n: int = 30, t10k: int = 0, seed: int = 0) -> Path:
    """``n`` random 28x28 uint8 images with labels 0..9 (and ``t10k`` held-out ones)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = [(IMAGES, LABELS, n)] + ([(T10K_IMAGES, T10K_LABELS, t10k)] if t10k else [])
    for images, labels, count in files:
        pixels = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        targets = (np.arange(count) % 10).astype(np.uint8)
        (folder / images).write_bytes(gzip.compress(idx_bytes(pixels), mtime=0))
        (folder / labels).write_bytes(gzip.compress(idx_bytes(targets), mtime=0))
    return folder


def seal_digits(folder: Path, owner: Party, out: Path) -> SealResult:
    return seal(folder, owner, out, format="idx", wrap_for_owner=False)


def draft(**overrides: Any) -> dict[str, Any]:
    """A valid card draft for :func:`write_digits`' folder."""
    data: dict[str, Any] = {
        "dataset": "mnist",
        "title": "Random digits",
        "description": "test data",
        "files": {IMAGES: "images"},
        "sources": [
            {
                "name": "train",
                "source": {"format": "idx", "images": IMAGES, "labels": LABELS},
                "features": {"range": {"min": 0, "max": 1}},
                "target": {"kind": "class", "classes": CLASSES},
            }
        ],
        "mock": {"seed": 3, "records": 64},
    }
    data.update(overrides)
    return data


def write_draft(path: Path, **overrides: Any) -> Path:
    path.write_text(yaml.safe_dump(draft(**overrides)))
    return path
