"""The attest, policy, keys and kms commands as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sealroom.attest import measure_runtime
from sealroom.cli.main import app
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
