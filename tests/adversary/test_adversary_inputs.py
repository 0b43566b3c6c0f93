"""Bounded inputs: a hostile owner's manifest, hostile files and paths give one line, never a
traceback, a huge allocation or a file written outside the target folder."""

from __future__ import annotations

import json
import os
import re
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.crypto.identity import Party, create_party
from sealroom.crypto.manifest import SIGNATURE_DOMAIN
from sealroom.crypto.package import SealedPackage, owner_data_key, seal
from sealroom.crypto.sealing import MANIFEST, SIGNATURE
from sealroom.crypto.signing import b64
from sealroom.errors import SealError, WrongKeyError
from sealroom.workspace import Workspace

OWNER = Party.generate("hospital", "provider")
runner = CliRunner()


def forge(package: Path, edit: Callable[[dict[str, Any]], None], signer: Party = OWNER) -> None:
    """Rewrite the manifest as a hostile owner would: edited, then validly re-signed."""
    data = json.loads((package / MANIFEST).read_bytes())
    edit(data)
    raw = rfc8785.dumps(data)
    (package / MANIFEST).write_bytes(raw)
    (package / SIGNATURE).write_text(b64(signer.sign(SIGNATURE_DOMAIN + raw)) + "\n")


def one_line(error: pytest.ExceptionInfo[Exception]) -> str:
    message = str(error.value)
    assert "\n" not in message and len(message) < 600
    return message


# ---------------------------------------------------------------- 1 GiB chunks


def test_signed_manifest_with_1gib_chunks_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(b"0123456789")
    result = seal(tmp_path / "f.bin", OWNER, tmp_path / "f.sealed")

    def huge(data: dict[str, Any]) -> None:
        data["chunk_size"] = 1 << 30  # n_chunks stays 1 for 10 bytes: consistent

    forge(result.path, huge)
    tracemalloc.start()
    try:
        with pytest.raises(SealError) as info:
            SealedPackage.open(result.path, OWNER.identity).read_all(result.data_key)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "chunk size 1073741824 bytes is over the 16 MiB maximum" in one_line(info)
    assert peak < 1 << 20


def test_sealing_with_1gib_chunks_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(b"0123456789")
    with pytest.raises(SealError, match="choose between 1 KiB and 16 MiB"):
        seal(tmp_path / "f.bin", OWNER, tmp_path / "f.sealed", chunk_size=1 << 30)
    assert not (tmp_path / "f.sealed").exists()


def test_small_package_with_largest_chunks_costs_no_chunk_sized_buffer(tmp_path: Path) -> None:
    """16 MiB chunks, 10 bytes of data: neither seal nor read allocates a chunk."""
    (tmp_path / "f.bin").write_bytes(b"0123456789")
    tracemalloc.start()
    try:
        result = seal(tmp_path / "f.bin", OWNER, tmp_path / "f.sealed", chunk_size=16 << 20)
        seal_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        package = SealedPackage.open(result.path, OWNER.identity)
        assert package.read_all(result.data_key) == {"f.bin": b"0123456789"}
        assert package.read_chunk(0, result.data_key) == b"0123456789"
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seal_peak < 1 << 20 and read_peak < 1 << 20, (seal_peak, read_peak)


# ---------------------------------------------------------------- manifest paths

HOSTILE_PATHS = {
    "a\nb": r"U\+000A",
    "a\x00b": r"U\+0000",
    "a\x7fb": r"U\+007F",
    "a\u202eb": r"U\+202E",  # right-to-left override: displays as another name
    "a/" * 2000 + "b": r"bytes long|folders deep",
    "a/" * 40 + "b": r"41 folders deep \(at most 32\)",
    "x" * 1100: r"1100 bytes long \(at most 1024\)",
    "/etc/passwd": "is absolute",
    "../outside": r"'\.\.' component",
    "a/./b": r"'\.\.' component",
    "a\\..\\b": "backslash",
}


@pytest.mark.parametrize("path", list(HOSTILE_PATHS))
def test_signed_manifest_with_a_hostile_path_is_refused(path: str, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"data")
    result = seal(tmp_path / "d", OWNER, tmp_path / "d.sealed")

    def rename(data: dict[str, Any]) -> None:
        data["files"][0]["path"] = path

    forge(result.path, rename)
    with pytest.raises(SealError) as info:
        SealedPackage.open(result.path, OWNER.identity)
    message = one_line(info)
    assert message.startswith(f"{result.path / MANIFEST}: files.0: file path ")
    assert re.search(HOSTILE_PATHS[path], message), message
    assert "\x00" not in message and "\u202e" not in message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("name", "data\x1b[2J", "U+001B"),  # a terminal escape shown by `unseal`
        ("name", "n" * 300, "300 bytes long"),
        ("format", "idx\nowner: lab", "format: String should match"),
        ("owner", "hospital\n", "owner: String should match"),
    ],
)
def test_signed_manifest_with_hostile_labels_is_refused(
    field: str, value: str, expected: str, tmp_path: Path
) -> None:
    (tmp_path / "f").write_bytes(b"data")
    result = seal(tmp_path / "f", OWNER, tmp_path / "f.sealed")
    forge(result.path, lambda data: data.update({field: value}))
    with pytest.raises(SealError) as info:
        SealedPackage.open(result.path, OWNER.identity)
    assert expected in one_line(info)


def test_a_file_that_is_also_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for name in ("a", "b"):
        (tmp_path / "d" / name).write_bytes(b"x")
    result = seal(tmp_path / "d", OWNER, tmp_path / "d.sealed")
    forge(result.path, lambda data: data["files"][1].update(path="a/b"))
    with pytest.raises(SealError, match="file path 'a' is also a folder"):
        SealedPackage.open(result.path, OWNER.identity)


