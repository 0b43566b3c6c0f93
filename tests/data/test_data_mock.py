"""Mock data from a card: each format round-trips through the real loader with the card's
shapes, dtypes, ranges and classes; the mock is deterministic and reads no file."""

from __future__ import annotations

import builtins
import gzip
import io
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sealroom.data import MemoryTree, load_dataset
from sealroom.data.loaders.idx import parse_idx
from sealroom.data.mock import MockError, mock_files, write_mock
from sealroom.pipeline.card import DataCard, MockSpec
from sealroom.pipeline.schema import DatasetConfig

DIGEST = "sha256:" + "ab" * 32
DIGITS = [str(i) for i in range(10)]
MNIST_IDX = {
    "format": "idx",
    "images": "train-images-idx3-ubyte.gz",
    "labels": "train-labels-idx1-ubyte.gz",
}


def card(
    source: dict[str, Any],
    features: dict[str, Any],
    target: dict[str, Any] | None,
    files: list[str],
    mock: dict[str, Any] | None = None,
    records: int = 1000,
) -> DataCard:
    """A one-source card for dataset ``ds`` (the mock offered with 24 records unless given)."""
    return DataCard.model_validate(
        {
            "dataset": "ds",
            "package_digest": DIGEST,
            "files": [{"path": f, "size": 1} for f in files],
            "sources": [
                {
                    "name": "train",
                    "source": source,
                    "records": records,
                    "features": features,
                    "target": target,
                }
            ],
            "mock": {"seed": 7, "records": 24} if mock is None else mock,
        }
    )


def digits_card(**features: Any) -> DataCard:
    spec = features or {"shape": [28, 28], "dtype": "uint8", "range": {"min": 0, "max": 255}}
    return card(
        MNIST_IDX,
        spec,
        {"kind": "class", "dtype": "int64", "classes": DIGITS},
        [MNIST_IDX["images"], MNIST_IDX["labels"]],
    )


def load(c: DataCard, files: dict[str, bytes] | None = None) -> Any:
    cfg = DatasetConfig.model_validate({"id": c.dataset, "source": c.sources[0].source})
    return load_dataset(cfg, MemoryTree(mock_files(c) if files is None else files))


def test_idx_file_form_writes_mnist_files_the_loader_reads() -> None:
    c = digits_card()
    files = mock_files(c)
    assert sorted(files) == sorted([MNIST_IDX["images"], MNIST_IDX["labels"]])
    assert all(data.startswith(b"\x1f\x8b") for data in files.values())  # .gz names are gzipped
    images = parse_idx(gzip.decompress(files[MNIST_IDX["images"]]), "img", ndim=3)
    assert images.shape == (24, 28, 28) and images.dtype == np.uint8
    assert images.max() > 200  # uniform over 0..255, not a constant
    data = load(c, files)
    assert data.x.shape == (24, 1, 28, 28) and data.x.dtype == np.float32
    assert data.x.min() >= 0.0 and data.x.max() <= 1.0
    assert set(data.y.tolist()) <= set(range(10)) and len(set(data.y.tolist())) > 3


def test_idx_loader_form_keeps_the_declared_range() -> None:
    c = digits_card(shape=[1, 28, 28], dtype="float32", range={"min": 0.25, "max": 0.5})
    data = load(c)
    assert data.x.shape == (24, 1, 28, 28) and data.x.dtype == np.float32
    assert data.x.min() >= 0.25 - 1e-6 and data.x.max() <= 0.5 + 1e-6


def test_idx_without_gz_names_writes_raw_files() -> None:
    source = {"format": "idx", "images": "img.idx", "labels": "lab.idx"}
    c = card(
        source,
        {"shape": [5, 4], "dtype": "uint8"},
        {"kind": "class", "dtype": "int64", "classes": ["a", "b"]},
        ["img.idx", "lab.idx"],
    )
    files = mock_files(c)
    assert files["img.idx"][:4] == bytes([0, 0, 0x08, 3])
    assert load(c, files).x.shape == (24, 1, 5, 4)


