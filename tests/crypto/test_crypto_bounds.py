"""The package bounds: path_problem, the chunk-size cap, buffers sized to the data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sealroom.crypto.identity import Party
from sealroom.crypto.manifest import MAX_CHUNK_SIZE, MAX_PATH_DEPTH, FileEntry, path_problem
from sealroom.crypto.package import SealedPackage, seal

OWNER = Party.generate("hospital", "provider")
SHA = "0" * 64


@pytest.mark.parametrize(
    "path",
    ["a", "a/b/c.txt", "données/été.nii.gz", "x" * 1024, "/".join(["a"] * MAX_PATH_DEPTH), "a b"],
)
def test_ordinary_paths_pass(path: str) -> None:
    assert path_problem(path) is None
    FileEntry(path=path, offset=0, size=0, sha256=SHA)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("", "is empty"),
        ("é" * 513, "is 1026 bytes long"),
        ("a\tb", "U+0009"),
        ("a\u0085b", "U+0085"),  # C1 next line
        ("a\u2028b", "U+2028"),  # line separator
        ("a\u200bb", "U+200B"),  # zero-width space
        ("a\udcffb", "U+DCFF"),  # an undecodable byte under surrogateescape
        ("/".join(["a"] * (MAX_PATH_DEPTH + 1)), f"{MAX_PATH_DEPTH + 1} folders deep"),
        ("a//b", "empty, '.' or '..'"),
        ("a/", "empty, '.' or '..'"),
    ],
)
def test_bad_paths_are_named(path: str, problem: str) -> None:
    assert problem in (path_problem(path) or "")
    with pytest.raises(ValueError, match="file path"):
        FileEntry(path=path, offset=0, size=0, sha256=SHA)


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 1025, 5000])
def test_round_trip_at_chunk_boundaries_with_buffers_sized_to_data(
    size: int, tmp_path: Path
) -> None:
    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)
    result = seal(tmp_path / "f", OWNER, tmp_path / "f.sealed", chunk_size=1024)
    package = SealedPackage.open(result.path, OWNER.identity)
    assert package.read_all(result.data_key) == {"f": data}
    last = package.manifest.n_chunks - 1
    assert package.read_chunk(last, result.data_key) == data[last * 1024 :]
    if size:
        assert package.read_file("f", result.data_key) == data


def test_largest_chunk_size_still_seals(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 3)
    result = seal(tmp_path / "f", OWNER, tmp_path / "f.sealed", chunk_size=MAX_CHUNK_SIZE)
    assert result.manifest.chunk_size == MAX_CHUNK_SIZE and result.manifest.n_chunks == 1
