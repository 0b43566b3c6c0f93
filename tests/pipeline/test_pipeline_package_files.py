"""The names each source format reads, and the one-line message when a package lacks one."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from sealroom.pipeline.package_files import (
    MissingFileError,
    check_source_files,
    holdings,
    missing_paths,
    nearest,
    source_paths,
)
from sealroom.pipeline.schema import DataSource

SOURCE: TypeAdapter[DataSource] = TypeAdapter(DataSource)
DIGEST = "sha256:" + "ab12" * 16


def _source(**block: object) -> DataSource:
    return SOURCE.validate_python(block)


def test_each_format_names_its_files_and_folders() -> None:
    assert source_paths(_source(format="idx", images="i", labels="l")) == [
        ("file", "i"),
        ("file", "l"),
    ]
    assert source_paths(_source(format="hdf5", file="d.h5")) == [("file", "d.h5")]
    assert source_paths(_source(format="table", file="t.csv")) == [("file", "t.csv")]
    assert source_paths(_source(format="image_folder")) == [("folder", ".")]
    assert source_paths(_source(format="paired_masks", images="im", masks="m")) == [
        ("folder", "im"),
        ("folder", "m"),
    ]


def test_paths_compare_as_the_loaders_address_them() -> None:
    paths = ["scans/a.png", "masks/a.png", "t.csv"]
    assert missing_paths(_source(format="table", file="./t.csv"), paths) == []
    assert (
        missing_paths(_source(format="paired_masks", images="scans/", masks="masks"), paths) == []
    )
    assert missing_paths(_source(format="image_folder", root="scan"), paths) == [("folder", "scan")]
    assert missing_paths(_source(format="image_folder"), []) == [("folder", ".")]


def test_the_nearest_name_prefers_the_gz_twin() -> None:
    paths = ["train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"]
    assert nearest("t10k-images-idx3-ubyte", paths) == "t10k-images-idx3-ubyte.gz"
    assert nearest("t10k-imgs-idx3-ubyte.gz", paths) == "t10k-images-idx3-ubyte.gz"
    assert nearest("labels.csv", paths) is None
    assert holdings([f"f{i}" for i in range(6)]) == "f0, f1, f2, f3, … (6 files)"
    assert holdings([]) == "no files"


def test_the_message_is_the_issues_line() -> None:
    paths = [
        "train-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
    ]
    source = _source(format="idx", images="t10k-images-idx3-ubyte", labels="x")
    with pytest.raises(MissingFileError) as caught:
        check_source_files("mnist", DIGEST, source, paths)
    assert str(caught.value) == (
        "dataset mnist (package sha256:ab12ab12ab12…): no file 't10k-images-idx3-ubyte' in "
        "the package; it holds t10k-images-idx3-ubyte.gz, train-images-idx3-ubyte.gz, "
        "train-labels-idx1-ubyte.gz (did you mean 't10k-images-idx3-ubyte.gz'?)"
    )