def test_hdf5_classes_groups_and_range_round_trip() -> None:
    source = {"format": "hdf5", "file": "scans.h5", "groups_key": "patients"}
    features = {"shape": [3, 8, 8], "dtype": "float32", "range": {"min": -1, "max": 2}}
    target = {"kind": "class", "dtype": "int64", "classes": ["a", "b", "c"]}
    data = load(card(source, features, target, ["scans.h5"]))
    assert data.x.shape == (24, 3, 8, 8) and data.x.dtype == np.float32
    assert data.x.min() >= -1 and data.x.max() <= 2 and data.x.min() < 0
    assert data.classes == ["a", "b", "c"] and set(data.y.tolist()) <= {0, 1, 2}
    assert data.groups is not None and len(data.groups) == 24


def test_hdf5_masks_hold_class_ids() -> None:
    source = {"format": "hdf5", "file": "seg.h5"}
    features = {"shape": [1, 8, 8], "dtype": "float32", "range": {"min": 0, "max": 1}}
    target = {"kind": "mask", "dtype": "float32", "shape": [1, 8, 8], "classes": ["bg", "fg"]}
    data = load(card(source, features, target, ["seg.h5"]))
    assert data.y.shape == (24, 1, 8, 8) and set(np.unique(data.y).tolist()) == {0.0, 1.0}


def test_csv_table_with_ids_named_columns_and_class_names() -> None:
    source = {
        "format": "table",
        "file": "visits.csv.gz",
        "target": "outcome",
        "id_columns": ["pid"],
        "feature_columns": ["age", "bp"],
    }
    features = {"shape": [2], "dtype": "float32", "range": {"min": 18, "max": 90}}
    target = {"kind": "class", "dtype": "int64", "classes": ["no", "yes"]}
    data = load(card(source, features, target, ["visits.csv.gz"]))
    assert data.x.shape == (24, 2) and data.feature_names == ["age", "bp"]
    assert data.x.min() >= 18 and data.x.max() <= 90
    assert data.classes == ["no", "yes"] and data.keys is not None and "pid" in data.keys


def test_parquet_table_with_a_value_target() -> None:
    source = {"format": "table", "file": "t.parquet", "target": "y"}
    features = {"shape": [3], "dtype": "float32"}
    target = {"kind": "value", "dtype": "float32", "range": {"min": 10, "max": 20}}
    data = load(card(source, features, target, ["t.parquet"]))
    assert data.x.shape == (24, 3) and data.x.min() >= 0 and data.x.max() <= 1
    assert data.y.dtype == np.float32 and data.y.min() >= 10 and data.y.max() <= 20


def test_image_folder_uses_the_class_names_as_folders() -> None:
    source = {"format": "image_folder", "root": "photos"}
    features = {"shape": [1, 12, 10], "dtype": "float32", "range": {"min": 0, "max": 1}}
    target = {"kind": "class", "dtype": "int64", "classes": ["cat", "dog"]}
    c = card(source, features, target, ["photos/cat/a.png", "photos/dog/b.png"])
    files = mock_files(c)
    assert all(p.startswith(("photos/cat/", "photos/dog/")) for p in files)
    data = load(c, files)
    assert data.x.shape == (24, 1, 12, 10) and data.classes == ["cat", "dog"]


def test_paired_masks_pair_every_image_with_a_mask() -> None:
    source = {"format": "paired_masks", "images": "img", "masks": "seg"}
    features = {"shape": [1, 16, 16], "dtype": "float32"}
    target = {"kind": "mask", "dtype": "float32", "shape": [1, 16, 16], "classes": ["bg", "fg"]}
    data = load(card(source, features, target, ["img/a.png", "seg/a.png"]))
    assert data.x.shape == (24, 1, 16, 16) and data.y.shape == (24, 1, 16, 16)
    assert set(np.unique(data.y).tolist()) == {0.0, 1.0}


