"""Data tasks: a seeded subset of Fashion-MNIST (Debian's IDX files) or sklearn's digits.

Fashion-MNIST comes from the Debian package ``fashion-mnist`` when installed; without
it the 8x8 digits bundled with scikit-learn stand in, so the testbed always has data.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from sealroom.errors import LabError
from sealroom.lab.tasks.registry import TaskContext, task
from sealroom.lab.tasks.values import LabData, input_bytes, npz_blob, read_npz

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
DATASETS = ("auto", "fashion-mnist", "digits")
MAX_SUBSET = 100_000


def fashion_mnist_available(root: Path = FASHION_MNIST_DIR) -> bool:
    return (root / "train-images-idx3-ubyte.gz").is_file()


@functools.lru_cache(maxsize=2)  # a worker runs many jobs; the arrays are read-only
def _fashion_split(root: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    from sealroom.data.loaders.idx import parse_idx  # sealroom.data is slow to import

    images_file = root / f"{prefix}-images-idx3-ubyte.gz"
    labels_file = root / f"{prefix}-labels-idx1-ubyte.gz"
    images = parse_idx(images_file.read_bytes(), str(images_file), ndim=3)
    labels = parse_idx(labels_file.read_bytes(), str(labels_file), ndim=1)
    if len(images) != len(labels):
        raise LabError(f"{labels_file}: {len(labels)} labels for {len(images)} images")
    return images, labels


def _pick(n: int, size: int, rng: np.random.Generator, what: str) -> np.ndarray:
    if not 1 <= size <= min(n, MAX_SUBSET):
        raise LabError(f"{what}={size}: must be between 1 and {min(n, MAX_SUBSET)}")
    return np.sort(rng.choice(n, size=size, replace=False))


def _unit(images: np.ndarray, scale: float) -> np.ndarray:
    x = images.astype(np.float32) / np.float32(scale)
    return np.ascontiguousarray(x[:, None, :, :])


def load_fashion_mnist(train_size: int, test_size: int, seed: int, root: Path) -> LabData:
    rng = np.random.default_rng(seed)
    x_tr, y_tr = _fashion_split(root, "train")
    x_te, y_te = _fashion_split(root, "t10k")
    tr = _pick(len(x_tr), train_size, rng, "train_size")
    te = _pick(len(x_te), test_size, rng, "test_size")
    return LabData(
        _unit(x_tr[tr], 255.0), y_tr[tr].astype(np.int64),
        _unit(x_te[te], 255.0), y_te[te].astype(np.int64),
        FASHION_CLASSES, (1, 28, 28), "fashion-mnist",
    )  # fmt: skip


def load_digits_data(train_size: int, test_size: int, seed: int) -> LabData:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.images, digits.target
    if train_size + test_size > len(images):
        raise LabError(
            f"train_size + test_size = {train_size + test_size}: digits has {len(images)} images"
        )
    order = np.random.default_rng(seed).permutation(len(images))
    _pick(len(images), train_size, np.random.default_rng(0), "train_size")  # range check
    _pick(len(images), test_size, np.random.default_rng(0), "test_size")
    tr, te = np.sort(order[:train_size]), np.sort(order[train_size : train_size + test_size])
    return LabData(
        _unit(images[tr], 16.0), labels[tr].astype(np.int64),
        _unit(images[te], 16.0), labels[te].astype(np.int64),
        tuple(str(i) for i in range(10)), (1, 8, 8), "digits",
    )  # fmt: skip


def data_npz(data: LabData, name: str = "data") -> Any:
    return npz_blob(
        name,
        f"{data.name}.npz",
        {
            "x_train": data.x_train, "y_train": data.y_train,
            "x_test": data.x_test, "y_test": data.y_test,
            "classes": np.asarray(data.classes, dtype=str),
        },
    )  # fmt: skip


@task(
    "load_data",
    outputs=("data", "npz"),
    description="A seeded train/test subset of Fashion-MNIST (else sklearn digits)",
    args={
        "dataset": "auto | fashion-mnist | digits (auto: fashion-mnist when installed)",
        "train_size": "number of training images (default 1000)",
        "test_size": "number of test images (default 500)",
        "seed": "subset seed (default: the job's seed)",
    },
)
def load_data(
    ctx: TaskContext,
    dataset: str = "auto",
    train_size: int = 1000,
    test_size: int = 500,
    seed: int | None = None,
) -> dict[str, Any]:
    if dataset not in DATASETS:
        raise LabError(f"dataset {str(dataset)[:40]!r}: use one of {', '.join(DATASETS)}")
    seed = ctx.seed if seed is None else int(seed)
    if dataset == "fashion-mnist" or (dataset == "auto" and fashion_mnist_available()):
        if not fashion_mnist_available():
            raise LabError(
                f"fashion-mnist: no IDX files in {FASHION_MNIST_DIR} (apt install fashion-mnist)"
            )
        data = load_fashion_mnist(int(train_size), int(test_size), seed, FASHION_MNIST_DIR)
    else:
        data = load_digits_data(int(train_size), int(test_size), seed)
    ctx.log(
        f"data: {data.name}, {len(data.y_train)} train / {len(data.y_test)} test images of "
        f"shape {data.shape}, seed {seed}"
    )
    return {"data": data, "npz": data_npz(data)}


@task(
    "read_data",
    outputs=("data",),
    description="A train/test split back from an npz artifact written by load_data",
    args={"file": "npz artifact with x_train, y_train, x_test, y_test, classes"},
)
def read_data(ctx: TaskContext, file: Any) -> dict[str, Any]:
    arrays = read_npz(input_bytes(file, "npz", "file"), "file")
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise LabError(f"file: npz has no array {missing[0]}")
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    if x_train.ndim != 4 or x_test.shape[1:] != x_train.shape[1:]:
        raise LabError(
            f"file: images must be N x C x H x W alike, got {x_train.shape} and {x_test.shape}"
        )
    classes = tuple(
        str(c) for c in arrays.get("classes", np.arange(int(arrays["y_train"].max()) + 1))
    )
    c, h, w = (int(d) for d in x_train.shape[1:])
    data = LabData(
        x_train.astype(np.float32), arrays["y_train"].astype(np.int64),
        x_test.astype(np.float32), arrays["y_test"].astype(np.int64),
        classes, (c, h, w), "npz",
    )  # fmt: skip
    ctx.log(f"data: {len(data.y_train)} train / {len(data.y_test)} test images from npz")
    return {"data": data}
