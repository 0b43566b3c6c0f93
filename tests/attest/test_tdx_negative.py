"""Issue 18's negative matrix for TDX: every refusal is one line naming what is wrong.

Flipped bits, truncation and collateral tampering use the real quote and collateral; what
Intel's signatures cannot produce (nonce binding, debug, TCB status, advisories) uses the
real claims under a stricter policy. A replayed nonce is the key service's job and is
tested there.
"""

from __future__ import annotations

import json
import re
import types
from datetime import UTC, datetime

import dcap_qvl
import pytest

from sealroom.attest import make_report_data, verify_evidence
from sealroom.attest.collateral import collateral_dir
from sealroom.attest.evidence import Claims
from sealroom.attest.policy import HardwarePolicy, TdxPolicy, check_hardware_policy
from sealroom.attest.tdx import TdxVerifier
from sealroom.crypto.hpke import generate_ephemeral
from sealroom.errors import AttestationError
from sealroom.kms import service as kms_service
from sealroom.workspace import Workspace
from tests.attest.tdx_samples import (
    FMSPC,
    MRTD,
    NOW,
    OUTDATED_NOW,
    RTMRS,
    collateral,
    evidence,
    sample,
)

QUOTE = sample("tdx_quote")
SIGNATURE = "ISV enclave report signature is invalid"
QE_SIGNATURE = "Signature is invalid for qe_report"
# (offset in the v4 quote, what is there, the refusal): header 0..48, TD report 48..632,
# signature data 632..4936 (quote signature, attestation key, QE report and its signature,
# authentication data, PCK chain as PEM), then zero padding to 5006.
FLIPS = [
    (0, "header version", "does not parse"),
    (2, "header attestation key type", "Unsupported DCAP attestation key type"),
    (4, "header TEE type", "Invalid TEE type"),
    (8, "header QE SVN", SIGNATURE),
    (12, "header QE vendor ID", "Unknown QE vendor ID"),
    (28, "header user data", SIGNATURE),
    (48, "TEE TCB SVN", SIGNATURE),
    (64, "MRSEAM", SIGNATURE),
    (168, "TD attributes (DEBUG bit)", SIGNATURE),
    (184, "MRTD first byte", SIGNATURE),
    (231, "MRTD last byte", SIGNATURE),
    (376, "RTMR0", SIGNATURE),
    (520, "RTMR3", SIGNATURE),
    (568, "report_data first byte", SIGNATURE),
    (631, "report_data last byte", SIGNATURE),
    (632, "signature data size", "sizes do not add up"),
    (636, "quote signature", SIGNATURE),
    (699, "quote signature end", SIGNATURE),
    (700, "attestation key", "QE report hash mismatch"),
    (764, "certification data type", "certification data types are 7/5"),
    (770, "QE report", QE_SIGNATURE),
    (1154, "QE report signature", QE_SIGNATURE),
    (1220, "QE authentication data", "QE report hash mismatch"),
    (1252, "PCK chain type", "certification data types are 6/4"),
    (1258, "PCK chain PEM armour", "not canonical PEM"),
    (2000, "PCK chain whitespace", "not canonical PEM"),
    (3500, "PCK platform CA certificate", "Failed to verify certificate chain"),
    (4500, "root certificate copy", "not the trusted Intel root"),
    (4936, "padding after the quote", "non-zero bytes after offset 4936"),
]


def flipped(offset: int, bit: int = 0) -> bytes:
    raw = bytearray(QUOTE)
    raw[offset] ^= 1 << bit
    return bytes(raw)


def refused(match: str) -> pytest.RaisesContext[AttestationError]:
    return pytest.raises(AttestationError, match=match)


def one_line(info: pytest.ExceptionInfo[AttestationError]) -> None:
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)


@pytest.mark.parametrize(("offset", "where", "reason"), FLIPS, ids=[f[1] for f in FLIPS])
def test_flipped_bit_is_refused(workspace: Workspace, offset: int, where: str, reason: str) -> None:
    with refused(reason) as info:
        TdxVerifier().verify(evidence(flipped(offset)), workspace, NOW)
    one_line(info)


def test_every_single_bit_flip_of_the_quote_is_refused(workspace: Workspace) -> None:
    """Bits 0 and 7 of every byte, so nothing outside the named offsets slips through."""
    verifier, accepted = TdxVerifier(), []
    for offset in range(len(QUOTE)):
        for bit in (0, 7):
            try:
                verifier.verify(evidence(flipped(offset, bit)), workspace, NOW)
            except AttestationError as exc:
                assert "\n" not in str(exc)
            else:
                accepted.append((offset, bit))
    assert accepted == []


