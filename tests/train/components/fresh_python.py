"""Run a snippet in a fresh interpreter: which modules an import pulls in is a per-process fact."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def run_fresh(code: str) -> None:
    """Run ``code`` in a new Python with only the repository on its path; fail with its stderr."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
