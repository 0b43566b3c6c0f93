"""`sealroom party` through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.workspace import ENV_VAR, Workspace

runner = CliRunner()


def test_create_list_export_import(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = runner.invoke(app, ["party", "create", "hospital", "--role", "provider", "--json"])
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["name"] == "hospital" and len(created["fingerprint"]) == 32
    assert "PRIVATE" not in result.output

    out = tmp_path / "hospital.json"
    assert runner.invoke(app, ["party", "export", "hospital", "--out", str(out)]).exit_code == 0

    other = tmp_path / "lab-ws"
    Workspace.create(other)
    monkeypatch.setenv(ENV_VAR, str(other))
    result = runner.invoke(app, ["party", "import", str(out)])
    assert result.exit_code == 0, result.output
    listed = json.loads(runner.invoke(app, ["party", "list", "--json"]).stdout)
    assert listed == [{**created, "private_keys": False, "keys": "imported"}]


def test_bad_role_and_duplicate_exit_1_with_one_line(workspace: Workspace) -> None:
    result = runner.invoke(app, ["party", "create", "x", "--role", "admin"])
    assert result.exit_code == 1
    assert "role 'admin'" in result.output and len(result.output.strip().splitlines()) == 1
    assert runner.invoke(app, ["party", "create", "x", "--role", "consumer"]).exit_code == 0
    result = runner.invoke(app, ["party", "create", "x", "--role", "consumer"])
    assert result.exit_code == 1 and "already exists" in result.output


def test_no_workspace_says_how_to_create_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "none"))
    result = runner.invoke(app, ["party", "list"])
    assert result.exit_code == 1 and "sealroom init" in result.output
