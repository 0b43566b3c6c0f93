"""room_run: a lab job starts a real, contract-bound clean-room run in a workspace and
hands back the run id and the receipt's digest (slow: it plays the MNIST story first)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sealroom.crypto.passphrase import ENV_VAR as PASSPHRASE_ENV
from sealroom.crypto.passphrase import forget_passphrases
from sealroom.lab.attempts import AttemptPayload
from sealroom.lab.runner import execute
from sealroom.room.receipt import load_receipt
from sealroom.room.story import DEMO_PASSPHRASE, Story, load_scenario
from sealroom.sandbox import landlock_abi
from tests.e2e.stories import QuietNarrator

ENTRY = """
name: sealed-run
parameters:
  workspace: {type: str}
  contract: {type: str}
  pipeline: {type: str}
steps:
  - name: room
    task: room_run
    args:
      workspace: "${parameters.workspace}"
      contract: "${parameters.contract}"
      pipeline: "${parameters.pipeline}"
      allow_unsandboxed: ALLOW
artifacts:
  receipt: "${steps.room.receipt}"
"""


@pytest.mark.slow
def test_room_run_runs_the_contract_and_returns_the_receipt_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, DEMO_PASSPHRASE.decode())
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    forget_passphrases()
    played = Story(load_scenario("mnist"), tmp_path, QuietNarrator(), epochs=1).play()
    pipeline = tmp_path / "consumer-lab" / "pipeline.json"
    assert pipeline.exists()
    params = {
        "workspace": str(played.home),
        "contract": played.receipt.record.contract_id,
        "pipeline": str(pipeline),
    }
    entry = ENTRY.replace("ALLOW", "false" if landlock_abi() else "true")
    outcome = execute(AttemptPayload("job-1", 1, "e", entry, params, seed=1))
    assert outcome.status == "succeeded", outcome.error
    summary = json.loads(outcome.artifacts["receipt"].data)
    assert summary["run_id"] != played.receipt.run_id  # a new run, not the story's
    run_dir = played.home / "runs" / summary["run_id"]
    receipt = load_receipt(run_dir)
    assert receipt.record.contract_id == params["contract"]
    digest = hashlib.sha256((run_dir / "receipt.json").read_bytes()).hexdigest()
    assert summary["receipt_sha256"] == digest
    assert f"run {summary['run_id']} completed" in outcome.logs
    forget_passphrases()


def test_room_run_outside_a_workspace_fails_in_one_line(tmp_path: Path) -> None:
    params = {"workspace": str(tmp_path / "none"), "contract": "c", "pipeline": "p.json"}
    outcome = execute(AttemptPayload("job-1", 1, "e", ENTRY.replace("ALLOW", "false"), params))
    assert outcome.status == "failed"
    assert outcome.error.startswith("step room (room_run): no sealroom workspace at ")
