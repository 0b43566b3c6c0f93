"""Run receipts verify offline against the ledger key and name what was edited."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealroom.crypto.signing import SigningKey
from sealroom.ledger import Ledger
from sealroom.room.receipt import (
    COMPLETED,
    ReceiptError,
    RoomInfo,
    RunReceipt,
    RunRecord,
    load_receipt,
    run_dir_of,
)
from sealroom.workspace import Workspace

DIGEST = "sha256:" + "ab" * 32


def _record() -> RunRecord:
    return RunRecord(
        run_id="run-1",
        contract_id="c1",
        contract_digest=DIGEST,
        pipeline="mnist",
        pipeline_digest=DIGEST,
        datasets={"mnist": DIGEST},
        model_digest=None,
        room=RoomInfo(tee_type="software", measurement="00" * 32, insecure=True),
        insecure=True,
        consumer="lab",
        consumer_fingerprint="ff" * 16,
        outputs=[],
        outputs_key_sha256="00" * 32,
        metrics={"accuracy": 0.5},
        started="2026-11-23T09:00:00Z",
        ended="2026-11-23T09:01:00Z",
    )


def _receipt(ws: Workspace, kind: str = COMPLETED) -> RunReceipt:
    record = _record()
    with Ledger.open(ws) as ledger:
        receipt = ledger.append(kind, record.model_dump(mode="json"))
        return RunReceipt(record=record, receipt=receipt, ledger_public_key=ledger.public_key_b64)


def test_receipt_round_trips_through_its_file_and_verifies(workspace: Workspace) -> None:
    receipt = _receipt(workspace)
    run_dir = workspace.runs / "run-1"
    run_dir.mkdir()
    receipt.save(run_dir)
    loaded = load_receipt(run_dir_of(workspace, "run-1"))
    loaded.verify(receipt.ledger_public_key)
    assert loaded == receipt


def test_a_different_trusted_key_is_refused(workspace: Workspace) -> None:
    receipt = _receipt(workspace)
    with pytest.raises(ReceiptError, match="not the trusted one"):
        receipt.verify(SigningKey.generate().public_b64)


def test_edited_record_is_refused(workspace: Workspace) -> None:
    receipt = _receipt(workspace)
    forged = receipt.model_copy(
        update={"record": receipt.record.model_copy(update={"insecure": False})}
    )
    with pytest.raises(ReceiptError, match="payload does not match"):
        forged.verify()


def test_receipt_of_another_kind_is_refused(workspace: Workspace) -> None:
    with pytest.raises(ReceiptError, match=r"run\.failed entry"):
        _receipt(workspace, kind="run.failed").verify()


def test_missing_run_is_named(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(ReceiptError, match="no run 'nope'"):
        run_dir_of(workspace, "nope")
    with pytest.raises(ReceiptError, match="missing"):
        load_receipt(tmp_path)
