"""The room's commands refuse bad input with one line and exit 1 (no room is started)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.workspace import Workspace

runner = CliRunner()


def _one_error(output: str, needle: str) -> None:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in " ".join(output.split()), output


def test_run_without_the_contract_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    done = runner.invoke(app, ["run", "--contract", "nope", "--pipeline", str(tmp_path)])
    assert done.exit_code == 1
    _one_error(done.output, "no contract 'nope'")
    assert list(workspace.runs.iterdir()) == []


def test_demo_refuses_unknown_scenarios_and_used_folders(tmp_path: Path) -> None:
    done = runner.invoke(app, ["demo", "nope", "--home", str(tmp_path / "d")])
    assert done.exit_code == 1
    _one_error(done.output, "no scenario 'nope'")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "file").write_text("x")
    done = runner.invoke(app, ["demo", "mnist", "--home", str(tmp_path / "used")])
    assert done.exit_code == 1
    _one_error(done.output, "is not empty")


def test_receipt_verify_and_decrypt_name_a_missing_run(
    workspace: Workspace, tmp_path: Path
) -> None:
    done = runner.invoke(app, ["receipt", "verify", "run-nope"])
    assert done.exit_code == 1
    _one_error(done.output, "no run 'run-nope'")
    runner.invoke(app, ["party", "create", "lab", "--role", "consumer"])
    done = runner.invoke(
        app, ["output", "decrypt", "run-nope", "--as", "lab", "--out", str(tmp_path / "o")]
    )
    assert done.exit_code == 1
    _one_error(done.output, "no run 'run-nope'")
