"""The inference scenario's split of scikit-learn's digits: the hospital seals the first
1,497 for training; the last 300 (other writers) stay with the clinic, never sealed, never
trained on, and are what it classifies through the served model.

    python -m scenarios.inference.digits train OUT_DIR     # the hospital's IDX files
    python -m scenarios.inference.digits held-out OUT_DIR  # the clinic's images.npy, labels.npy
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np

from scenarios.mnist.prepare import IMAGES, LABELS, digits_28x28
from sealroom.data.loaders.idx import idx_bytes

HELD_OUT = 300  # the last digits of scikit-learn's set


def split() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(train images, labels), (held-out images, labels): uint8 ``[N, 28, 28]`` and ``[N]``."""
    images, labels = digits_28x28()
    cut = len(images) - HELD_OUT
    return (images[:cut], labels[:cut]), (images[cut:], labels[cut:])


def model_input(images: np.ndarray) -> np.ndarray:
    """uint8 images as the model takes them: float32 ``[N, 1, 28, 28]`` in [0, 1], as the
    room's IDX loader feeds them in training."""
    return (images.astype(np.float32) / 255.0)[:, None, :, :]


def write_train(out_dir: Path) -> None:
    (images, labels), _ = split()
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, array in ((IMAGES, images), (LABELS, labels)):
        (out_dir / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array), mtime=0))
    print(f"{len(images)} training digits in {out_dir} ({HELD_OUT} kept aside)")


def write_held_out(out_dir: Path) -> None:
    _, (images, labels) = split()
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / "images.npy", model_input(images), allow_pickle=False)
    np.save(out_dir / "labels.npy", labels.astype(np.int64), allow_pickle=False)
    print(f"{len(images)} held-out digits in {out_dir}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["train", "held-out"])
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    (write_train if args.part == "train" else write_held_out)(args.out_dir)


if __name__ == "__main__":
    main()
