"""Every command that reports takes --json and prints one JSON document on stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import typer
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.crypto.identity import create_party
from sealroom.workspace import Workspace

runner = CliRunner()

# Long-running servers: they report nothing at the end, they run until stopped.
SERVERS = {"kms serve", "lab worker start", "ui"}


def _commands() -> dict[str, Any]:
    root = typer.main.get_command(app)
    ctx = click.Context(root)  # type: ignore[arg-type]
    found: dict[str, Any] = {}

    def walk(command: Any, path: list[str]) -> None:
        if hasattr(command, "list_commands"):  # a group (typer's own class, not click's)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, [*path, name])
        else:
            found[" ".join(path)] = command

    walk(root, [])
    return found


def test_every_reporting_command_takes_json() -> None:
    commands = _commands()
    assert len(commands) > 60 and "ledger show" in commands
    missing = [
        name
        for name, command in commands.items()
        if name not in SERVERS
        and not any("--json" in getattr(p, "opts", []) for p in command.params)
    ]
    assert missing == []


def test_json_flags_are_flags() -> None:
    for name, command in _commands().items():
        for param in command.params:
            if "--json" in getattr(param, "opts", []):
                assert getattr(param, "is_flag", False), name


def _json(args: list[str]) -> dict[str, object]:
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    document: dict[str, object] = json.loads(done.stdout)
    return document


def test_new_json_outputs_parse(workspace: Workspace, tmp_path: Path) -> None:
    create_party(workspace, "hospital", "provider")
    exported = _json(["party", "export", "hospital", "--out", str(tmp_path / "h.json"), "--json"])
    assert exported["name"] == "hospital" and exported["out"] == str(tmp_path / "h.json")
    key = _json(["attest", "public-key", "--json"])
    assert isinstance(key["public_key"], str) and key["out"] is None
    (tmp_path / "att.pub").write_text(str(key["public_key"]))
    trusted = _json(["attest", "trust", str(tmp_path / "att.pub"), "--json"])
    assert trusted["trusted_key"] == key["public_key"] and trusted["insecure"] is True
    kms = _json(["kms", "public-key", "--out", str(tmp_path / "kms.json"), "--json"])
    assert "import_key" in kms and kms["out"] == str(tmp_path / "kms.json")
    schema = _json(["pipeline", "schema", "--part", "train", "--json"])
    assert "optimizer" in schema["properties"]  # type: ignore[operator]


def test_rotation_accepted_reports_json(workspace: Workspace, tmp_path: Path) -> None:
    create_party(workspace, "hospital", "provider")
    old = tmp_path / "old.json"
    _json(["party", "export", "hospital", "--out", str(old), "--json"])
    statement = tmp_path / "rotation.json"
    rotated = _json(["party", "rotate", "hospital", "--out", str(statement), "--json"])
    other = {"SEALROOM_HOME": str(Workspace.create(tmp_path / "other").home)}
    assert runner.invoke(app, ["party", "import", str(old)], env=other).exit_code == 0
    done = runner.invoke(app, ["party", "accept-rotation", str(statement), "--json"], env=other)
    assert done.exit_code == 0, done.output
    accepted = json.loads(done.stdout)
    assert accepted["name"] == "hospital"
    assert accepted["fingerprint"] == rotated["new_fingerprint"]
