"""Mock files per source format: idx, hdf5, table, image_folder, paired_masks.

Each encoder writes ``n`` records of a card source under the names its ``source:`` block
reads, in the layout the matching loader (:mod:`sealroom.data.loaders`) expects, and
refuses in one line (naming the dataset and source) what that format cannot hold.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable

import numpy as np

from sealroom.data.files import folder_prefix
from sealroom.data.mock import (
    MockError,
    class_ids,
    features,
    is_float,
    pixels,
    values,
    where,
)
from sealroom.pipeline.card import ArraySpec, CardSource, DataCard, TargetSpec
from sealroom.pipeline.schema import (
    Hdf5Source,
    IdxSource,
    ImageFolderSource,
    PairedMaskSource,
    TableSource,
)

Encoder = Callable[[DataCard, CardSource, int, np.random.Generator], dict[str, bytes]]

# IDX holds u1, i1, >i2, >i4, >f4, >f8: other dtypes are stored in the nearest it holds.
IDX_DTYPES = {
    "bool": "uint8",
    "uint16": "int32",
    "int64": "int32",
    "float16": "float32",
}


def _gzip_if_named(name: str, data: bytes) -> bytes:
    return gzip.compress(data, mtime=0) if name.lower().endswith(".gz") else data


def _class_target(target: TargetSpec | None, what: str, fmt: str) -> TargetSpec:
    if target is None or target.kind != "class" or target.shape:
        raise MockError(f"{what}: {fmt} records need a class label target (kind: class, shape [])")
    return target


def _image_hw(spec: ArraySpec, what: str, size: tuple[int, int] | None) -> tuple[int, int]:
    """(H, W) of an image record: shape [H, W] or [C, H, W] (C 1 or 3); ``size`` wins if set."""
    shape = spec.shape
    if not (len(shape) == 2 or (len(shape) == 3 and shape[0] in (1, 3))):
        raise MockError(f"{what}: image records are [H, W] or [C, H, W], the card says {shape}")
    return size if size is not None else (shape[-2], shape[-1])


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _safe_component(name: str, what: str) -> str:
    """A class name used as a folder name: one plain path component, or MockError."""
    if not name or "/" in name or "\\" in name or "\x00" in name or name in (".", ".."):
        raise MockError(f"{what}: class name {name!r} cannot be a folder name")
    return name


def encode_idx(
    card: DataCard, source: CardSource, n: int, rng: np.random.Generator
) -> dict[str, bytes]:
    from sealroom.data.loaders.idx import idx_bytes

    src = source.source
    assert isinstance(src, IdxSource)
    what = where(card, source)
    spec = source.features
    if not (len(spec.shape) == 2 or (len(spec.shape) == 3 and spec.shape[0] == 1)):
        raise MockError(f"{what}: IDX images are [H, W] or [1, H, W], the card says {spec.shape}")
    spec = spec.model_copy(update={"dtype": IDX_DTYPES.get(spec.dtype, spec.dtype)})
    images = features(spec, n, rng, what).reshape(n, spec.shape[-2], spec.shape[-1])
    target = _class_target(source.target, what, "IDX")
    count = len(target.classes or [])
    labels = class_ids(target, (n,), rng).astype(np.uint8 if count <= 256 else np.int32)
    return {
        src.images: _gzip_if_named(src.images, idx_bytes(images)),
        src.labels: _gzip_if_named(src.labels, idx_bytes(labels)),
    }


def _hdf5_targets(
    target: TargetSpec | None, n: int, rng: np.random.Generator, what: str
) -> np.ndarray:
    if target is None:
        raise MockError(f"{what}: HDF5 sources need a target on the card")
    shape = (n, *target.shape)
    if target.kind == "value":
        dtype = target.dtype if is_float(target.dtype) else "float32"
        return values(dtype, target.range, shape, rng, what)
    ids = class_ids(target, shape, rng)
    return ids.astype(target.dtype if target.dtype != "bool" else "uint8")


def encode_hdf5(
    card: DataCard, source: CardSource, n: int, rng: np.random.Generator
) -> dict[str, bytes]:
    import h5py

    src = source.source
    assert isinstance(src, Hdf5Source)
    what = where(card, source)
    if not 1 <= len(source.features.shape) <= 3:
        raise MockError(
            f"{what}: HDF5 records are [F], [H, W] or [C, H, W], the card says "
            f"{source.features.shape}"
        )
    x = features(source.features, n, rng, what)
    y = _hdf5_targets(source.target, n, rng, what)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        handle.create_dataset(src.features_key, data=x, track_times=False)
        targets = handle.create_dataset(src.targets_key, data=y, track_times=False)
        if source.target is not None and source.target.classes:
            targets.attrs["classes"] = np.array(source.target.classes, dtype=h5py.string_dtype())
        if src.groups_key is not None:
            groups = np.array([f"mock-{i // 4:06d}".encode() for i in range(n)])
            handle.create_dataset(src.groups_key, data=groups, track_times=False)
    return {src.file: buffer.getvalue()}


def _table_target(target: TargetSpec | None, n: int, rng: np.random.Generator, what: str) -> list:
    if target is None or target.shape:
        raise MockError(f"{what}: the table's target column needs a scalar target on the card")
    if target.kind == "value":
        return np.round(values("float64", target.range, (n,), rng, what), 6).tolist()
    if target.kind == "mask":
        raise MockError(f"{what}: a table cannot hold mask targets")
    ids = class_ids(target, (n,), rng)
    names = target.classes or []
    if names == [str(i) for i in range(len(names))]:
        return ids.tolist()  # integer labels, as a table of class ids holds them
    return [names[i] for i in ids]  # the loader maps sorted names to ids


def encode_table(
    card: DataCard, source: CardSource, n: int, rng: np.random.Generator
) -> dict[str, bytes]:
    import pandas as pd

    src = source.source
    assert isinstance(src, TableSource)
    what = where(card, source)
    spec = source.features
    if len(spec.shape) != 1:
        raise MockError(
            f"{what}: table records are [F] (F feature columns), the card says {spec.shape}"
        )
    names = src.feature_columns or [f"feature_{i}" for i in range(spec.shape[0])]
    if len(names) != spec.shape[0]:
        raise MockError(
            f"{what}: the source names {len(names)} feature columns, the card {spec.shape[0]}"
        )
    x = values(spec.dtype, spec.range, (n, spec.shape[0]), rng, what)
    columns: dict[str, object] = {c: [f"mock-{i:06d}" for i in range(n)] for c in src.id_columns}
    for index, name in enumerate(names):
        column = x[:, index]
        columns[name] = np.round(column.astype(np.float64), 6) if is_float(spec.dtype) else column
    if src.target is not None:
        columns[src.target] = _table_target(source.target, n, rng, what)
    frame = pd.DataFrame(columns)
    lower = src.file.lower()
    if lower.endswith((".parquet", ".pq")):
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return {src.file: buffer.getvalue()}
    sep = "\t" if ".tsv" in lower else ","
    text = frame.to_csv(index=False, sep=sep).encode("utf-8")
    return {src.file: _gzip_if_named(src.file, text)}


def encode_image_folder(
    card: DataCard, source: CardSource, n: int, rng: np.random.Generator
) -> dict[str, bytes]:
    src = source.source
    assert isinstance(src, ImageFolderSource)
    what = where(card, source)
    target = _class_target(source.target, what, "image_folder")
    folders = [_safe_component(c, what) for c in target.classes or []]
    h, w = _image_hw(source.features, what, src.image_size)
    shape = (h, w) if src.grayscale else (h, w, 3)
    root = folder_prefix(src.root)
    labels = class_ids(target, (n,), rng)
    return {
        f"{root}{folders[label]}/mock-{i:06d}.png": _png(pixels(source.features, shape, rng, what))
        for i, label in enumerate(labels.tolist())
    }


def encode_paired_masks(
    card: DataCard, source: CardSource, n: int, rng: np.random.Generator
) -> dict[str, bytes]:
    src = source.source
    assert isinstance(src, PairedMaskSource)
    what = where(card, source)
    target = source.target
    if target is not None and target.kind != "mask":
        raise MockError(f"{what}: paired_masks records need a mask target (kind: mask)")
    h, w = _image_hw(source.features, what, src.image_size)
    classes = len(target.classes or []) if target is not None else 2
    if classes > 256:
        raise MockError(f"{what}: a PNG mask holds at most 256 class ids, the card names {classes}")
    images, masks = folder_prefix(src.images), folder_prefix(src.masks)
    files: dict[str, bytes] = {}
    for i in range(n):
        files[f"{images}mock-{i:06d}.png"] = _png(pixels(source.features, (h, w), rng, what))
        mask = rng.integers(0, classes, size=(h, w), dtype=np.uint8)
        files[f"{masks}mock-{i:06d}.png"] = _png(mask)
    return files


ENCODERS: dict[str, Encoder] = {
    "idx": encode_idx,
    "hdf5": encode_hdf5,
    "table": encode_table,
    "image_folder": encode_image_folder,
    "paired_masks": encode_paired_masks,
}
