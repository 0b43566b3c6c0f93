"""The TDX verifier on real published quotes: claims, collateral sources, Intel's root."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dcap_qvl
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from sealroom.attest import VERIFIERS, Evidence, tdx_quote, verify_evidence
from sealroom.attest.collateral import collateral_dir
from sealroom.attest.policy import HardwarePolicy, TdxPolicy
from sealroom.attest.tdx import TdxVerifier
from sealroom.attest.tdx_quote import INTEL_ROOT_SHA256, TdReport, intel_root_der, parse_tdx_quote
from sealroom.errors import AttestationError
from sealroom.workspace import Workspace
from tests.attest.tdx_samples import (
    FMSPC,
    MRTD,
    NOW,
    OUTDATED_FMSPC,
    OUTDATED_MRTD,
    OUTDATED_NOW,
    REPORT_DATA,
    RTMRS,
    collateral,
    evidence,
    sample,
)


def self_made_root() -> x509.Certificate:
    """A root with Intel's name and a key that is not Intel's."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "Intel SGX Root CA")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2018, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2049, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def test_real_v4_quote_verifies_to_its_claims(workspace: Workspace) -> None:
    claims = TdxVerifier().verify(evidence(), workspace, NOW)
    assert claims.tee_type == "tdx"
    assert claims.insecure is False and claims.debug is False
    assert claims.measurement == MRTD
    assert claims.rtmrs == RTMRS
    assert claims.report_data == REPORT_DATA
    assert claims.tcb_status == "UpToDate"
    assert claims.advisory_ids == []
    assert (claims.platform, claims.signing_key, claims.issued_at) == ("TDX", "pck", NOW)


def test_registry_verifies_tdx_under_a_policy_naming_its_mrtd(workspace: Workspace) -> None:
    assert isinstance(VERIFIERS.get("tdx"), TdxVerifier)
    policy = HardwarePolicy(measurements=[MRTD], tdx=TdxPolicy(rtmrs=[RTMRS[0], None, RTMRS[2]]))
    assert verify_evidence(evidence(), workspace, NOW, policy=policy).measurement == MRTD


def test_collateral_comes_from_the_workspace_cache(workspace: Workspace) -> None:
    folder = collateral_dir(workspace) / "tdx"
    folder.mkdir(parents=True)
    (folder / f"{FMSPC}.json").write_text(collateral(), encoding="ascii")
    claims = TdxVerifier().verify(evidence(collateral_json=""), workspace, NOW)
    assert claims.measurement == MRTD


def test_no_collateral_says_how_to_add_it(workspace: Workspace) -> None:
    with pytest.raises(
        AttestationError,
        match=f"no TDX collateral for FMSPC {FMSPC}.*sealroom attest collateral add",
    ):
        TdxVerifier().verify(evidence(collateral_json=""), workspace, NOW)


def test_outdated_v5_quote_is_below_every_tcb_level_whatever_the_policy(
    workspace: Workspace,
) -> None:
    """The sample dcap-qvl calls "outdated" does not reach OutOfDate: its SGX TCB component 7
    (3) is below every level of its own TCB info (5), so dcap-qvl finds no matching level
    and refuses; no policy can accept it (dcap-qvl itself only passes it with a test-only
    TCB override)."""
    ev = evidence(sample("tdx_quote_outdated"), collateral("tdx_quote_outdated"))
    lenient = HardwarePolicy(
        measurements=[OUTDATED_MRTD],
        tdx=TdxPolicy(tcb_statuses=["UpToDate", "SWHardeningNeeded", "ConfigurationNeeded"]),
    )
    with pytest.raises(AttestationError, match=f"TCB \\(FMSPC {OUTDATED_FMSPC}\\) is below every"):
        verify_evidence(ev, workspace, OUTDATED_NOW, policy=lenient)


def test_v5_quote_parses_to_its_td_report() -> None:
    quote = parse_tdx_quote(sample("tdx_quote_outdated"), intel_root_der())
    assert quote.header.version == 5
    report = TdReport.of(quote)
    assert report.mr_td.hex() == OUTDATED_MRTD and not report.debug


def test_sgx_quote_is_refused_as_not_tdx(workspace: Workspace) -> None:
    with pytest.raises(AttestationError, match=r"TEE type 0x0 \(SGX\), not TDX"):
        TdxVerifier().verify(evidence(sample("sgx_quote")), workspace, NOW)


def test_shipped_root_is_intels_pinned_certificate() -> None:
    der = intel_root_der()
    assert hashlib.sha256(der).hexdigest() == INTEL_ROOT_SHA256
    assert "Intel SGX Root CA" in x509.load_der_x509_certificate(der).subject.rfc4514_string()


def test_shipped_root_verifies_like_dcap_qvls_embedded_one() -> None:
    """verify_with_root_ca with the shipped root answers exactly as dcap-qvl's own root."""
    quote, col = sample("tdx_quote"), dcap_qvl.QuoteCollateralV3.from_json(collateral())
    now = int(NOW.timestamp())
    ours = dcap_qvl.verify_with_root_ca(quote, col, intel_root_der(), now)
    theirs = dcap_qvl.verify(quote, col, now)
    assert ours.to_json() == theirs.to_json()


def test_self_made_root_is_refused(workspace: Workspace) -> None:
    """Refused twice over: sealroom sees the quote's chain end in another root, and
    dcap-qvl alone finds Intel's CRLs not signed by that root."""
    root = self_made_root().public_bytes(Encoding.DER)
    with pytest.raises(AttestationError, match="not the trusted Intel root"):
        TdxVerifier(root_ca_der=root).verify(evidence(), workspace, NOW)
    col = dcap_qvl.QuoteCollateralV3.from_json(collateral())
    with pytest.raises(ValueError, match="root CA CRL"):
        dcap_qvl.verify_with_root_ca(sample("tdx_quote"), col, root, int(NOW.timestamp()))


def test_swapped_root_file_is_refused_by_its_fingerprint(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    swapped = tmp_path / "root.pem"
    swapped.write_bytes(self_made_root().public_bytes(Encoding.PEM))
    monkeypatch.setattr(tdx_quote, "INTEL_ROOT_FILE", swapped)
    with pytest.raises(AttestationError, match="trust anchor was replaced"):
        TdxVerifier().verify(evidence(), workspace, NOW)


def test_naive_time_is_refused(workspace: Workspace) -> None:
    with pytest.raises(AttestationError, match="timezone-aware"):
        TdxVerifier().verify(evidence(), workspace, NOW.replace(tzinfo=None))


def test_claims_keep_the_verification_time(workspace: Workspace) -> None:
    later = NOW + timedelta(days=3)
    assert TdxVerifier().verify(evidence(), workspace, later).issued_at == later


def test_zeroed_payload_is_refused_plainly(workspace: Workspace) -> None:
    """What UnavailableVerifier used to refuse: now a real parse failure, in one line."""
    with pytest.raises(AttestationError, match=r"^TDX quote does not parse: .*version"):
        verify_evidence(Evidence(tee_type="tdx", payload=b"\0" * 1184), workspace)
