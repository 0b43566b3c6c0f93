"""IDX loader: MNIST files, raw or gzipped; corrupt variants refused in one line naming the file."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from sealroom.data import DirectoryTree, MemoryTree, load_dataset
from sealroom.data.loaders.idx import idx_bytes
from sealroom.errors import DataError
from sealroom.pipeline.schema import DatasetConfig

FASHION = Path("/usr/share/datasets/fashion-mnist")


def _config(images: str = "img", labels: str = "lab") -> DatasetConfig:
    return DatasetConfig.model_validate(
        {"id": "digits", "source": {"format": "idx", "images": images, "labels": labels}}
    )


def _files(n: int = 5, gz: bool = False) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    images = idx_bytes(rng.integers(0, 256, (n, 4, 3), dtype=np.uint8))
    labels = idx_bytes(np.arange(n, dtype=np.uint8) % 3)
    if gz:
        images, labels = gzip.compress(images), gzip.compress(labels)
    return {"img": images, "lab": labels}


@pytest.mark.parametrize("gz", [False, True])
def test_loads_images_as_unit_float_with_channel_axis(gz: bool) -> None:
    ds = load_dataset(_config(), MemoryTree(_files(gz=gz)))
    assert ds.x.shape == (5, 1, 4, 3) and ds.x.dtype == np.float32
    assert ds.x.min() >= 0.0 and ds.x.max() <= 1.0
    assert ds.y.tolist() == [0, 1, 2, 0, 1] and ds.y.dtype == np.int64
    assert ds.name == "digits"


def test_bad_magic_is_refused_naming_the_file() -> None:
    files = _files()
    files["img"] = b"\x12\x34" + files["img"][2:]
    with pytest.raises(DataError, match=r"^img: bad IDX magic number 0x1234"):
        load_dataset(_config(), MemoryTree(files))


def test_wrong_dimension_count_is_refused() -> None:
    files = _files()
    files["img"], files["lab"] = files["lab"], files["img"]
    with pytest.raises(DataError, match="img: expected 3 dimensions"):
        load_dataset(_config(), MemoryTree(files))


def test_truncated_file_is_refused() -> None:
    files = _files()
    files["img"] = files["img"][:-1]
    with pytest.raises(DataError, match="img: truncated"):
        load_dataset(_config(), MemoryTree(files))


def test_truncated_gzip_is_refused() -> None:
    files = _files(gz=True)
    files["lab"] = files["lab"][:-5]
    with pytest.raises(DataError, match="lab: "):
        load_dataset(_config(), MemoryTree(files))


def test_trailing_bytes_are_refused() -> None:
    files = _files()
    files["lab"] += b"\x00"
    with pytest.raises(DataError, match="lab: has trailing bytes"):
        load_dataset(_config(), MemoryTree(files))


def test_mismatched_counts_are_refused() -> None:
    files = _files()
    files["lab"] = idx_bytes(np.zeros(4, dtype=np.uint8))
    with pytest.raises(DataError, match="lab: 4 labels but img holds 5 images"):
        load_dataset(_config(), MemoryTree(files))


def test_header_claiming_huge_dims_is_refused_without_allocating() -> None:
    header = bytes([0, 0, 8, 3]) + struct.pack(">III", 2**31, 2**20, 2**20)
    with pytest.raises(DataError, match="img: truncated"):
        load_dataset(_config(), MemoryTree({"img": header, "lab": _files()["lab"]}))


def test_idx_round_trip_keeps_wider_types() -> None:
    from sealroom.data.loaders.idx import parse_idx

    for dtype in ("u1", "i1", "<i2", ">i4", "<f4", ">f8"):
        array = np.arange(24, dtype=dtype).reshape(2, 3, 4)
        assert np.array_equal(parse_idx(idx_bytes(array), "x", 3), array)


@pytest.mark.skipif(
    not (FASHION / "t10k-images-idx3-ubyte.gz").exists(),
    reason="Debian's dataset-fashion-mnist is not installed at /usr/share/datasets/fashion-mnist",
)
def test_loads_debian_fashion_mnist() -> None:
    ds = load_dataset(
        _config("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"), DirectoryTree(FASHION)
    )
    assert ds.x.shape == (10_000, 1, 28, 28)
    assert sorted(set(ds.y.tolist())) == list(range(10))