def test_deterministic_from_the_seed_and_the_records_of_the_spec() -> None:
    assert mock_files(digits_card()) == mock_files(digits_card())
    other = digits_card().model_copy(update={"mock": MockSpec(seed=8, records=24)})
    assert mock_files(other) != mock_files(digits_card())
    spec_less = card(
        MNIST_IDX,
        {"shape": [2, 2], "dtype": "uint8"},
        {"kind": "class", "dtype": "int64", "classes": DIGITS},
        list(MNIST_IDX.values())[1:],
        mock={"seed": 0},
        records=31,
    )
    assert len(load(spec_less).x) == 31  # no mock.records: the card's count


def test_hdf5_parquet_and_png_bytes_are_deterministic() -> None:
    h5 = card(
        {"format": "hdf5", "file": "a.h5"},
        {"shape": [4], "dtype": "float32"},
        {"kind": "class", "dtype": "int64", "classes": ["a", "b"]},
        ["a.h5"],
    )
    pq = card(
        {"format": "table", "file": "t.parquet", "target": "y"},
        {"shape": [2], "dtype": "float32"},
        {"kind": "value", "dtype": "float32"},
        ["t.parquet"],
    )
    png = card(
        {"format": "image_folder"},
        {"shape": [4, 4], "dtype": "uint8"},
        {"kind": "class", "dtype": "int64", "classes": ["a", "b"]},
        ["a/x.png"],
    )
    for c in (h5, pq, png):
        assert mock_files(c) == mock_files(c)


def test_a_card_without_a_mock_spec_is_refused() -> None:
    c = digits_card().model_copy(update={"mock": None})
    with pytest.raises(MockError, match=r"^dataset ds: its card offers no mock data"):
        mock_files(c)


def test_a_shape_the_format_cannot_hold_is_refused_by_source() -> None:
    c = digits_card(shape=[3, 28, 28], dtype="uint8")
    with pytest.raises(MockError, match=r"dataset ds, source train \(idx\): IDX images are"):
        mock_files(c)


def test_attack_class_name_cannot_escape_the_mock_folder(tmp_path: Path) -> None:
    source = {"format": "image_folder", "root": "."}
    features = {"shape": [4, 4], "dtype": "uint8"}
    target = {"kind": "class", "dtype": "int64", "classes": ["ok", "../../escaped"]}
    c = card(source, features, target, ["ok/a.png"])
    with pytest.raises(MockError, match=r"class name '\.\./\.\./escaped' cannot be a folder name"):
        write_mock(c, tmp_path / "mock")
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "mock").exists()


def test_attack_a_huge_card_is_refused_before_allocating() -> None:
    features = {"shape": [1024, 1024], "dtype": "uint8"}
    c = card(
        MNIST_IDX,
        features,
        {"kind": "class", "dtype": "int64", "classes": DIGITS},
        list(MNIST_IDX.values())[1:],
        mock={"seed": 0},
        records=10_000_000,
    )
    with pytest.raises(MockError, match="generate fewer"):
        mock_files(c)


def test_attack_the_mock_reads_no_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Real files under the card's names sit in the working folder; any read fails the test."""
    import h5py  # noqa: F401  (imported before files are forbidden)
    import pandas  # noqa: F401
    import PIL.PngImagePlugin  # noqa: F401

    monkeypatch.chdir(tmp_path)
    (tmp_path / MNIST_IDX["images"]).write_bytes(b"real pixels")
    (tmp_path / MNIST_IDX["labels"]).write_bytes(b"real labels")
    expected = mock_files(digits_card())

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"the mock opened a file: {args[:1]}")

    for target, name in ((builtins, "open"), (io, "open"), (os, "open")):
        monkeypatch.setattr(target, name, forbidden)
    monkeypatch.setattr(Path, "read_bytes", forbidden)
    monkeypatch.setattr(Path, "open", forbidden)
    assert mock_files(digits_card()) == expected


def test_write_mock_makes_a_private_folder_and_refuses_a_full_one(tmp_path: Path) -> None:
    out = tmp_path / "mock"
    written = write_mock(digits_card(), out)
    assert written == sorted([MNIST_IDX["images"], MNIST_IDX["labels"]])
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    with pytest.raises(MockError, match="not empty"):
        write_mock(digits_card(), out)
