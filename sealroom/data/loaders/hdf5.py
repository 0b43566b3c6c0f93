"""HDF5 files with a features array, a targets array and optionally group ids, read from bytes.

Shapes decide the task: features ``[N, H, W]`` gain a channel axis, ``[N, C, H, W]``
and ``[N, F]`` are kept; integer targets ``[N]`` are class labels, targets with
image axes are segmentation masks (float32 ``[N, 1, H, W]``), float ``[N]`` are
regression targets. A ``classes`` attribute on the targets names the classes.
"""

from __future__ import annotations

import io
from typing import Any

import h5py
import numpy as np

from sealroom.data.dataset import ArrayDataset
from sealroom.data.files import FileTree
from sealroom.data.loaders.base import LOADERS
from sealroom.errors import DataError
from sealroom.pipeline.schema import Hdf5Source

MAX_ARRAY_BYTES = 16 << 30  # a corrupt header must not make the room allocate without bound


def _read_array(handle: h5py.File, key: str, file: str) -> np.ndarray:
    item = handle.get(key)
    if not isinstance(item, h5py.Dataset):
        known = ", ".join(sorted(str(k) for k in handle)) or "none"
        raise DataError(f"{file}: no dataset {key!r} (found: {known})")
    if item.size * item.dtype.itemsize > MAX_ARRAY_BYTES:
        raise DataError(f"{file}: dataset {key!r} of shape {item.shape} is too large to load")
    return np.asarray(item[()])


def _as_features(features: np.ndarray, file: str, key: str) -> np.ndarray:
    if features.dtype.kind not in "biuf":
        raise DataError(f"{file}: {key} must be numeric, found {features.dtype}")
    if features.ndim == 3:
        features = features[:, None]
    elif features.ndim not in (2, 4):
        raise DataError(
            f"{file}: {key} must be [N, F], [N, H, W] or [N, C, H, W], got {features.shape}"
        )
    if features.dtype == np.uint8:
        return features.astype(np.float32) / np.float32(255.0)
    return features.astype(np.float32)


def _as_targets(targets: np.ndarray, file: str, key: str) -> np.ndarray:
    if targets.dtype.kind not in "biuf":
        raise DataError(f"{file}: {key} must be numeric, found {targets.dtype}")
    if targets.ndim == 1:
        return (
            targets.astype(np.int64) if targets.dtype.kind in "biu" else targets.astype(np.float32)
        )
    if targets.ndim == 3:
        targets = targets[:, None]
    if targets.ndim != 4 or targets.shape[1] != 1:
        raise DataError(
            f"{file}: {key} must be [N], [N, H, W] or [N, 1, H, W], got {targets.shape}"
        )
    return targets.astype(np.float32)


def _as_groups(groups: np.ndarray) -> np.ndarray:
    if groups.dtype.kind in "SO":
        return np.array([g.decode() if isinstance(g, bytes) else str(g) for g in groups], dtype=str)
    return groups.astype(str)


def _read_file(
    data: bytes, source: Hdf5Source
) -> tuple[np.ndarray, np.ndarray, Any, np.ndarray | None]:
    with h5py.File(io.BytesIO(data), "r") as handle:
        features = _read_array(handle, source.features_key, source.file)
        targets = _read_array(handle, source.targets_key, source.file)
        classes_attr = handle[source.targets_key].attrs.get("classes")
        groups = None
        if source.groups_key is not None:
            groups = _as_groups(_read_array(handle, source.groups_key, source.file))
    return features, targets, classes_attr, groups


@LOADERS.register("hdf5")
def load_hdf5(source: Hdf5Source, tree: FileTree, name: str) -> ArrayDataset:
    data = tree.read_bytes(source.file)
    try:
        features, targets, classes_attr, groups = _read_file(data, source)
    except DataError:
        raise
    except Exception as exc:  # h5py raises OSError, RuntimeError, KeyError... on corrupt files
        detail = " ".join(str(exc).split())[:160]
        raise DataError(f"{source.file}: not a readable HDF5 file ({detail})") from None
    x = _as_features(features, source.file, source.features_key)
    y = _as_targets(targets, source.file, source.targets_key)
    if len(x) != len(y):
        raise DataError(
            f"{source.file}: {len(x)} {source.features_key} but {len(y)} {source.targets_key}"
        )
    if y.ndim == 4 and y.shape[2:] != x.shape[2:]:
        raise DataError(
            f"{source.file}: mask size {y.shape[2:]} differs from image size {x.shape[2:]}"
        )
    if groups is not None and len(groups) != len(x):
        raise DataError(f"{source.file}: {len(groups)} {source.groups_key} but {len(x)} samples")
    classes = None
    if classes_attr is not None:
        classes = [
            c.decode() if isinstance(c, bytes) else str(c) for c in np.atleast_1d(classes_attr)
        ]
    return ArrayDataset(x=x, y=y, name=name, groups=groups, classes=classes)
