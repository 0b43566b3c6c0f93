"""`sealroom contract ...` through typer's runner: exit codes, one-line refusals, --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.crypto.identity import create_party
from sealroom.workspace import Workspace

TEMPLATE = Path(__file__).resolve().parents[2] / "docs" / "contract-template.yaml"

runner = CliRunner()


@pytest.fixture
def parties(workspace: Workspace) -> Workspace:
    create_party(workspace, "hospital", "provider")
    create_party(workspace, "lab", "consumer")
    create_party(workspace, "operator", "operator")
    return workspace


def test_propose_sign_verify_story(parties: Workspace) -> None:
    result = runner.invoke(app, ["contract", "propose", str(TEMPLATE), "--as", "lab"])
    assert result.exit_code == 0, result.output
    assert "waiting for: hospital, operator" in result.output

    result = runner.invoke(app, ["contract", "verify", "mnist-demo"])
    assert result.exit_code == 1
    assert "missing signatures from 'hospital', 'operator'" in result.output
    assert len(result.stderr.strip().splitlines()) == 1

    result = runner.invoke(app, ["contract", "sign", "mnist-demo", "--as", "hospital"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["contract", "sign", "mnist-demo", "--as", "operator", "--json"])
    assert result.exit_code == 0, result.output
    signed = json.loads(result.stdout)
    assert signed["registered"] is True and signed["receipt"]["seq"] == 1

    result = runner.invoke(app, ["contract", "verify", "mnist-demo"])
    assert result.exit_code == 0, result.output
    assert "verified: 3 signatures" in result.output
    assert "ledger entry 1" in result.output

    result = runner.invoke(app, ["contract", "verify", "mnist-demo", "--json"])
    report = json.loads(result.stdout)
    assert report["verified"] is True
    assert report["digest"].startswith("sha256:")
    assert report["missing_signers"] == []


def test_show_reports_signers_and_json(parties: Workspace) -> None:
    runner.invoke(app, ["contract", "propose", str(TEMPLATE), "--as", "lab"])
    result = runner.invoke(app, ["contract", "show", "mnist-demo"])
    assert result.exit_code == 0, result.output
    assert "mnist-demo" in result.output and "waiting for" in result.output
    result = runner.invoke(app, ["contract", "show", "mnist-demo", "--json"])
    shown = json.loads(result.stdout)
    assert {p["name"]: p["signed"] for p in shown["parties"]} == {
        "hospital": False,
        "lab": True,
        "operator": False,
    }
    assert shown["contract"]["id"] == "mnist-demo"
    result = runner.invoke(app, ["contract", "list", "--json"])
    assert [c["id"] for c in json.loads(result.stdout)] == ["mnist-demo"]


def test_invalid_draft_is_one_line_naming_file_and_field(
    parties: Workspace, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(TEMPLATE.read_text().replace("max_epochs: 5", "max_epochs: -1"))
    result = runner.invoke(app, ["contract", "propose", str(bad), "--as", "lab"])
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert "\n" not in line
    assert "bad.yaml: constraints.max_epochs: Input should be greater than 0" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["contract", "show", "nope"], "no contract 'nope'"),
        (["contract", "sign", "nope", "--as", "lab"], "no contract 'nope'"),
        (["contract", "verify", "../x"], "not a valid contract id"),
    ],
)
def test_refusals_exit_1_with_one_line(parties: Workspace, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_usage_exits_2(parties: Workspace) -> None:
    result = runner.invoke(app, ["contract", "propose", str(TEMPLATE)])
    assert result.exit_code == 2


def test_commands_need_a_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEALROOM_HOME", str(tmp_path / "none"))
    result = runner.invoke(app, ["contract", "list"])
    assert result.exit_code == 1
    assert "sealroom init" in result.stderr


def test_help_shows_an_example() -> None:
    for command in ("propose", "sign", "show", "verify"):
        result = runner.invoke(app, ["contract", command, "--help"])
        assert result.exit_code == 0
        assert "Example: sealroom contract" in result.output


def test_export_import_and_offline_verify(parties: Workspace, tmp_path: Path) -> None:
    runner.invoke(app, ["contract", "propose", str(TEMPLATE), "--as", "lab"])
    for name in ("hospital", "operator"):
        runner.invoke(app, ["contract", "sign", "mnist-demo", "--as", name])
    bundle = tmp_path / "bundle.json"
    result = runner.invoke(app, ["contract", "export", "mnist-demo", "--out", str(bundle)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["contract", "import", str(bundle), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["registered"] is True
    pub = tmp_path / "ledger.pub"
    runner.invoke(app, ["ledger", "public-key", "--out", str(pub)])
    args = ["contract", "verify", "mnist-demo", "--ledger-key-file", str(pub)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    wrong = "A" * 43 + "="
    result = runner.invoke(app, ["contract", "verify", "mnist-demo", "--ledger-key", wrong])
    assert result.exit_code == 1
    assert "pins ledger key" in result.stderr