@pytest.mark.parametrize("name", ["new\nline", "tab\there", "bidi\u202etxt.exe", "\x1b[31mred"])
def test_sealing_a_file_with_control_characters_in_its_name_is_refused(
    name: str, tmp_path: Path
) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / name).write_bytes(b"x")
    with pytest.raises(SealError) as info:
        seal(tmp_path / "d", OWNER, tmp_path / "d.sealed")
    assert repr(name) in one_line(info) and "rename it" in str(info.value)
    assert not (tmp_path / "d.sealed").exists()


def test_sealing_a_non_utf8_file_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / os.fsdecode(b"caf\xe9")).write_bytes(b"x")  # Latin-1 bytes on disk
    with pytest.raises(SealError, match=r"U\+DCE9"):
        seal(tmp_path / "d", OWNER, tmp_path / "d.sealed")


def test_sealing_a_folder_too_deep_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / "d" / Path(*["a"] * 40)
    deep.mkdir(parents=True)
    (deep / "f").write_bytes(b"x")
    with pytest.raises(SealError, match=r"41 folders deep \(at most 32\)"):
        seal(tmp_path / "d", OWNER, tmp_path / "d.sealed")


# ---------------------------------------------------------------- CLI: one line, no traceback


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    return result.output


@pytest.fixture
def parties(workspace: Workspace) -> Workspace:
    create_party(workspace, "hospital", "provider")
    create_party(workspace, "lab", "consumer")
    return workspace


@pytest.mark.parametrize(
    "content", [b"name: caf\xe9\n", bytes(range(256)) * 4, b"\xff\xfe\x00\x00"]
)
def test_contract_propose_on_a_non_utf8_file_is_one_line(
    content: bytes, parties: Workspace, tmp_path: Path
) -> None:
    draft = tmp_path / "draft.yaml"
    draft.write_bytes(content)
    assert "draft.yaml: not UTF-8 text (byte 0x" in cli(
        "contract", "propose", str(draft), "--as", "lab"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"[" * 100_000, "nested too deeply"), (b"a: b\n" * 300_000, "larger than 1,048,576 bytes")],
)
def test_contract_propose_on_deep_or_huge_files_is_one_line(
    content: bytes, expected: str, parties: Workspace, tmp_path: Path
) -> None:
    draft = tmp_path / "draft.yaml"
    draft.write_bytes(content)
    assert expected in cli("contract", "propose", str(draft), "--as", "lab")


def test_keys_import_on_a_file_or_a_plain_folder_is_one_line(
    parties: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "f.txt").write_text("not a package")
    (tmp_path / "folder").mkdir()
    base = ["keys", "import", "--as", "hospital", "--contract", "c"]
    assert "f.txt: not a sealed package folder" in cli(*base, str(tmp_path / "f.txt"))
    assert "manifest.json: missing" in cli(*base, str(tmp_path / "folder"))


def test_keys_import_grant_on_binary_or_folder_is_one_line(
    parties: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "g.json").write_bytes(b"\xff\xfe binary")
    assert "not UTF-8 text" in cli("keys", "import-grant", str(tmp_path / "g.json"))
    assert "Is a directory" in cli("keys", "import-grant", str(tmp_path))


def test_party_import_on_binary_folder_or_huge_file_is_one_line(
    parties: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "id.json").write_bytes(b"\xff\xfe binary")
    assert "id.json: not UTF-8 text" in cli("party", "import", str(tmp_path / "id.json"))
    assert "a folder, not an identity document" in cli("party", "import", str(tmp_path))
    with open(tmp_path / "big.json", "wb") as handle:
        handle.truncate(1 << 20)  # sparse
    assert "larger than an identity document" in cli("party", "import", str(tmp_path / "big.json"))


def test_oversized_manifest_is_refused_before_it_is_read(tmp_path: Path) -> None:
    (tmp_path / "p.sealed").mkdir()
    with open(tmp_path / "p.sealed" / MANIFEST, "wb") as handle:
        handle.truncate(65 << 20)  # sparse: no disk used
    with pytest.raises(SealError, match=r"larger than 67,108,864 bytes"):
        SealedPackage.read_manifest(tmp_path / "p.sealed")


# ---------------------------------------------------------------- a swapped owner key


def test_swapped_owner_key_names_both_fingerprints(tmp_path: Path) -> None:
    """Same party name, different key: the message must tell the two apart."""
    (tmp_path / "f.bin").write_bytes(b"data")
    result = seal(tmp_path / "f.bin", OWNER, tmp_path / "f.sealed")
    impostor = Party.generate("hospital", "provider")
    with pytest.raises(WrongKeyError) as info:
        owner_data_key(result.path, impostor)
    message = one_line(info)
    assert f"sealed to 'hospital' (key {OWNER.identity.fingerprint})" in message
    assert f"not to 'hospital' (key {impostor.identity.fingerprint})" in message


def test_damaged_owner_key_with_the_right_party_says_so(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(b"data")
    result = seal(tmp_path / "f.bin", OWNER, tmp_path / "f.sealed")
    wrapped = result.path / "owner_key.hpke"
    data = bytearray(wrapped.read_bytes())
    data[-1] ^= 1
    wrapped.write_bytes(bytes(data))
    with pytest.raises(WrongKeyError, match=r"owner_key\.hpke does not open with 'hospital' \(key"):
        owner_data_key(result.path, OWNER)
