"""Run receipts verify offline against the ledger key and name what was edited."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealroom.attest.software import SoftwareAttester
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
from sealroom.room.runkey import RunKey, room_report_data
from sealroom.room.session import sign_record
from sealroom.workspace import Workspace

DIGEST = "sha256:" + "ab" * 32


def _record(ws: Workspace, key: RunKey | None = None, **changes: object) -> RunRecord:
    """A record signed by a fresh room key, its software evidence binding that key."""
    key = key or RunKey()
    attester = SoftwareAttester(ws)
    evidence = attester.attest(room_report_data("run-1", key.public_b64))
    fields: dict[str, object] = dict(
        run_id="run-1",
        contract_id="c1",
        contract_digest=DIGEST,
        pipeline="mnist",
        pipeline_digest=DIGEST,
        datasets={"mnist": DIGEST},
        model_digest=None,
        room=RoomInfo(tee_type="software", measurement=attester.measurement, insecure=True),
        insecure=True,
        consumer="lab",
        consumer_fingerprint="ff" * 16,
        outputs=[],
        outputs_key_sha256="00" * 32,
        metrics={"accuracy": 0.5},
        metrics_sha256="11" * 32,
        key_custody="embedded: test",
        sandbox="none",
        started="2026-11-23T09:00:00Z",
        ended="2026-11-23T09:01:00Z",
        room_key=key.public_b64,
        room_evidence=evidence,
    )
    fields.update(changes)
    return sign_record(RunRecord.model_validate(fields), key)


def _receipt(ws: Workspace, kind: str = COMPLETED, record: RunRecord | None = None) -> RunReceipt:
    record = record or _record(ws)
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


def test_record_signed_by_another_key_is_refused(workspace: Workspace) -> None:
    """The ledger countersigned it, but the room key its evidence binds did not sign it."""
    honest = _record(workspace)
    forged = sign_record(honest.model_copy(update={"metrics": {"accuracy": 1.0}}), RunKey())
    receipt = _receipt(workspace, record=forged)
    with pytest.raises(ReceiptError, match="room signature does not verify"):
        receipt.verify()


def test_evidence_for_another_key_is_refused(workspace: Workspace) -> None:
    """A fresh key signing its own record cannot borrow evidence that binds another key."""
    other = RunKey()
    record = _record(workspace, key=other, room_evidence=_record(workspace).room_evidence)
    with pytest.raises(ReceiptError, match="does not bind this room key"):
        _receipt(workspace, record=record).verify()


def test_evidence_of_another_run_is_refused(workspace: Workspace) -> None:
    key = RunKey()
    evidence = SoftwareAttester(workspace).attest(room_report_data("run-2", key.public_b64))
    record = _record(workspace, key=key, room_evidence=evidence)
    with pytest.raises(ReceiptError, match="does not bind this room key to this run"):
        _receipt(workspace, record=record).verify()
