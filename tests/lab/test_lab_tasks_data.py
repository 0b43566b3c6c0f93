"""load_data/read_data: seeded subsets in [0, 1] NCHW, npz round trips without pickle."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from sealroom.errors import LabError
from sealroom.lab.attempts import ArtifactBlob
from sealroom.lab.tasks.data import fashion_mnist_available, load_data, read_data
from sealroom.lab.tasks.registry import TaskContext
from sealroom.lab.tasks.values import LabData, npz_blob, read_npz


def ctx(tmp_path: Path, seed: int = 0) -> TaskContext:
    return TaskContext("job-1", 1, seed, tmp_path)


def test_digits_subset_is_seeded_scaled_and_disjoint(tmp_path: Path) -> None:
    out = load_data(ctx(tmp_path, 7), dataset="digits", train_size=300, test_size=100)
    data: LabData = out["data"]
    assert data.x_train.shape == (300, 1, 8, 8) and data.x_test.shape == (100, 1, 8, 8)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.x_train.min() >= 0.0 and data.x_train.max() <= 1.0 and data.x_train.max() > 0.5
    assert data.shape == (1, 8, 8) and len(data.classes) == 10
    again = load_data(ctx(tmp_path, 7), dataset="digits", train_size=300, test_size=100)["data"]
    assert np.array_equal(data.x_train, again.x_train)
    other = load_data(ctx(tmp_path, 8), dataset="digits", train_size=300, test_size=100)["data"]
    assert not np.array_equal(data.y_train, other.y_train)
    rows = {r.tobytes() for r in data.x_train.reshape(300, -1)}
    assert not any(r.tobytes() in rows for r in data.x_test.reshape(100, -1))


@pytest.mark.skipif(not fashion_mnist_available(), reason="Debian fashion-mnist not installed")
def test_fashion_mnist_comes_from_the_debian_idx_files(tmp_path: Path) -> None:
    data = load_data(ctx(tmp_path), train_size=50, test_size=20)["data"]
    assert data.name == "fashion-mnist" and data.x_train.shape == (50, 1, 28, 28)
    assert data.classes[0] == "T-shirt/top" and set(np.unique(data.y_train)) <= set(range(10))


def test_bad_sizes_and_datasets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(LabError, match=r"train_size \+ test_size = 2000: digits has 1797"):
        load_data(ctx(tmp_path), dataset="digits", train_size=1900, test_size=100)
    with pytest.raises(LabError, match=r"train_size=0: must be between 1"):
        load_data(ctx(tmp_path), dataset="digits", train_size=0)
    with pytest.raises(LabError, match=r"dataset 'cifar': use one of auto, fashion-mnist, digits"):
        load_data(ctx(tmp_path), dataset="cifar")


def test_the_npz_artifact_round_trips_through_read_data(tmp_path: Path) -> None:
    out = load_data(ctx(tmp_path), dataset="digits", train_size=40, test_size=10)
    blob: ArtifactBlob = out["npz"]
    assert blob.kind == "npz" and blob.filename == "digits.npz"
    back = read_data(ctx(tmp_path), file=blob)["data"]
    assert np.array_equal(back.x_test, out["data"].x_test)
    assert back.classes == out["data"].classes and back.shape == (1, 8, 8)


def test_a_pickled_npz_is_refused_not_unpickled(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, x_train=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(LabError, match=r"file: the npz file holds pickled objects; refused"):
        read_data(ctx(tmp_path), file=ArtifactBlob("d", "npz", "d.npz", buffer.getvalue()))
    with pytest.raises(LabError, match=r"holds Python objects"):
        npz_blob("d", "d.npz", {"x": np.array([object()], dtype=object)})
    with pytest.raises(LabError, match=r"w: not a readable npz file"):
        read_npz(b"PK\x03\x04 not really", "w")
    with pytest.raises(LabError, match=r"file: artifact d is onnx, not npz"):
        read_data(ctx(tmp_path), file=ArtifactBlob("d", "onnx", "d.onnx", b""))


def test_an_npz_that_inflates_past_the_bound_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sealroom.lab.tasks.values as values

    buffer = io.BytesIO()
    np.savez_compressed(buffer, x_train=np.zeros((1000, 1000), dtype=np.float32))
    assert len(buffer.getvalue()) < 50_000  # 4 MB of zeros compress to almost nothing
    monkeypatch.setattr(values, "MAX_NPZ_BYTES", 1_000_000)
    with pytest.raises(LabError, match=r"w: npz arrays of 4,000,\d+ bytes are over 1,000,000"):
        read_npz(buffer.getvalue(), "w")
