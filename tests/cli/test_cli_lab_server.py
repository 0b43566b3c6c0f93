"""`sealroom lab start` hands its options to run_lab_server and prints the URL it is given;
`sealroom lab stop` signals the recorded server only while it answers there."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.lab.paths import LabPaths
from sealroom.workspace import Workspace
from tests.lab.lab_api_helpers import TickingLab, served, ticking_lab

runner = CliRunner()


def test_start_passes_its_options_and_prints_the_url(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sealroom.lab.server as server

    seen: dict[str, Any] = {}

    def fake_run(paths: LabPaths, **options: Any) -> None:
        seen.update(options, paths=paths)
        options["ready"]("http://127.0.0.1:8123")

    monkeypatch.setattr(server, "run_lab_server", fake_run)
    args = ["lab", "start", "--port", "0", "--queue", "default", "--queue", "gpu=1"]
    result = runner.invoke(app, [*args, "--ray-address", "10.0.0.5:6379", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["url"] == "http://127.0.0.1:8123"
    assert seen["paths"] == LabPaths.of_workspace(workspace.home)
    assert seen["queues"] == {"default": 2.0, "gpu": 1.0}
    assert (seen["port"], seen["ray_address"], seen["host"]) == (0, "10.0.0.5:6379", "127.0.0.1")
    refused = runner.invoke(app, ["lab", "start", "--queue", "gpu=lots"])
    assert refused.exit_code == 1 and "--queue 'gpu=lots'" in refused.output


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process standing in for the server's pid (reaped as soon as it dies)."""
    proc = subprocess.Popen(["sleep", "60"])
    threading.Thread(target=proc.wait, daemon=True).start()
    yield proc
    proc.kill()


def test_stop_signals_the_server_that_answers(
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    sleeper: subprocess.Popen[bytes],
) -> None:
    paths = LabPaths.of_workspace(workspace.home)
    with ticking_lab(paths.root, monkeypatch) as lab, served(lab) as url:
        _point_at(lab, url, sleeper.pid)
        result = runner.invoke(app, ["lab", "stop"])
        assert result.exit_code == 0, result.output
        assert "stopped" in result.output
        assert sleeper.wait(timeout=5) == -15


def test_stop_never_signals_a_pid_from_a_stale_server_file(
    workspace: Workspace, sleeper: subprocess.Popen[bytes]
) -> None:
    paths = LabPaths.of_workspace(workspace.home).create()
    paths.server_file.write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": sleeper.pid}))
    result = runner.invoke(app, ["lab", "stop"])
    assert result.exit_code == 1 and "stale" in result.output
    assert sleeper.poll() is None  # still running: nothing was signalled


def _point_at(lab: TickingLab, url: str, pid: int) -> None:
    lab.paths.server_file.write_text(json.dumps({"url": url, "pid": pid}))
