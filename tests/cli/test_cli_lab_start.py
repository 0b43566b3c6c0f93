"""The whole CLI story on a real server: `sealroom lab start` (its own process, a private
local Ray), a job of built-in tasks submitted and followed from the terminal, `lab stop`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.lab.paths import LabPaths
from sealroom.workspace import ENV_VAR, Workspace

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
DATA = """\
name: data
parameters:
  train_size: {type: int, default: 60}
steps:
  - {name: load, task: load_data, args: {train_size: "${parameters.train_size}", test_size: 20}}
artifacts:
  npz: "${steps.load.npz}"
"""


def lab_cli(*args: str) -> str:
    result = runner.invoke(app, ["lab", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_start_submit_wait_fetch_stop(workspace: Workspace, tmp_path: Path) -> None:
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {
        **os.environ,
        ENV_VAR: str(workspace.home),
        "PYTHONPATH": pythonpath,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    command = [sys.executable, "-c", "from sealroom.cli.main import main; main()"]
    proc = subprocess.Popen(
        [*command, "lab", "start", "--port", "0", "--queue", "default=1", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        start_new_session=True,  # its Ray dies with its session if the test fails midway
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else "no output"
        ready = json.loads(line)
        assert ready["url"].startswith("http://127.0.0.1:") and ready["pid"] == proc.pid

        lab_cli("experiment", "create", "smoke")
        (tmp_path / "data.yaml").write_text(DATA)
        lab_cli("entrypoint", "add", str(tmp_path / "data.yaml"))
        job = json.loads(
            lab_cli("job", "submit", "data", "-e", "smoke", "-P", "train_size=40", "--json")
        )
        lab_cli("job", "wait", job["id"], "--timeout", "180")
        saved = tmp_path / "data.npz"
        lab_cli("artifact", "get", job["id"], "npz", "-o", str(saved))
        assert saved.read_bytes()[:2] == b"PK"  # an npz is a zip of .npy arrays
        status = json.loads(lab_cli("status", "--json"))
        assert status["url"] == ready["url"] and status["jobs"] == {"succeeded": 1}

        assert "stopped" in lab_cli("stop")
        assert proc.wait(timeout=60) == 0
        assert not LabPaths.of_workspace(workspace.home).server_file.exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