@pytest.mark.parametrize("size", [0, 10, 48, 600, 700, 1200, 4000, 4935])
def test_truncated_quote_is_refused(workspace: Workspace, size: int) -> None:
    with refused("does not parse|truncated|not PEM|not canonical PEM") as info:
        TdxVerifier().verify(evidence(QUOTE[:size]), workspace, NOW)
    one_line(info)


def test_collateral_of_another_platform_is_refused(workspace: Workspace) -> None:
    # the v5 sample's collateral (FMSPC 90c06f000000), at a time when it is valid
    with refused(f"another platform than FMSPC {FMSPC}: Fmspc mismatch"):
        TdxVerifier().verify(
            evidence(collateral_json=collateral("tdx_quote_outdated")), workspace, OUTDATED_NOW
        )


@pytest.mark.parametrize(
    ("field", "old", "new", "reason"),
    [
        ("tcb_info", '"tcbStatus":"UpToDate"', '"tcbStatus":"Revoked"', "tcb_info"),
        ("tcb_info", '"nextUpdate":"2025-07-19', '"nextUpdate":"2026-07-19', "tcb_info"),
        ("qe_identity", '"isvprodid":2', '"isvprodid":3', "qe_identity"),
    ],
)
def test_tampered_collateral_fails_its_signature(
    workspace: Workspace, field: str, old: str, new: str, reason: str
) -> None:
    doc = json.loads(collateral())
    assert old in doc[field]
    doc[field] = doc[field].replace(old, new, 1)
    with refused(f"signature does not verify: Signature is invalid for {reason}") as info:
        TdxVerifier().verify(evidence(collateral_json=json.dumps(doc)), workspace, NOW)
    one_line(info)


def test_malformed_collateral_is_refused(workspace: Workspace) -> None:
    with refused("not dcap-qvl QuoteCollateralV3 JSON"):
        TdxVerifier().verify(evidence(collateral_json="{}"), workspace, NOW)


@pytest.mark.parametrize(
    ("moment", "reason"),
    [
        (datetime(2025, 7, 20, tzinfo=UTC), "TCBInfo expired"),
        (datetime(2025, 7, 19, 10, 5, tzinfo=UTC), "certificate chain .*CrlExpired"),
        (datetime(2027, 1, 1, tzinfo=UTC), "CrlExpired"),
        (datetime(2025, 6, 19, 10, 20, tzinfo=UTC), "QE Identity issue date is in the future"),
        (datetime(2025, 6, 1, tzinfo=UTC), "TCBInfo issue date is in the future"),
    ],
    ids=["after nextUpdate", "after PCK CRL", "after root CRL", "before QE id", "before TCB info"],
)
def test_collateral_outside_its_validity_is_refused(
    workspace: Workspace, moment: datetime, reason: str
) -> None:
    when = re.escape(moment.isoformat())
    with refused(f"not valid at {when}: .*{reason}.*collateral add") as info:
        TdxVerifier().verify(evidence(), workspace, moment)
    one_line(info)


def real_claims(workspace: Workspace) -> Claims:
    return TdxVerifier().verify(evidence(), workspace, NOW)


def test_mrtd_not_allowed_is_refused(workspace: Workspace) -> None:
    policy = HardwarePolicy(measurements=["ab" * 48])
    with refused(f"measurement {MRTD} is not one the policy allows"):
        verify_evidence(evidence(), workspace, NOW, policy=policy)


def test_rtmr_mismatch_is_refused(workspace: Workspace) -> None:
    policy = HardwarePolicy(measurements=[MRTD], tdx=TdxPolicy(rtmrs=[RTMRS[0], "11" * 48]))
    with refused(f"RTMR1 is {RTMRS[1]}, not {'11' * 48}"):
        verify_evidence(evidence(), workspace, NOW, policy=policy)


def test_tcb_status_not_allowed_is_refused(workspace: Workspace) -> None:
    """Real claims (UpToDate) under a policy that allows another status; then the statuses
    real collateral would report for a stale platform, on the real claims."""
    policy = HardwarePolicy(measurements=[MRTD], tdx=TdxPolicy(tcb_statuses=["SWHardeningNeeded"]))
    with refused("TCB status is UpToDate; the policy allows SWHardeningNeeded"):
        verify_evidence(evidence(), workspace, NOW, policy=policy)
    claims = real_claims(workspace)
    default = HardwarePolicy(measurements=[MRTD])
    for status in ("OutOfDate", "SWHardeningNeeded", "Revoked"):
        with refused(f"TCB status is {status}; the policy allows UpToDate"):
            check_hardware_policy(claims.model_copy(update={"tcb_status": status}), default)
    hardened = HardwarePolicy(
        measurements=[MRTD], tdx=TdxPolicy(tcb_statuses=["UpToDate", "SWHardeningNeeded"])
    )
    check_hardware_policy(claims.model_copy(update={"tcb_status": "SWHardeningNeeded"}), hardened)


