"""MNIST IDX files (raw or .gz): images ``[N, H, W]`` uint8 and labels ``[N]``.

Layout (yann.lecun.com/exdb/mnist): two zero bytes, a type code, the number of
dimensions, then one big-endian uint32 per dimension and the values, big-endian.
Every field is checked so a corrupt or mismatched file is refused by name.
"""

from __future__ import annotations

import math

import numpy as np

from sealroom.data.dataset import ArrayDataset
from sealroom.data.files import FileTree, maybe_gunzip
from sealroom.data.loaders.base import LOADERS
from sealroom.errors import DataError
from sealroom.pipeline.schema import IdxSource

IDX_TYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def parse_idx(data: bytes, name: str, ndim: int) -> np.ndarray:
    """Decode one IDX file with ``ndim`` dimensions; a DataError naming ``name`` otherwise."""
    data = maybe_gunzip(data, name)
    if len(data) < 4:
        raise DataError(f"{name}: not an IDX file (only {len(data)} bytes)")
    if data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise DataError(f"{name}: bad IDX magic number 0x{data[:4].hex()}")
    if data[3] != ndim:
        raise DataError(f"{name}: expected {ndim} dimensions, header says {data[3]}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    if any(d == 0 for d in dims[1:]):
        raise DataError(f"{name}: zero-sized dimension in {dims}")
    dtype = np.dtype(IDX_TYPES[data[2]])
    expected = math.prod(dims) * dtype.itemsize  # Python ints: a hostile header cannot overflow
    body = len(data) - header
    if body != expected:
        what = "truncated" if body < expected else "has trailing bytes"
        raise DataError(f"{name}: {what}: header {dims} needs {expected} data bytes, found {body}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as an IDX file (what the MNIST scenario's prepare step writes)."""
    codes = {np.dtype(v).newbyteorder(">").str: k for k, v in IDX_TYPES.items()}
    codes.update({np.dtype("u1").str: 0x08, np.dtype("i1").str: 0x09})
    big = array.astype(array.dtype.newbyteorder(">")) if array.dtype.itemsize > 1 else array
    code = codes.get(big.dtype.str)
    if code is None or not 1 <= array.ndim <= 255:
        raise DataError(f"cannot write {array.dtype} arrays of {array.ndim} dimensions as IDX")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(big).tobytes()


def _to_unit_float(images: np.ndarray) -> np.ndarray:
    """uint8 pixels become [0, 1] like torchvision's ToTensor; other types are cast as they are."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255.0)
    return images.astype(np.float32)


@LOADERS.register("idx")
def load_idx(source: IdxSource, tree: FileTree, name: str) -> ArrayDataset:
    images = parse_idx(tree.read_bytes(source.images), source.images, ndim=3)
    labels = parse_idx(tree.read_bytes(source.labels), source.labels, ndim=1)
    if len(images) != len(labels):
        raise DataError(
            f"{source.labels}: {len(labels)} labels but {source.images} holds {len(images)} images"
        )
    if labels.dtype.kind not in "iu":
        raise DataError(f"{source.labels}: labels must be integers, found {labels.dtype}")
    if len(labels) and labels.min() < 0:
        raise DataError(f"{source.labels}: negative class label {int(labels.min())}")
    x = _to_unit_float(images)[:, None, :, :]
    return ArrayDataset(x=np.ascontiguousarray(x), y=labels.astype(np.int64), name=name)
