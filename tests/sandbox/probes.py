"""Run tests/sandbox/sandbox_probe.py the way a launcher runs a room, and read its verdict."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from sealroom.sandbox import private_workdir, scrubbed_environment

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("sandbox_probe.py")


def run_probe(
    spec: dict[str, Any], *, cwd: Path | None = None, timeout: float = 60, returncode: int = 0
) -> dict[str, Any]:
    """Start a child in a private workdir with a scrubbed environment; return its JSON line.

    The workdir is writable by default (it is the room's HOME and TMPDIR), as a launcher would
    grant it; ``cwd`` runs the child elsewhere (the old room ran in the operator's folder).
    """
    workdir = private_workdir()
    try:
        spec = {**spec, "write": [*spec.get("write", []), str(workdir)]}
        env = scrubbed_environment(workdir, keep={"PYTHONPATH": str(ROOT)})
        done = subprocess.run(
            [sys.executable, str(PROBE), json.dumps(spec)],
            cwd=cwd or workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == returncode, done.stderr[-2000:]
        lines = done.stdout.strip().splitlines()
        result: dict[str, Any] = json.loads(lines[-1]) if returncode == 0 else {}
        result["workdir"] = str(workdir)
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
