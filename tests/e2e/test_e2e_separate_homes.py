"""The MNIST story by hand with one home per role: only public artefacts cross between them."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _walk(script: str, work: Path) -> None:
    """Run one of the scenario's walk scripts with this venv's sealroom on PATH."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHON"] = sys.executable
    env.pop("SEALROOM_HOME", None)
    result = subprocess.run(
        [str(REPO / "scenarios/mnist" / script), str(work)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.mark.slow
def test_three_homes_exchange_only_public_artefacts(tmp_path: Path) -> None:
    _walk("by_hand.sh", tmp_path)
    metrics = json.loads((tmp_path / "lab-results" / "metrics.json").read_text())
    assert metrics["metrics"]["accuracy"] >= 0.95
    # Private keys stayed at home: each party's key files exist in its own home only.
    for home, own in (("hospital", "hospital"), ("lab", "lab"), ("room", "operator")):
        for party in ("hospital", "lab", "operator"):
            has_key = (tmp_path / home / "parties" / party / "signing.pem").exists()
            assert has_key == (party == own), (home, party)


@pytest.mark.slow
def test_provider_keeps_its_key_in_its_own_key_service(tmp_path: Path) -> None:
    """scenarios/mnist/own_key_service.sh: the hospital serves its key from its own home;
    the room's workspace never holds it, and the hospital's ledger records the release."""
    _walk("own_key_service.sh", tmp_path)
    metrics = json.loads((tmp_path / "lab-results" / "metrics.json").read_text())
    assert metrics["metrics"]["accuracy"] >= 0.95
    releases = json.loads((tmp_path / "hospital-releases.json").read_text())
    assert len(releases) == 1
    data_digest = json.loads((tmp_path / "mnist.seal.json").read_text())["digest"]
    room_kms = sqlite3.connect(tmp_path / "room" / "kms.db")
    try:
        held = {row[0] for row in room_kms.execute("SELECT package_digest FROM keys")}
    finally:
        room_kms.close()
    assert data_digest not in held and len(held) == 1  # only the lab's model key
    receipt = json.loads(next((tmp_path / "room" / "runs").glob("run-*/receipt.json")).read_text())
    assert receipt["record"]["key_custody"].startswith("external key service(s): http://127.0.0.1:")
