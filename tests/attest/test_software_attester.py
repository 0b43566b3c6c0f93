"""The software attester: signed claims, bound report data, INSECURE labels, refusals."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from sealroom.attest import (
    VERIFIERS,
    Evidence,
    SoftwareAttester,
    make_report_data,
    measure_runtime,
    verify_evidence,
)
from sealroom.attest.software import attestation_key, trust_attester
from sealroom.crypto.hpke import generate_ephemeral
from sealroom.crypto.signing import SigningKey
from sealroom.errors import AttestationError
from sealroom.workspace import Workspace

REPORT = bytes(range(64))


def test_evidence_round_trips_to_insecure_claims(workspace: Workspace) -> None:
    evidence = SoftwareAttester(workspace).attest(REPORT)
    claims = verify_evidence(evidence, workspace)
    assert claims.tee_type == "software"
    assert claims.insecure is True
    assert claims.measurement == measure_runtime()
    assert claims.report_data == REPORT


def test_evidence_survives_json(workspace: Workspace) -> None:
    evidence = SoftwareAttester(workspace).attest(REPORT)
    again = Evidence.model_validate_json(evidence.model_dump_json())
    assert verify_evidence(again, workspace).report_data == REPORT


def test_every_attestation_logs_insecure(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="sealroom.attest"):
        verify_evidence(SoftwareAttester(workspace).attest(REPORT), workspace)
    assert caplog.records
    assert all("INSECURE" in r.getMessage() for r in caplog.records)


def test_tampered_claims_do_not_verify(workspace: Workspace) -> None:
    evidence = SoftwareAttester(workspace).attest(REPORT)
    forged = evidence.payload.replace(measure_runtime().encode(), b"0" * 64)
    with pytest.raises(AttestationError, match="signature does not verify"):
        verify_evidence(evidence.model_copy(update={"payload": forged}), workspace)


def test_evidence_from_another_workspace_is_refused(workspace: Workspace, tmp_path: object) -> None:
    other = Workspace.create(workspace.home.parent / "other")
    evidence = SoftwareAttester(other).attest(REPORT)
    with pytest.raises(AttestationError, match="neither this workspace's attestation key"):
        verify_evidence(evidence, workspace)


def test_evidence_from_a_trusted_host_is_accepted_and_still_insecure(
    workspace: Workspace,
) -> None:
    """A provider's own key service trusts the room host's attestation key explicitly."""
    other = Workspace.create(workspace.home.parent / "room-host")
    evidence = SoftwareAttester(other).attest(REPORT)
    trust_attester(workspace, attestation_key(other).public_b64)
    claims = verify_evidence(evidence, workspace)
    assert claims.insecure and claims.report_data == REPORT
    forged = evidence.model_copy(update={"signer": SigningKey.generate().public_b64})
    with pytest.raises(AttestationError, match="neither this workspace's attestation key"):
        verify_evidence(forged, workspace)


def test_stale_evidence_is_refused(workspace: Workspace) -> None:
    evidence = SoftwareAttester(workspace).attest(REPORT)
    later = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(AttestationError, match="not fresh"):
        verify_evidence(evidence, workspace, now=later)


def test_software_evidence_claiming_to_be_secure_is_refused(workspace: Workspace) -> None:
    key = attestation_key(workspace)
    claims = (
        SoftwareAttester(workspace)
        .attest(REPORT)
        .payload.replace(b'"insecure":true', b'"insecure":false')
    )
    evidence = Evidence(
        tee_type="software", payload=claims, signature=key.sign(claims), signer=key.public_b64
    )
    with pytest.raises(AttestationError, match="insecure"):
        verify_evidence(evidence, workspace)


def test_unknown_tee_type_is_refused(workspace: Workspace) -> None:
    with pytest.raises(AttestationError, match="no verifier for TEE type 'sgx'"):
        verify_evidence(Evidence(tee_type="sgx", payload=b""), workspace)
    assert VERIFIERS.names() == ["sev-snp", "software", "tdx"]


def test_report_data_binds_nonce_and_key() -> None:
    _, key_a = generate_ephemeral()
    _, key_b = generate_ephemeral()
    nonce = b"n" * 32
    assert len(make_report_data(nonce, key_a)) == 64
    assert make_report_data(nonce, key_a) != make_report_data(nonce, key_b)
    assert make_report_data(nonce, key_a) != make_report_data(b"m" * 32, key_a)
    with pytest.raises(AttestationError):
        make_report_data(nonce, "not base64!")


def test_attestation_key_is_private(workspace: Workspace) -> None:
    attestation_key(workspace)
    assert (workspace.keys / "attestation.key").stat().st_mode & 0o077 == 0
