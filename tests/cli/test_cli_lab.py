"""`sealroom lab ...` against a real loopback lab server (the service over the inline
engine, served by uvicorn in a thread), found through the workspace like a user's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.lab.paths import LabPaths
from sealroom.workspace import Workspace
from tests.lab.lab_api_helpers import CONSUME, FAIL, SCORE, TickingLab, served, ticking_lab

runner = CliRunner()


@pytest.fixture
def lab(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[TickingLab]:
    root = LabPaths.of_workspace(workspace.home).root
    with ticking_lab(root, monkeypatch) as running, served(running):
        yield running


def lab_cli(*args: str, ok: bool = True) -> str:
    result = runner.invoke(app, ["lab", *args])
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1, result.output
    return result.output


def _catalogue(tmp_path: Path) -> None:
    lab_cli("experiment", "create", "exp", "-d", "cli story")
    for name, text in (("score", SCORE), ("consume", CONSUME), ("fail", FAIL)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        assert f"entry point {name} version 1" in lab_cli("entrypoint", "add", str(path))


def test_a_researchers_session_from_the_terminal(lab: TickingLab, tmp_path: Path) -> None:
    _catalogue(tmp_path)
    assert "exp" in lab_cli("experiment", "list")
    assert "lab_api_score" in lab_cli("tasks")
    assert lab_cli("entrypoint", "show", "score").endswith(SCORE)  # verbatim, never wrapped

    params = tmp_path / "params.yaml"
    params.write_text("label: from-file\nvalue: 0.1\n")
    first = json.loads(
        lab_cli(
            "job",
            "submit",
            "score",
            "-e",
            "exp",
            "-P",
            "value=0.7",
            "--params-file",
            str(params),
            "--seed",
            "7",
            "--json",
        )
    )
    assert first["parameters"] == {"value": 0.7, "label": "from-file"}  # typed, -P wins
    assert first["seed"] == 7
    assert "job-2 queued" in lab_cli("job", "submit", "score", "-e", "exp", "-P", "value=0.2")
    lab_cli("job", "wait", "job-1", "job-2", "--timeout", "20")
    listed = lab_cli("job", "list", "--status", "succeeded")
    assert "job-1" in listed and "job-2" in listed
    assert "succeeded" in lab_cli("job", "show", "job-1")
    assert "scoring from-file at 0.7" in lab_cli("job", "logs", "job-1", "--attempt", "1")

    out = tmp_path / "got.json"
    lab_cli("artifact", "get", "job-1", "report", "-o", str(out))
    assert json.loads(out.read_text()) == {"label": "from-file", "value": 0.7}
    assert "report" in lab_cli("artifact", "list", "job-1")

    table = lab_cli("compare", "job-1", "job-2", "--metric", "acc")
    assert "job-1" in table and "job-2" in table and "0.7" in table and "0.2" in table
    rows = json.loads(lab_cli("compare", "job-1", "job-2", "-m", "acc", "--json"))
    assert [(r["job"], r["step"]) for r in rows] == [("job-1", 2), ("job-2", 2)]

    rerun = json.loads(lab_cli("job", "rerun", "job-1", "--json"))
    assert rerun["rerun_of"] == "job-1"
    status = json.loads(lab_cli("status", "--json"))
    assert status["trust"] == "outside-room" and sum(status["jobs"].values()) == 3


def test_plans_and_dependencies_from_files(lab: TickingLab, tmp_path: Path) -> None:
    _catalogue(tmp_path)
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "jobs:\n"
        "  - {key: src, experiment: exp, entry_point: score}\n"
        "  - key: copy\n"
        "    experiment: exp\n"
        "    entry_point: consume\n"
        "    depends_on: [src]\n"
        "    parameters: {source: '${jobs.src.artifacts.report}'}\n"
    )
    jobs = json.loads(lab_cli("plan", "submit", str(plan), "--json"))
    lab_cli("job", "wait", *(j["id"] for j in jobs), "--timeout", "20")
    assert "succeeded" in lab_cli("job", "show", jobs[1]["id"])


def test_refusals_are_one_line_and_exit_1(lab: TickingLab, tmp_path: Path) -> None:
    _catalogue(tmp_path)
    bad = lab_cli("job", "submit", "score", "-e", "exp", "-P", "value=abc", ok=False)
    assert "value" in bad and "Traceback" not in bad
    assert "unknown parameter" in lab_cli(
        "job", "submit", "score", "-e", "exp", "-P", "x=1", ok=False
    )
    assert "job-9" in lab_cli("job", "show", "job-9", ok=False)

    lab_cli("job", "submit", "fail", "-e", "exp")
    failed = lab_cli("job", "wait", "job-1", "--timeout", "20", ok=False)
    assert "job-1 failed" in failed

    lab_cli("job", "submit", "score", "-e", "exp", "-q", "nowhere")
    late = lab_cli("job", "wait", "job-2", "--timeout", "0.5", ok=False)
    assert "timed out" in late and "job-2" in late
    assert "cancelled" in lab_cli("job", "cancel", "job-2")

    cycle = tmp_path / "cycle.yaml"
    cycle.write_text(
        "jobs:\n"
        "  - {key: a, experiment: exp, entry_point: score, depends_on: [b]}\n"
        "  - {key: b, experiment: exp, entry_point: score, depends_on: [a]}\n"
    )
    assert "->" in lab_cli("plan", "submit", str(cycle), ok=False)
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: evil\nsteps:\n  - {name: s, task: subprocess}\n")
    assert "not registered" in lab_cli("entrypoint", "add", str(evil), ok=False)


def test_without_a_server_every_client_command_says_how_to_start_one(
    workspace: Workspace,
) -> None:
    for args in (("job", "list"), ("status",), ("compare", "job-1"), ("stop",)):
        output = lab_cli(*args, ok=False)
        assert "no lab server running; start one with `sealroom lab start`" in output
