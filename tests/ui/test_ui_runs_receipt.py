"""A run's receipt on its page: verified only when the ledger, the room and the sealed files
agree; released metrics only from decrypted files whose hashes the receipt lists. Each
attack edits a copy of the private MNIST demo's workspace."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from sealroom.contract.store import load_contract
from sealroom.room.launcher import _request
from sealroom.room.live import event_log_path, events_dir
from sealroom.room.receipt import RECEIPT_FILE
from sealroom.room.story import StoryResult
from sealroom.workspace import Workspace
from tests.ui.registry_world import tamper
from tests.ui.serving import client


@pytest.fixture
def demo(dp_story: StoryResult, tmp_path: Path) -> tuple[Workspace, Path, str]:
    """A copy of the demo's workspace and decrypted outputs, free to edit; the run id."""
    home = shutil.copytree(dp_story.home, tmp_path / "ws")
    outputs = shutil.copytree(dp_story.outputs, tmp_path / "outputs")
    return Workspace.find(home), outputs, dp_story.receipt.run_id


def _api(ws: Workspace, run_id: str, outputs: tuple[Path, ...] = ()) -> dict[str, Any]:
    response = client(ws, outputs=outputs).get(f"/api/runs/{run_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def _accuracy(outputs: Path) -> str:
    return repr(json.loads((outputs / "metrics.json").read_bytes())["metrics"]["accuracy"])


def test_the_demo_run_is_verified_with_every_stage_done_and_its_metrics(
    demo: tuple[Workspace, Path, str],
) -> None:
    ws, outputs, run_id = demo
    data = _api(ws, run_id, (outputs,))
    assert data["summary"]["status"] == "completed"
    assert data["timeline"]["source"] == "event log"
    assert {s["state"] for s in data["timeline"]["stages"]} == {"done"}
    receipt = data["receipt"]
    assert receipt["verified"] is True and "sealed files checked" in receipt["reason"]
    assert receipt["privacy"]["epsilon_spent"] > 0
    held = {o["name"] for o in receipt["outputs"] if o["held"]}
    assert held == {"metrics.json", "privacy_report.json", "training_log.txt"}
    final = dict(data["metrics"]["final"])
    assert repr(final["accuracy"]) == _accuracy(outputs)
    assert data["metrics"]["epsilon_curve"]
    page = client(ws, outputs=(outputs,)).get(f"/runs/{run_id}").text
    assert 'class="badge ok"' in page and 'id="final-metrics"' in page and "<svg" in page
    assert 'id="training-log"' in page and "Test accuracy" in data["training_log"]


def test_the_event_log_is_the_operators_and_never_granted_to_the_room(
    demo: tuple[Workspace, Path, str], dp_story: StoryResult
) -> None:
    ws, _, run_id = demo
    lines = event_log_path(ws, run_id).read_text().splitlines()
    assert json.loads(lines[-1]) == {**json.loads(lines[-1]), "type": "completed", "run_id": run_id}
    signed = load_contract(ws, dp_story.receipt.record.contract_id)
    pipeline = dp_story.home.parent / "consumer-lab" / "pipeline.json"
    request = _request(ws, signed, "run-x", pipeline, ws.runs / ".staging-run-x", ())
    assert events_dir(ws) in request.secret_paths


def test_without_decrypted_outputs_nothing_sealed_is_shown(
    demo: tuple[Workspace, Path, str],
) -> None:
    ws, outputs, run_id = demo
    data = _api(ws, run_id)
    assert data["receipt"]["verified"] is True
    assert data["metrics"] is None and data["plots"] == [] and data["training_log"] is None
    assert not any(o["held"] for o in data["receipt"]["outputs"])
    page = client(ws).get(f"/runs/{run_id}").text
    for text in (page, json.dumps(data)):
        assert _accuracy(outputs) not in text and "Released metrics" not in text
        assert "Test accuracy" not in text and "DP-SGD" not in text


def test_a_decrypted_file_whose_hash_differs_is_never_shown(
    demo: tuple[Workspace, Path, str],
) -> None:
    ws, outputs, run_id = demo
    doc = json.loads((outputs / "metrics.json").read_bytes())
    doc["metrics"]["accuracy"] = 0.987654321
    (outputs / "metrics.json").write_text(json.dumps(doc))
    (outputs / run_id).mkdir()
    (outputs / run_id / "privacy_report.json").write_text('{"epsilon_spent": 0.123456789}')
    (outputs / "privacy_report.json").unlink()
    (outputs / "training_log.txt").write_text("Test accuracy: 0.987654321\n")
    data = _api(ws, run_id, (outputs,))
    assert not any(o["held"] for o in data["receipt"]["outputs"])
    assert data["metrics"] is None and data["training_log"] is None
    page = client(ws, outputs=(outputs,)).get(f"/runs/{run_id}").text
    assert "0.9876" not in page and "0.123456" not in page


def test_a_tampered_receipt_is_not_verified_and_says_why(demo: tuple[Workspace, Path, str]) -> None:
    ws, outputs, run_id = demo
    path = ws.runs / run_id / RECEIPT_FILE
    receipt = json.loads(path.read_bytes())
    receipt["record"]["metrics"] = {"accuracy": 0.99}
    path.write_text(json.dumps(receipt))
    data = _api(ws, run_id, (outputs,))
    assert data["receipt"]["verified"] is False
    assert "payload does not match" in data["receipt"]["reason"]
    assert data["receipt"]["outputs"] == [] and data["metrics"] is None
    page = client(ws, outputs=(outputs,)).get(f"/runs/{run_id}").text
    assert 'class="badge bad"' in page and "payload does not match" in page
    assert _accuracy(outputs) not in page


def test_a_swapped_sealed_output_is_not_verified(demo: tuple[Workspace, Path, str]) -> None:
    ws, outputs, run_id = demo
    sealed = ws.runs / run_id / "outputs"
    a, b = sealed / "metrics.json.sealed", sealed / "training_log.txt.sealed"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    data = _api(ws, run_id, (outputs,))
    assert data["receipt"]["verified"] is False
    assert (
        "metrics.json.sealed: does not match the digest in the run receipt"
        in (data["receipt"]["reason"])
    )
    assert str(ws.home) not in data["receipt"]["reason"]
    assert data["metrics"] is None


def test_a_receipt_from_another_ledger_is_not_verified(demo: tuple[Workspace, Path, str]) -> None:
    ws, outputs, run_id = demo
    path = ws.runs / run_id / RECEIPT_FILE
    receipt = json.loads(path.read_bytes())
    receipt["ledger_public_key"] = "A" * 43 + "="
    path.write_text(json.dumps(receipt))
    data = _api(ws, run_id, (outputs,))
    assert data["receipt"]["verified"] is False
    assert "not the trusted one" in data["receipt"]["reason"]


def test_a_run_whose_contract_is_gone_has_no_trusted_key(demo: tuple[Workspace, Path, str]) -> None:
    ws, _, run_id = demo
    for path in ws.contracts.glob("*.json"):
        path.unlink()
    data = _api(ws, run_id)
    assert data["receipt"]["verified"] is False
    assert "no trusted ledger key" in data["receipt"]["reason"]


def test_a_missing_or_broken_receipt_is_not_verified(demo: tuple[Workspace, Path, str]) -> None:
    ws, _, run_id = demo
    path = ws.runs / run_id / RECEIPT_FILE
    path.write_text("{not json")
    assert _api(ws, run_id)["receipt"]["verified"] is False
    path.unlink()
    data = _api(ws, run_id)
    assert data["receipt"]["verified"] is False and "missing" in data["receipt"]["reason"]


def test_no_plot_is_served_for_a_run_without_one(demo: tuple[Workspace, Path, str]) -> None:
    ws, outputs, run_id = demo
    app = client(ws, outputs=(outputs,))
    for name in ("metrics.json", "training_log.txt", "x.png", "..%2fmetrics.json"):
        assert app.get(f"/runs/{run_id}/outputs/{name}").status_code == 404


def test_a_ledger_edited_after_a_verified_load_is_caught_on_the_next(
    demo: tuple[Workspace, Path, str],
) -> None:
    """A run page trusts the ledger page's cached walk only for the database state it walked:
    an entry edited afterwards (here one before the run's own) unverifies the receipt."""
    ws, outputs, run_id = demo
    assert _api(ws, run_id, (outputs,))["receipt"]["verified"] is True  # the walk is cached
    seq = json.loads((ws.runs / run_id / RECEIPT_FILE).read_bytes())["receipt"]["seq"]
    tamper(ws, "UPDATE entries SET payload = ? WHERE seq = ?", '{"edited": true}', seq - 1)
    data = _api(ws, run_id, (outputs,))
    assert data["receipt"]["verified"] is False
    assert "the ledger does not verify" in data["receipt"]["reason"]
