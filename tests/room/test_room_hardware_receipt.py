"""A run record whose room evidence is a SEV-SNP report: checked offline by the real
SnpVerifier, as of the run's start (vendor collateral expires; a receipt must still
verify years later), binding the run's room key to the run.

The report is signed by the test-only fake AMD PKI (tests/attest/snp_factory.py), whose
roots replace AMD's for the duration of a test.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sealroom.attest.evidence import Evidence
from sealroom.attest.snp import SnpVerifier
from sealroom.attest.verifiers import VERIFIERS
from sealroom.errors import AttestationError
from sealroom.room.runkey import SIGNATURE_FIELD, RunKey, check_room_signature, room_report_data
from tests.attest.snp_factory import NOT_AFTER, FakeAmd

RUN = "run-hw-1"
DURING = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeAmd:
    fake = FakeAmd.create("Milan")
    monkeypatch.setitem(VERIFIERS._entries, "sev-snp", SnpVerifier(roots=fake.roots))
    return fake


def signed_record(fake: FakeAmd, run_id: str = RUN) -> tuple[dict[str, Any], RunKey, Evidence]:
    key = RunKey()
    report = fake.report(report_data=room_report_data(run_id, key.public_b64))
    evidence = Evidence(tee_type="sev-snp", payload=report, certificates=[fake.vcek_pem])
    payload: dict[str, Any] = {"run_id": run_id, "metrics": {"accuracy": 0.97}}
    payload[SIGNATURE_FIELD] = key.sign_record(payload)
    return payload, key, evidence


def test_a_hardware_record_verifies_offline_as_of_its_run(fake: FakeAmd) -> None:
    payload, key, evidence = signed_record(fake)
    claims = check_room_signature(payload, RUN, key.public_b64, evidence, now=DURING)
    assert (claims.tee_type, claims.insecure, claims.platform) == ("sev-snp", False, "Milan")
    assert claims.measurement == (b"\x11" * 48).hex()


def test_the_same_evidence_for_another_run_is_refused(fake: FakeAmd) -> None:
    payload, key, evidence = signed_record(fake, run_id="run-hw-other")
    payload = {**payload, "run_id": RUN}
    payload[SIGNATURE_FIELD] = key.sign_record(payload)
    with pytest.raises(AttestationError, match="does not bind this room key to this run"):
        check_room_signature(payload, RUN, key.public_b64, evidence, now=DURING)


def test_evidence_checked_after_its_collateral_expired_is_refused(fake: FakeAmd) -> None:
    payload, key, evidence = signed_record(fake)
    later = NOT_AFTER.replace(year=NOT_AFTER.year + 1)
    with pytest.raises(AttestationError, match="expired on 2034-01-01"):
        check_room_signature(payload, RUN, key.public_b64, evidence, now=later)


def test_an_edited_report_is_refused(fake: FakeAmd) -> None:
    payload, key, evidence = signed_record(fake)
    edited = bytearray(evidence.payload)
    edited[0x90] ^= 1  # the measurement
    forged = evidence.model_copy(update={"payload": bytes(edited)})
    with pytest.raises(AttestationError, match="signature"):
        check_room_signature(payload, RUN, key.public_b64, forged, now=DURING)


def test_the_record_is_checked_as_of_its_start() -> None:
    from sealroom.room.receipt import RunRecord

    fields = {"started": "2026-11-26T10:00:00+00:00"}
    record = RunRecord.model_construct(**fields)
    assert record.started_at() == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert RunRecord.model_construct(started="not a time").started_at() is None
