"""The attest, policy, keys and kms commands as a user runs them."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sealroom.attest import measure_runtime
from sealroom.cli.main import app
from sealroom.httpguard import read_token, write_token
from sealroom.workspace import Workspace
from tests.kms.factories import CONTRACT_ID, make_parties, pipeline_data, store_contract

runner = CliRunner()


def test_attest_measure_prints_the_measurement_and_insecure(workspace: Workspace) -> None:
    result = runner.invoke(app, ["attest", "measure"])
    assert result.exit_code == 0, result.output
    assert measure_runtime() in result.output
    assert "INSECURE" in result.output


def test_attest_measure_json(workspace: Workspace) -> None:
    result = runner.invoke(app, ["attest", "measure", "--json", "--files"])
    data = json.loads(result.stdout)
    assert data["measurement"] == measure_runtime()
    assert data["insecure"] is True
    assert "INSECURE" in data["warning"]
    assert "policy/release.rego" in data["files"]


def _pipeline_file(tmp_path: Path, **overrides: object) -> Path:
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(pipeline_data(**overrides)))
    return path


def test_policy_check_allows_a_conforming_pipeline(workspace: Workspace, tmp_path: Path) -> None:
    store_contract(workspace, make_parties(workspace))
    args = [
        "policy",
        "check",
        "--contract",
        CONTRACT_ID,
        "--pipeline",
        str(_pipeline_file(tmp_path)),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "allow" in result.output


def test_policy_check_lists_every_violation(workspace: Workspace, tmp_path: Path) -> None:
    store_contract(workspace, make_parties(workspace))
    pipeline = _pipeline_file(
        tmp_path,
        train={"optimizer": {"name": "sgd"}, "epochs": 9},
        privacy={"epsilon": 5.0, "delta": 1e-5},
    )
    args = ["policy", "check", "--contract", CONTRACT_ID, "--pipeline", str(pipeline)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "deny" in result.output
    assert "epsilon 5.0 exceeds dataset mnist's limit 3.0" in result.output
    assert "epochs 9 exceed the contract's limit 5" in result.output
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["allow"] is False
    assert len(data["violations"]) == 2
    assert data["pipeline_digest"].startswith("sha256:")


def test_policy_check_unknown_contract_is_one_red_line(
    workspace: Workspace, tmp_path: Path
) -> None:
    args = ["policy", "check", "--contract", "nope", "--pipeline", str(_pipeline_file(tmp_path))]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "no contract 'nope'" in result.output


def test_keys_list_when_empty(workspace: Workspace) -> None:
    result = runner.invoke(app, ["keys", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


def test_kms_serve_refuses_non_loopback(workspace: Workspace) -> None:
    result = runner.invoke(app, ["kms", "serve", "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 1
    assert "loopback only" in result.output


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Captures what `kms serve` would serve instead of blocking in uvicorn."""
    calls: list[Any] = []
    monkeypatch.setattr("sealroom.kms.server.serve", lambda *args: calls.append(args))
    return calls


def test_kms_serve_writes_a_fresh_private_token_and_does_not_print_it(
    workspace: Workspace, served: list[Any]
) -> None:
    tokens = []
    for _ in range(2):
        result = runner.invoke(app, ["kms", "serve", "--port", "8712", "--rate", "3"])
        assert result.exit_code == 0, result.output
        token_file = workspace.keys / "kms-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        tokens.append(read_token(token_file))
        assert tokens[-1] not in result.output
        assert f"client token in {token_file}" in " ".join(result.output.split())
    assert tokens[0] != tokens[1]  # fresh at every start
    ws, guard, host, port = served[-1]
    assert (ws.home, host, port) == (workspace.home, "127.0.0.1", 8712)
    assert guard.token == tokens[1]
    assert guard.allowed_hosts >= {"127.0.0.1:8712", "localhost:8712"}
    assert (guard.per_client.rate, guard.per_client.burst) == (3.0, 6)


def test_kms_serve_uses_the_operators_token_file(
    workspace: Workspace, served: list[Any], tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    write_token(token_file, "operator-chosen-token-0123456789")
    result = runner.invoke(app, ["kms", "serve", "--token-file", str(token_file), "--show-token"])
    assert result.exit_code == 0, result.output
    assert "token: operator-chosen-token-0123456789" in result.output
    assert served[-1][1].token == "operator-chosen-token-0123456789"
    assert not (workspace.keys / "kms-token").exists()
    token_file.chmod(0o644)
    result = runner.invoke(app, ["kms", "serve", "--token-file", str(token_file)])
    assert result.exit_code == 1
    assert "readable by others" in result.output


def test_help_has_examples() -> None:
    for group, command in [
        ("attest", "measure"),
        ("policy", "check"),
        ("keys", "import"),
        ("keys", "list"),
        ("kms", "serve"),
    ]:
        result = runner.invoke(app, [group, command, "--help"])
        assert result.exit_code == 0
        assert "Example: sealroom" in result.output
