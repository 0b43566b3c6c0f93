"""`sealroom seal` / `sealroom unseal` through typer's runner."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.cli.seal import SealOptionError, parse_size
from sealroom.crypto.identity import create_party
from sealroom.workspace import ENV_VAR, Workspace

runner = CliRunner()
CHUNK = "1KiB"


@pytest.fixture
def parties(workspace: Workspace) -> Workspace:
    create_party(workspace, "hospital", "provider")
    create_party(workspace, "lab", "consumer")
    return workspace


def _tree(root: Path) -> Path:
    (root / "scans" / "deep").mkdir(parents=True)
    (root / "scans" / "one.bin").write_bytes(os.urandom(2500))
    (root / "scans" / "deep" / "empty.txt").write_bytes(b"")
    (root / "labels.csv").write_text("id,label\n1,0\n")
    return root


def _seal(source: Path, out: Path, *extra: str) -> dict[str, object]:
    args = ["seal", str(source), "--owner", "hospital", "--out", str(out)]
    result = runner.invoke(app, [*args, "--chunk-size", CHUNK, "--json", *extra])
    assert result.exit_code == 0, result.output
    report: dict[str, object] = json.loads(result.stdout)
    return report


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_directory_round_trip(parties: Workspace, tmp_path: Path) -> None:
    source = _tree(tmp_path / "data")
    _seal(source, tmp_path / "data.sealed", "--format", "table")
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["unseal", str(tmp_path / "data.sealed"), "--as", "hospital", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert _files(out) == _files(source)
    assert "signature and 3 chunks verified" in result.stdout


def test_file_round_trip_and_human_output(parties: Workspace, tmp_path: Path) -> None:
    data = os.urandom(5000)
    (tmp_path / "model.onnx").write_bytes(data)
    pkg = tmp_path / "model.sealed"
    args = ["seal", str(tmp_path / "model.onnx"), "--owner", "hospital", "--out", str(pkg)]
    result = runner.invoke(app, [*args, "--format", "onnx", "--chunk-size", "2048"])
    assert result.exit_code == 0, result.output
    assert "sha256:" in result.stdout and "3 chunks of 2.0 KiB" in result.stdout
    assert "INFO data key wrapped to owner 'hospital'" in result.stdout
    out = tmp_path / "out"
    result = runner.invoke(app, ["unseal", str(pkg), "--as", "hospital", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "model.onnx").read_bytes() == data


def test_json_fields(parties: Workspace, tmp_path: Path) -> None:
    source = _tree(tmp_path / "data")
    pkg = tmp_path / "data.sealed"
    sealed = _seal(source, pkg, "--format", "idx")
    manifest_sha = hashlib.sha256((pkg / "manifest.json").read_bytes()).hexdigest()
    assert sealed["digest"] == f"sha256:{manifest_sha}"
    assert {k: sealed[k] for k in ("owner", "kind", "format", "files", "size", "chunk_size")} == {
        "owner": "hospital",
        "kind": "directory",
        "format": "idx",
        "files": 3,
        "size": 2500 + len("id,label\n1,0\n"),
        "chunk_size": 1024,
    }
    assert sealed["chunks"] == 3 and sealed["owner_key"] is True
    result = runner.invoke(
        app, ["unseal", str(pkg), "--as", "hospital", "--out", str(tmp_path / "o"), "--json"]
    )
    assert result.exit_code == 0, result.output
    opened = json.loads(result.stdout)
    assert opened["digest"] == sealed["digest"]
    assert opened["plaintext_sha256"] == sealed["plaintext_sha256"]
    assert opened["files"] == ["labels.csv", "scans/deep/empty.txt", "scans/one.bin"]


def test_tampered_chunk_named_and_no_output(parties: Workspace, tmp_path: Path) -> None:
    source = _tree(tmp_path / "data")
    pkg = tmp_path / "data.sealed"
    _seal(source, pkg)
    with open(pkg / "chunks.bin", "r+b") as handle:
        handle.seek(1024 + 16 + 7)  # inside chunk 1
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x40]))
    out = tmp_path / "out"
    result = runner.invoke(app, ["unseal", str(pkg), "--as", "hospital", "--out", str(out)])
    assert result.exit_code == 1
    assert "chunk 1 failed authentication" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_wrong_party_refused(parties: Workspace, tmp_path: Path) -> None:
    _seal(_tree(tmp_path / "data"), tmp_path / "data.sealed")
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["unseal", str(tmp_path / "data.sealed"), "--as", "lab", "--out", str(out)]
    )
    assert result.exit_code == 1
    assert re.search(
        r"sealed to 'hospital' \(key [0-9a-f]{32}\), not to 'lab' \(key", result.output
    )
    assert not out.exists()


def test_unknown_owner_missing_package_and_existing_out(
    parties: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "data.sealed"
    _seal(_tree(tmp_path / "data"), pkg)
    (tmp_path / "taken").mkdir()
    result = runner.invoke(
        app, ["unseal", str(pkg), "--as", "hospital", "--out", str(tmp_path / "taken")]
    )
    assert result.exit_code == 1 and "already exists" in result.output
    result = runner.invoke(
        app,
        ["unseal", str(tmp_path / "nope.sealed"), "--as", "hospital", "--out", str(tmp_path / "o")],
    )
    assert result.exit_code == 1 and "missing (is this a sealed package folder?)" in result.output
    other = tmp_path / "other-ws"
    create_party(Workspace.create(other), "lab", "consumer")
    monkeypatch.setenv(ENV_VAR, str(other))
    result = runner.invoke(app, ["unseal", str(pkg), "--as", "lab", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "sealed by 'hospital', unknown here" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_no_owner_key_needs_a_key_file_which_then_unseals(
    parties: Workspace, tmp_path: Path
) -> None:
    source = _tree(tmp_path / "data")
    pkg = tmp_path / "data.sealed"
    args = ["seal", str(source), "--owner", "hospital", "--out", str(pkg), "--no-owner-key"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "--key-out" in result.output and not pkg.exists()
    key_file = tmp_path / "data.key"
    result = runner.invoke(app, [*args, "--key-out", str(key_file)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not (pkg / "owner_key.hpke").exists()
    result = runner.invoke(
        app, ["unseal", str(pkg), "--as", "hospital", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1 and "sealed without one" in result.output
    out = tmp_path / "out"
    result = runner.invoke(app, ["unseal", str(pkg), "--key", str(key_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert _files(out) == _files(source)


def test_bad_options_are_one_line(parties: Workspace, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    base = ["seal", str(tmp_path / "f"), "--owner", "hospital", "--out", str(tmp_path / "p")]
    for extra, message in (
        (["--chunk-size", "4MB"], "--chunk-size '4MB'"),
        (["--chunk-size", "100"], "choose between 1 KiB and 16 MiB"),
        (["--chunk-size", "1GiB"], "choose between 1 KiB and 16 MiB"),
        (["--format", "../x"], "--format '../x'"),
    ):
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 1, extra
        assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()


def test_parse_size() -> None:
    assert parse_size("4MiB") == 4 << 20
    assert parse_size("512kib") == 512 << 10
    assert parse_size("1 GiB") == 1 << 30
    assert parse_size("65536") == 65536
    with pytest.raises(SealOptionError):
        parse_size("1.5MiB")


def test_help_has_examples() -> None:
    for command in ("seal", "unseal"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and f"Example: sealroom {command}" in result.output


def test_full_disk_is_one_line_and_leaves_nothing(
    parties: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "data.sealed"
    _seal(_tree(tmp_path / "data"), pkg)

    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    out = tmp_path / "out"
    result = runner.invoke(app, ["unseal", str(pkg), "--as", "hospital", "--out", str(out)])
    assert result.exit_code == 1 and "not enough disk space" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_unwritable_out_is_one_line(parties: Workspace, tmp_path: Path) -> None:
    pkg = tmp_path / "data.sealed"
    _seal(_tree(tmp_path / "data"), pkg)
    (tmp_path / "file").write_text("not a folder")
    result = runner.invoke(
        app, ["unseal", str(pkg), "--as", "hospital", "--out", str(tmp_path / "file" / "out")]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
