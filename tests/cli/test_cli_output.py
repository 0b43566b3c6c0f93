"""Output that survives pipes: no wrapped paths, digests or commands; flags without <bool>;
readable `ledger show`; the demo's temp folder; plurals; compose errors one line each."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.crypto.identity import create_party
from sealroom.ledger import Ledger
from sealroom.workspace import Workspace

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
LONG = "a-folder-name-long-enough-to-be-wrapped-at-forty-columns/and-one-more-level"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real entry point in a subprocess, stdout a pipe (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-c", "from sealroom.cli.main import main; main()", *args],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_piped_output_at_40_columns_keeps_digest_and_long_path_whole(
    workspace: Workspace, tmp_path: Path
) -> None:
    create_party(workspace, "hospital", "provider")
    source = tmp_path / "data.bin"
    source.write_bytes(b"x" * 100)
    out = tmp_path / LONG / "data.sealed"
    done = _cli(
        "seal", str(source), "--owner", "hospital", "--out", str(out), env={"COLUMNS": "40"}
    )
    assert done.returncode == 0, done.stderr
    digest = re.search(r"sha256:[0-9a-f]{64}", done.stdout)
    assert digest is not None and len(digest.group()) == 71, done.stdout
    lines = done.stdout.splitlines()
    assert any(digest.group() in line for line in lines)
    assert any(str(out) in line for line in lines), done.stdout  # the path is on one line
    assert "in 1 file," in done.stdout  # plural-aware


def test_cli_runner_output_is_not_wrapped_either(workspace: Workspace, tmp_path: Path) -> None:
    home = tmp_path / LONG / "ws2"
    done = runner.invoke(app, ["init", "--home", str(home)], env={"COLUMNS": "40"})
    assert done.exit_code == 0, done.output
    assert str(home) in done.stdout.splitlines()[0]


def test_bool_flags_show_no_type_in_help() -> None:
    done = runner.invoke(app, ["ledger", "show", "--help"], env={"COLUMNS": "120"})
    assert done.exit_code == 0
    assert "--json" in done.stdout and "--kind" in done.stdout
    assert "<bool>" not in done.stdout
    assert "<str>" in done.stdout  # options that take a value still show their type
    top = runner.invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert "--debug" in top.stdout and "<bool>" not in top.stdout


def test_repeatable_options_say_so_instead_of_a_python_type() -> None:
    done = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "160"})
    assert done.exit_code == 0
    assert "<list[" not in done.stdout
    assert "<str> (repeatable)" in done.stdout and "<path> (repeatable)" in done.stdout


def _fill(ws: Workspace) -> None:
    long_value = "x" * 300
    with Ledger.open(ws) as ledger:
        ledger.append("contract.registered", {"contract_id": "c1", "signer": "hospital"})
        ledger.append("run.completed", {"run_id": "r1", "detail": long_value, "m": {"acc": 0.9}})


def test_ledger_show_prints_every_entry_in_full(workspace: Workspace) -> None:
    _fill(workspace)
    done = runner.invoke(app, ["ledger", "show"], env={"COLUMNS": "40"})
    assert done.exit_code == 0, done.output
    blocks = done.stdout.strip().split("\n\n")
    assert len(blocks) == 2
    assert blocks[0].startswith("#1  contract.registered  ") and "by hospital" in blocks[0]
    assert "  contract_id: c1" in blocks[0]
    assert "  detail: " + "x" * 300 in blocks[1]  # not cut, not wrapped
    assert '    "acc": 0.9' in blocks[1]
    kinds = runner.invoke(app, ["ledger", "show", "--kind", "run.completed"]).stdout
    assert "contract.registered" not in kinds and "#2  run.completed" in kinds
    lines = runner.invoke(app, ["ledger", "show", "--jsonl"]).stdout.splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2]
    assert json.loads(lines[1])["payload"]["detail"] == "x" * 300
    none = runner.invoke(app, ["ledger", "show", "--kind", "nope"]).stdout
    assert none.strip() == "no ledger entries of kind nope"


def test_ledger_verify_counts_with_plurals(workspace: Workspace) -> None:
    with Ledger.open(workspace) as ledger:
        ledger.append("run.started", {"run_id": "r1"})
    assert "1 entry," in runner.invoke(app, ["ledger", "verify"]).stdout


def test_compose_prints_every_problem_on_its_own_line(tmp_path: Path) -> None:
    from tests.pipeline.conftest import PARTS, write_parts

    parts = {**PARTS, "train": {**PARTS["train"], "epoch": 2, "optimizer": {"name": "adamm"}}}
    parts["eval"] = {"metrics": ["loss"], "plotz": True}
    folder = write_parts(tmp_path / "scenario", parts)
    out = tmp_path / "p.json"
    done = runner.invoke(app, ["pipeline", "compose", str(folder), "--out", str(out)])
    assert done.exit_code == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3, done.stderr
    assert errors[0] == "error: eval.yaml: plotz: unknown key (did you mean 'plots'?)"
    assert errors[1] == "error: train.yaml: epoch: unknown key (did you mean 'epochs'?)"
    assert errors[2].startswith("error: train.yaml: optimizer.name: unknown optimizer 'adamm'")
    assert not out.exists()  # nothing written


# ------------------------------------------------------------------ the demo's temp folder


class _FakeStory:
    """Stands in for the room story: writes a workspace and decrypted metrics into ``base``."""

    def __init__(self, scenario: object, base: Path, narrator: object, epochs: object) -> None:
        self.base = base

    def play(self) -> SimpleNamespace:
        outputs = self.base / "consumer-lab" / "outputs"
        outputs.mkdir(parents=True)
        (outputs / "metrics.json").write_text(json.dumps({"metrics": {"accuracy": 0.5}}))
        record = SimpleNamespace(run_id="run-1", insecure=False, privacy=None)
        return SimpleNamespace(
            home=self.base / "workspace",
            run_dir=self.base / "workspace" / "runs" / "run-1",
            outputs=outputs,
            receipt=SimpleNamespace(record=record),
        )


@pytest.fixture
def fake_story(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    import sealroom.room.story as story

    monkeypatch.setattr(story, "Story", _FakeStory)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr("tempfile.tempdir", None)
    return temp


def test_demo_removes_its_temp_folder_unless_kept(fake_story: Path) -> None:
    done = runner.invoke(app, ["demo", "mnist"])
    assert done.exit_code == 0, done.output
    assert list(fake_story.iterdir()) == []
    assert "accuracy" in done.stdout and "0.5000" in done.stdout
    assert "verify:" not in done.stdout  # no command pointing at a removed folder
    assert "Done" in done.stdout and "─" * 10 not in done.stdout  # no 240-dash rules in a pipe
    assert "removed" in done.stderr and "--keep" in done.stderr
    summary = json.loads(runner.invoke(app, ["demo", "mnist", "--json"]).stdout)
    assert summary["kept"] is False and summary["home"] is None
    assert summary["metrics"] == {"accuracy": 0.5}
    assert list(fake_story.iterdir()) == []


def test_demo_keeps_the_folder_with_keep_and_prints_the_verify_command(fake_story: Path) -> None:
    done = runner.invoke(app, ["demo", "mnist", "--keep"], env={"COLUMNS": "40"})
    assert done.exit_code == 0, done.output
    (kept,) = fake_story.iterdir()
    verify = [line for line in done.stdout.splitlines() if "verify:" in line]
    assert verify == [f"  verify: SEALROOM_HOME={kept / 'workspace'} sealroom receipt verify run-1"]


def test_demo_with_home_keeps_it(fake_story: Path, tmp_path: Path) -> None:
    home = tmp_path / "demo"
    done = runner.invoke(app, ["demo", "mnist", "--home", str(home), "--json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["kept"] is True and (home / "consumer-lab" / "outputs").is_dir()


def test_epoch_bars_show_whole_epoch_numbers() -> None:
    from rich.progress import Progress

    from sealroom.cli.console import EpochBars

    with Progress(disable=True) as bars:
        view = EpochBars(bars)
        view.epoch(2.0, 5.0, 10.0)  # type: ignore[arg-type]  # as decoded from JSON
        assert view.batches is not None
        assert bars.tasks[view.batches].description == "epoch 2/5"


def test_help_in_a_fresh_process_shows_flags_without_bool() -> None:
    """The lazy entry point renders help before most modules load: still no <bool>."""
    done = _cli("--help", env={"COLUMNS": "100"})
    assert done.returncode == 0 and "--version" in done.stdout
    assert "<bool>" not in done.stdout
