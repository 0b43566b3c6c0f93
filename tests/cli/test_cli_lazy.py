"""The lazy top-level group: `--help` from the static table says what the commands say."""

from __future__ import annotations

import contextlib
import io

import pytest
import typer
from typer.testing import CliRunner

from sealroom.cli.lazy import load
from sealroom.cli.main import COMMANDS, app

runner = CliRunner()


def _help(group: typer.core.TyperGroup) -> str:
    ctx = typer.Context(group, info_name="sealroom")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        text = group.get_help(ctx)
    return text + out.getvalue()


def _first_paragraph(text: str | None) -> str:
    return " ".join((text or "").split("\n\n")[0].split())


@pytest.fixture(scope="module")
def loaded() -> dict[str, object]:
    """Every table entry imported and built as typer would (imports every command module)."""
    return {name: load(name, entry) for name, entry in COMMANDS.items()}


def test_every_entry_loads_under_its_name(loaded: dict[str, object]) -> None:
    for name, command in loaded.items():
        assert getattr(command, "name", None) == name


def test_the_table_says_what_each_command_says(loaded: dict[str, object]) -> None:
    for name, command in loaded.items():
        assert COMMANDS[name].help == _first_paragraph(getattr(command, "help", "")), name


def test_lazy_help_is_the_help_of_the_loaded_commands(
    loaded: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    lazy = _help(group)
    assert set(group.commands) == {"init"}  # listing imported nothing
    for name, command in loaded.items():
        group.commands[name] = command  # type: ignore[assignment]
    assert _help(group) == lazy
    for name in COMMANDS:
        assert name in lazy


def test_a_command_runs_through_the_lazy_group() -> None:
    result = runner.invoke(app, ["pipeline", "schema", "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: sealroom pipeline schema" in " ".join(result.output.split())


def test_a_mistyped_command_suggests_the_lazy_names() -> None:
    result = runner.invoke(app, ["ledgr"])
    assert result.exit_code == 2
    assert "No such command 'ledgr'" in result.output
    assert "Did you mean 'ledger'?" in result.output
