"""Sealed packages: round trips, random access, and every kind of tampering refused."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealroom.crypto.identity import Party
from sealroom.crypto.package import SealedPackage, owner_data_key, seal
from sealroom.errors import SealError, SignatureError, WrongKeyError

CHUNK = 1024
OWNER = Party.generate("hospital", "provider")


def _tree(root: Path) -> Path:
    (root / "a" / "deep").mkdir(parents=True)
    (root / "a" / "one.bin").write_bytes(os.urandom(2500))
    (root / "a" / "deep" / "empty.txt").write_bytes(b"")
    (root / "b.txt").write_bytes(b"x" * CHUNK)  # exactly one chunk
    (root / "c.bin").write_bytes(os.urandom(3))
    return root


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, bytes]:
    base = tmp_path_factory.mktemp("pkg")
    source = _tree(base / "data")
    result = seal(source, OWNER, base / "data.sealed", chunk_size=CHUNK, format="raw")
    return source, result.path, result.data_key


def _copy(pkg: Path, tmp_path: Path) -> Path:
    target = tmp_path / f"copy{len(list(tmp_path.iterdir()))}.sealed"
    shutil.copytree(pkg, target)
    return target


def _read_everything(pkg: Path, key: bytes) -> dict[str, bytes]:
    return SealedPackage.open(pkg, OWNER.identity).read_all(key)


def test_directory_round_trip_and_manifest(
    sealed: tuple[Path, Path, bytes], tmp_path: Path
) -> None:
    source, pkg, key = sealed
    package = SealedPackage.open(pkg, OWNER.identity)
    assert package.digest.startswith("sha256:")
    assert [f.path for f in package.manifest.files] == [
        "a/deep/empty.txt",
        "a/one.bin",
        "b.txt",
        "c.bin",
    ]
    out = tmp_path / "out"
    package.unseal_to(out, key)
    for rel in ("a/one.bin", "a/deep/empty.txt", "b.txt", "c.bin"):
        assert (out / rel).read_bytes() == (source / rel).read_bytes()
    assert package.read_all(key)["c.bin"] == (source / "c.bin").read_bytes()


def test_random_access_reads_only_the_files_chunks(
    sealed: tuple[Path, Path, bytes], tmp_path: Path
) -> None:
    source, pkg, key = sealed
    copy = _copy(pkg, tmp_path)
    package = SealedPackage.open(copy, OWNER.identity)
    entry = next(f for f in package.manifest.files if f.path == "c.bin")
    last_chunk = entry.offset // CHUNK
    # Corrupt chunk 0: a file in a later chunk still reads, the whole package does not.
    with open(copy / "chunks.bin", "r+b") as handle:
        first = handle.read(1)
        handle.seek(0)
        handle.write(bytes([first[0] ^ 0xFF]))  # a constant could equal the byte
    assert last_chunk > 0
    assert package.read_file("c.bin", key) == (source / "c.bin").read_bytes()
    with pytest.raises(SealError, match="chunk 0"):
        package.read_all(key)


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK])
def test_single_file_round_trip_at_chunk_boundaries(size: int, tmp_path: Path) -> None:
    data = os.urandom(size)
    (tmp_path / "f.bin").write_bytes(data)
    result = seal(tmp_path / "f.bin", OWNER, tmp_path / "f.sealed", chunk_size=CHUNK)
    package = SealedPackage.open(result.path, OWNER.identity)
    assert package.read_file("f.bin", result.data_key) == data
    assert package.manifest.n_chunks == size // CHUNK + 1
    import hashlib

    assert package.manifest.plaintext_sha256 == hashlib.sha256(data).hexdigest()


def test_owner_key_opens_only_for_the_owner(sealed: tuple[Path, Path, bytes]) -> None:
    _, pkg, key = sealed
    assert owner_data_key(pkg, OWNER) == key
    with pytest.raises(WrongKeyError, match="sealed to 'hospital'"):
        owner_data_key(pkg, Party.generate("mallory", "provider"))


def test_wrong_key_is_named_as_such(sealed: tuple[Path, Path, bytes], tmp_path: Path) -> None:
    _, pkg, _ = sealed
    with pytest.raises(WrongKeyError, match="not the package's data key"):
        SealedPackage.open(pkg, OWNER.identity).unseal_to(tmp_path / "out", os.urandom(32))
    assert not (tmp_path / "out").exists()


def test_other_owner_signature_refused(sealed: tuple[Path, Path, bytes]) -> None:
    _, pkg, _ = sealed
    with pytest.raises(SignatureError, match="signature by mallory"):
        SealedPackage.open(pkg, Party.generate("mallory", "provider").identity)


def test_edited_manifest_refused(sealed: tuple[Path, Path, bytes], tmp_path: Path) -> None:
    _, pkg, _ = sealed
    copy = _copy(pkg, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format"] = "idx"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SignatureError, match="hospital"):
        SealedPackage.open(copy, OWNER.identity)


def test_chunk_swap_between_packages_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"a" * 3 * CHUNK)
    one = seal(tmp_path / "f", OWNER, tmp_path / "one.sealed", chunk_size=CHUNK)
    two = seal(tmp_path / "f", OWNER, tmp_path / "two.sealed", chunk_size=CHUNK)
    stride = CHUNK + 16
    a = bytearray((one.path / "chunks.bin").read_bytes())
    b = (two.path / "chunks.bin").read_bytes()
    a[stride : 2 * stride] = b[stride : 2 * stride]
    (one.path / "chunks.bin").write_bytes(bytes(a))
    with pytest.raises(SealError, match="chunk 1"):
        _read_everything(one.path, one.data_key)


def test_sealing_refuses_existing_out_and_symlinks(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    (tmp_path / "out.sealed").mkdir()
    with pytest.raises(SealError, match="already exists"):
        seal(tmp_path / "f", OWNER, tmp_path / "out.sealed")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "link").symlink_to(tmp_path / "f")
    with pytest.raises(SealError, match="symbolic links"):
        seal(tmp_path / "d", OWNER, tmp_path / "d.sealed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f", "out.sealed"]


def test_unseal_refuses_a_non_empty_target(
    sealed: tuple[Path, Path, bytes], tmp_path: Path
) -> None:
    _, pkg, key = sealed
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("mine")
    with pytest.raises(SealError, match="not empty"):
        SealedPackage.open(pkg, OWNER.identity).unseal_to(tmp_path / "out", key)
    assert (tmp_path / "out" / "keep").read_text() == "mine"


# ----------------------------------------------------------------- tamper properties

SMALL = 2 * CHUNK + 100


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    base = tmp_path_factory.mktemp("small")
    (base / "f.bin").write_bytes(os.urandom(SMALL))
    result = seal(base / "f.bin", OWNER, base / "f.sealed", chunk_size=CHUNK)
    return result.path, result.data_key


def _refused(pkg: Path, key: bytes, target: Path) -> None:
    with pytest.raises((SealError, SignatureError)):
        SealedPackage.open(pkg, OWNER.identity).unseal_to(target, key)
    assert not target.exists()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".out")]


FILES = ["chunks.bin", "manifest.json", "manifest.sig"]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(which=st.sampled_from(FILES), position=st.integers(min_value=0), bit=st.integers(0, 7))
def test_every_single_bit_flip_is_rejected(
    small: tuple[Path, bytes],
    tmp_path_factory: pytest.TempPathFactory,
    which: str,
    position: int,
    bit: int,
) -> None:
    pkg, key = small
    work = tmp_path_factory.mktemp("flip")
    copy = work / "p.sealed"
    shutil.copytree(pkg, copy)
    data = bytearray((copy / which).read_bytes())
    data[position % len(data)] ^= 1 << bit
    (copy / which).write_bytes(bytes(data))
    if (
        which == "manifest.sig"
        and (copy / which).read_bytes().strip() == (pkg / which).read_bytes().strip()
    ):
        return  # flipping the trailing newline's bit into other whitespace changes nothing signed
    _refused(copy, key, work / "out")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cut=st.integers(min_value=1, max_value=SMALL + 3 * 16),
    extend=st.binary(min_size=1, max_size=40),
)
def test_truncation_and_extension_are_rejected(
    small: tuple[Path, bytes], tmp_path_factory: pytest.TempPathFactory, cut: int, extend: bytes
) -> None:
    pkg, key = small
    work = tmp_path_factory.mktemp("cut")
    data = (pkg / "chunks.bin").read_bytes()
    for name, content in (("short", data[:-cut]), ("long", data + extend)):
        copy = work / f"{name}.sealed"
        shutil.copytree(pkg, copy)
        (copy / "chunks.bin").write_bytes(content)
        _refused(copy, key, work / "out")


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pair=st.lists(st.integers(0, 2), min_size=2, max_size=2, unique=True))
def test_reordered_chunks_are_rejected(
    small: tuple[Path, bytes], tmp_path_factory: pytest.TempPathFactory, pair: list[int]
) -> None:
    pkg, key = small
    work = tmp_path_factory.mktemp("swap")
    copy = work / "p.sealed"
    shutil.copytree(pkg, copy)
    stride = CHUNK + 16
    data = (copy / "chunks.bin").read_bytes()
    chunks = [data[i * stride : (i + 1) * stride] for i in range(3)]
    i, j = pair
    # Same-length swaps only (the last chunk is shorter): swap full chunks, else move the tail.
    chunks[i], chunks[j] = chunks[j], chunks[i]
    (copy / "chunks.bin").write_bytes(b"".join(chunks))
    _refused(copy, key, work / "out")
