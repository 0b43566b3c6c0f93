"""The MNIST story by hand with one home per role: only public artefacts cross between them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_three_homes_exchange_only_public_artefacts(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHON"] = sys.executable
    env.pop("SEALROOM_HOME", None)
    result = subprocess.run(
        [str(REPO / "scenarios/mnist/by_hand.sh"), str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    metrics = json.loads((tmp_path / "lab-results" / "metrics.json").read_text())
    assert metrics["metrics"]["accuracy"] >= 0.95
    # Private keys stayed at home: each party's key files exist in its own home only.
    for home, own in (("hospital", "hospital"), ("lab", "lab"), ("room", "operator")):
        for party in ("hospital", "lab", "operator"):
            has_key = (tmp_path / home / "parties" / party / "signing.pem").exists()
            assert has_key == (party == own), (home, party)
