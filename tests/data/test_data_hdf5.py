"""HDF5 loader: features/targets/groups read from bytes; shapes decide the task."""

from __future__ import annotations

import io

import h5py
import numpy as np
import pytest

from sealroom.data import MemoryTree, load_dataset
from sealroom.errors import DataError
from sealroom.pipeline.schema import DatasetConfig


def _h5(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        for key, value in arrays.items():
            handle.create_dataset(key, data=value)
    return buffer.getvalue()


def _config(**source: object) -> DatasetConfig:
    return DatasetConfig.model_validate(
        {"id": "h", "source": {"format": "hdf5", "file": "d.h5", **source}}
    )


def test_segmentation_file_with_groups() -> None:
    data = _h5(
        features=np.random.default_rng(0).random((6, 8, 8)).astype(np.float32),
        targets=(np.arange(6 * 64).reshape(6, 8, 8) % 2).astype(np.uint8),
        groups=np.array([b"p1", b"p1", b"p2", b"p2", b"p3", b"p3"], dtype=object),
    )
    ds = load_dataset(_config(groups_key="groups"), MemoryTree({"d.h5": data}))
    assert ds.x.shape == (6, 1, 8, 8) and ds.y.shape == (6, 1, 8, 8)
    assert ds.y.dtype == np.float32 and set(np.unique(ds.y)) == {0.0, 1.0}
    assert ds.groups is not None and ds.groups.tolist()[:3] == ["p1", "p1", "p2"]


def test_tabular_classification_and_custom_keys() -> None:
    data = _h5(X=np.ones((4, 3)), Y=np.array([0, 1, 1, 0]))
    ds = load_dataset(_config(features_key="X", targets_key="Y"), MemoryTree({"d.h5": data}))
    assert ds.x.shape == (4, 3) and ds.y.dtype == np.int64


def test_missing_key_is_named() -> None:
    data = _h5(features=np.ones((4, 3)))
    with pytest.raises(DataError, match=r"d\.h5: no dataset 'targets' \(found: features\)"):
        load_dataset(_config(), MemoryTree({"d.h5": data}))


def test_mismatched_counts_are_refused() -> None:
    data = _h5(features=np.ones((4, 3)), targets=np.zeros(5, dtype=np.int64))
    with pytest.raises(DataError, match=r"d\.h5: 4 features but 5 targets"):
        load_dataset(_config(), MemoryTree({"d.h5": data}))


def test_not_hdf5_is_refused() -> None:
    with pytest.raises(DataError, match=r"d\.h5: not a readable HDF5 file"):
        load_dataset(_config(), MemoryTree({"d.h5": b"not hdf5 at all"}))


def test_truncated_hdf5_is_refused() -> None:
    data = _h5(features=np.ones((400, 30)), targets=np.zeros(400, dtype=np.int64))
    with pytest.raises(DataError, match=r"^d\.h5: "):
        load_dataset(_config(), MemoryTree({"d.h5": data[: len(data) // 2]}))
