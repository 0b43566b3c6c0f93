"""FileTrees: the only way loaders see bytes; nothing may escape the tree."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealroom.data.files import DirectoryTree, FileTree, MemoryTree, SubTree, maybe_gunzip
from sealroom.errors import DataError


def test_memory_tree_lists_folder_contents_sorted() -> None:
    tree = MemoryTree({"b/2.txt": b"2", "b/1.txt": b"1", "bb/x": b"x", "a": b"a"})
    assert isinstance(tree, FileTree)
    assert tree.list_files() == ["a", "b/1.txt", "b/2.txt", "bb/x"]
    assert tree.list_files("b") == ["b/1.txt", "b/2.txt"]
    assert tree.list_files("b/") == ["b/1.txt", "b/2.txt"]
    assert tree.read_bytes("./b/1.txt") == b"1"


def test_missing_file_is_named() -> None:
    with pytest.raises(DataError, match=r"nope\.bin"):
        MemoryTree({}).read_bytes("nope.bin")


@pytest.mark.parametrize("path", ["../secret", "/etc/passwd", "a/../../b", ""])
def test_paths_leaving_the_tree_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(DataError):
        DirectoryTree(tmp_path).read_bytes(path)
    with pytest.raises(DataError):
        MemoryTree({"a": b""}).read_bytes(path)


def test_directory_tree_refuses_symlink_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "ok.txt").write_text("ok")
    (root / "link.txt").symlink_to(outside)
    tree = DirectoryTree(root)
    assert tree.list_files() == ["sub/ok.txt"]
    assert tree.read_bytes("sub/ok.txt") == b"ok"
    with pytest.raises(DataError, match="leaves"):
        tree.read_bytes("link.txt")


def test_subtree_addresses_relative_to_its_prefix() -> None:
    tree = SubTree(MemoryTree({"p1/a.nii": b"a", "p1/s/b": b"b", "p2/c": b"c"}), "p1")
    assert tree.list_files() == ["a.nii", "s/b"]
    assert tree.read_bytes("s/b") == b"b"


def test_gunzip_refuses_truncated_and_oversized_data() -> None:
    packed = gzip.compress(b"x" * 1000)
    assert maybe_gunzip(packed, "f.gz") == b"x" * 1000
    assert maybe_gunzip(b"plain", "f") == b"plain"
    with pytest.raises(DataError, match=r"f\.gz: truncated"):
        maybe_gunzip(packed[:-12], "f.gz")
    with pytest.raises(DataError, match="more than 100 bytes"):
        maybe_gunzip(packed, "f.gz", limit=100)


@given(st.binary(max_size=2000))
def test_gunzip_round_trips_any_bytes(data: bytes) -> None:
    assert maybe_gunzip(gzip.compress(data), "x.gz") == data


@given(st.text(max_size=40))
def test_normalized_paths_never_leave_the_tree(path: str) -> None:
    from sealroom.data.files import normalize_relpath

    try:
        clean = normalize_relpath(path)
    except DataError:
        return
    assert not clean.startswith("/") and clean != ".." and not clean.startswith("../")
    assert "\x00" not in clean


def test_a_missing_file_message_lists_what_is_there_and_the_near_name(tmp_path: Path) -> None:
    memory = MemoryTree({"train-images-idx3-ubyte.gz": b"x", "train-labels-idx1-ubyte.gz": b"y"})
    with pytest.raises(DataError) as caught:
        memory.read_bytes("train-images-idx3-ubyte")
    assert str(caught.value) == (
        "file not found in dataset: train-images-idx3-ubyte; it holds "
        "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz "
        "(did you mean 'train-images-idx3-ubyte.gz'?)"
    )
    (tmp_path / "labels.csv").write_text("a\n")
    with pytest.raises(DataError, match=r"it holds labels\.csv \(did you mean 'labels\.csv'\?\)"):
        DirectoryTree(tmp_path).read_bytes("label.csv")