def test_advisories_not_accepted_are_refused(workspace: Workspace) -> None:
    claims = real_claims(workspace).model_copy(update={"advisory_ids": ["INTEL-SA-00837"]})
    with refused("Intel advisories INTEL-SA-00837 apply"):
        check_hardware_policy(claims, HardwarePolicy(measurements=[MRTD]))
    accepting = TdxPolicy(allowed_advisories=["INTEL-SA-00837"])
    check_hardware_policy(claims, HardwarePolicy(measurements=[MRTD], tdx=accepting))


def test_report_data_not_binding_nonce_and_key_is_denied(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key service's own check, on real claims: the quote's report_data is not
    SHA-512(nonce || ephemeral key) for this request. (Its verify_evidence is pinned to
    the collateral's time, the only change.)"""
    monkeypatch.setattr(kms_service, "verify_evidence", lambda ev, ws: verify_evidence(ev, ws, NOW))
    _, public = generate_ephemeral()
    request = types.SimpleNamespace(
        evidence=evidence(), nonce=b"n" * 32, ephemeral_public_key=public
    )
    assert real_claims(workspace).report_data != make_report_data(request.nonce, public)
    with pytest.raises(kms_service.Denied, match="does not bind this nonce and ephemeral"):
        kms_service.KeyService._check_evidence(types.SimpleNamespace(ws=workspace), request)  # type: ignore[arg-type]


class _Accepting:
    """dcap-qvl's verdict replaced by a pass, to reach the checks that follow it."""

    def __init__(self, status: str) -> None:
        self.status, self.advisory_ids = status, []

    def __call__(self, *_: object) -> _Accepting:
        return self


def test_debug_td_is_refused(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """No published quote comes from a debug TD, so the refusal is shown three ways: the
    policy refuses claims that say debug; flipping TD_ATTRIBUTES.DEBUG in the real quote
    breaks Intel's signature (an attacker cannot set or clear it); and with the signature
    check stubbed out, the verifier itself still refuses the debug bit."""
    claims = real_claims(workspace).model_copy(update={"debug": True})
    with refused("allows debugging"):
        check_hardware_policy(claims, HardwarePolicy(measurements=[MRTD]))
    with refused(SIGNATURE):
        TdxVerifier().verify(evidence(flipped(168)), workspace, NOW)
    monkeypatch.setattr(dcap_qvl, "verify_with_root_ca", _Accepting("UpToDate"))
    with refused(r"debug TD \(TD_ATTRIBUTES.DEBUG set\)"):
        TdxVerifier().verify(evidence(flipped(168)), workspace, NOW)


def test_revoked_platform_is_refused_by_the_verifier(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dcap_qvl, "verify_with_root_ca", _Accepting("Revoked"))
    with refused(f"FMSPC {FMSPC} has TCB status Revoked: refused whatever the policy"):
        TdxVerifier().verify(evidence(), workspace, NOW)


def test_older_collateral_than_the_cache_is_refused_as_rollback(workspace: Workspace) -> None:
    """The evidence carries Intel's real collateral (evaluation number 17); the key owner's
    cache holds a newer one for the same FMSPC (the number raised to 18 here: the cache is
    only compared, never trusted for signatures)."""
    folder = collateral_dir(workspace) / "tdx"
    folder.mkdir(parents=True)
    doc = json.loads(collateral())
    assert '"tcbEvaluationDataNumber":17' in doc["tcb_info"]
    (folder / f"{FMSPC}.json").write_text(collateral(), encoding="ascii")
    TdxVerifier().verify(evidence(), workspace, NOW)  # same number: accepted
    doc["tcb_info"] = doc["tcb_info"].replace(
        '"tcbEvaluationDataNumber":17', '"tcbEvaluationDataNumber":18'
    )
    (folder / f"{FMSPC}.json").write_text(json.dumps(doc), encoding="ascii")
    with refused("evaluation data number 17, older than the 18 .* refused as a rollback"):
        TdxVerifier().verify(evidence(), workspace, NOW)
