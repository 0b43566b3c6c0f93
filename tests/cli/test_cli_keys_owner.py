"""`keys grant` / `keys import` of another party's package name its owner, in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.crypto.identity import create_party
from sealroom.workspace import Workspace

runner = CliRunner()


@pytest.fixture
def package(workspace: Workspace, tmp_path: Path) -> Path:
    create_party(workspace, "hospital", "provider")
    create_party(workspace, "lab", "consumer")
    source = tmp_path / "mnist"
    source.mkdir()
    (source / "images.bin").write_bytes(b"\x01" * 64)
    out = tmp_path / "mnist.sealed"
    done = runner.invoke(app, ["seal", str(source), "--owner", "hospital", "--out", str(out)])
    assert done.exit_code == 0, done.output
    return out


def _errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_grant_of_another_partys_package_names_the_owner(package: Path, tmp_path: Path) -> None:
    service = tmp_path / "kms.pub.json"
    service.write_text(json.dumps({"import_key": "AAAA"}))
    grant = tmp_path / "g.json"
    args = ["keys", "grant", str(package), "--as", "lab", "--contract", "c1"]
    done = runner.invoke(app, [*args, "--to", str(service), "--out", str(grant)])
    assert done.exit_code == 1
    assert _errors(done.stderr) == [
        "error: package mnist.sealed belongs to hospital; only hospital can grant its key "
        "(--as lab is not its owner)"
    ]
    assert "does not verify" not in done.stderr and not grant.exists()


def test_import_of_another_partys_package_names_the_owner(package: Path) -> None:
    done = runner.invoke(app, ["keys", "import", str(package), "--as", "lab", "--contract", "c1"])
    assert done.exit_code == 1
    (line,) = _errors(done.stderr)
    assert "belongs to hospital; only hospital can import its key" in line


def test_a_forged_owner_name_still_fails_the_signature_check(package: Path) -> None:
    """The unverified name only words the refusal: a manifest renamed to the caller's name
    is still checked against the caller's key (and fails) before anything is released."""
    manifest = package / "manifest.json"
    document = json.loads(manifest.read_text())
    document["owner"] = "lab"
    manifest.write_text(json.dumps(document))
    done = runner.invoke(app, ["keys", "import", str(package), "--as", "lab", "--contract", "c1"])
    assert done.exit_code == 1
    assert "belongs to" not in done.stderr and len(_errors(done.stderr)) == 1
