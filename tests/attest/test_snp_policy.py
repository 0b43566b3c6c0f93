"""SEV-SNP claims under a key owner's terms: real reports under stricter policies, the
report_data binding of nonce and ephemeral key, and the host's certificate table as input.

Split from test_snp_verifier.py (which covers the report, chain and certificates).
"""

from __future__ import annotations

import hashlib

import pytest

from sealroom.attest import Evidence, make_report_data, verify_evidence
from sealroom.attest.policy import HardwarePolicy, SnpPolicy, check_hardware_policy
from sealroom.attest.snp import SnpVerifier, check_binding
from sealroom.attest.snp.trust import amd_roots
from sealroom.attest.snp_certtable import GUID_OF, build_cert_table, certificates_pem
from sealroom.crypto.hpke import generate_ephemeral
from sealroom.errors import AttestationError
from sealroom.workspace import Workspace
from tests.attest.snp_factory import FakeAmd, pem
from tests.attest.snp_real import (
    DATA,
    NOW,
    REAL_TCB,
    VS_MEASUREMENT,
    VS_VCEK,
    snp_evidence,
    snp_policy,
    vs_report,
)

# negative matrix: policy (real evidence under a stricter policy)


def test_tcb_below_the_minimum_is_refused(workspace: Workspace) -> None:
    policy = snp_policy(min_tcb={**REAL_TCB, "snp": 9})
    with pytest.raises(AttestationError, match=r"TCB component snp is 8 .* below the minimum 9"):
        verify_evidence(snp_evidence(vs_report(), VS_VCEK), workspace, NOW, policy=policy)


def test_measurement_not_allowed_is_refused(workspace: Workspace) -> None:
    policy = HardwarePolicy(measurements=["ab" * 48])
    with pytest.raises(AttestationError, match=f"measurement {VS_MEASUREMENT} is not one"):
        verify_evidence(snp_evidence(vs_report(), VS_VCEK), workspace, NOW, policy=policy)


def test_host_data_mismatch_is_refused(workspace: Workspace) -> None:
    policy = snp_policy(host_data="ab" * 32)
    with pytest.raises(AttestationError, match=r"host_data 0000.* is not the abab"):
        verify_evidence(snp_evidence(vs_report(), VS_VCEK), workspace, NOW, policy=policy)


def test_family_not_allowed_is_refused(workspace: Workspace) -> None:
    policy = snp_policy(families=["Genoa", "Turin"])
    with pytest.raises(AttestationError, match="SEV-SNP family Milan is not allowed"):
        verify_evidence(snp_evidence(vs_report(), VS_VCEK), workspace, NOW, policy=policy)


def test_vmpl_above_the_policy_is_refused(workspace: Workspace) -> None:
    fake = FakeAmd.create("Milan")
    measurement = b"\x11" * 48
    claims = SnpVerifier(roots=fake.roots).verify(
        snp_evidence(fake.report(vmpl=2, measurement=measurement), fake.vcek_pem), workspace, NOW
    )
    policy = HardwarePolicy(measurements=[measurement.hex()], snp=SnpPolicy(max_vmpl=1))
    with pytest.raises(AttestationError, match="requested at VMPL 2; the policy allows VMPL 1"):
        check_hardware_policy(claims, policy)


def test_host_data_is_reported(workspace: Workspace) -> None:
    fake = FakeAmd.create("Milan")
    host = hashlib.sha256(b"room config").digest()
    claims = SnpVerifier(roots=fake.roots).verify(
        snp_evidence(fake.report(host_data=host), fake.vcek_pem), workspace, NOW
    )
    policy = HardwarePolicy(measurements=[claims.measurement], snp=SnpPolicy(host_data=host.hex()))
    check_hardware_policy(claims, policy)


# negative matrix: report_data binding (nonce and ephemeral key)


def _bound(workspace: Workspace, nonce: bytes, key_b64: str) -> Evidence:
    fake = FakeAmd.create("Milan")
    return snp_evidence(fake.report(report_data=make_report_data(nonce, key_b64)), fake.vcek_pem)


def test_report_data_binds_nonce_and_key(workspace: Workspace) -> None:
    key = generate_ephemeral()[1]
    claims = SnpVerifier(roots=FakeAmd.create("Milan").roots).verify(
        _bound(workspace, b"n" * 32, key), workspace, NOW
    )
    check_binding(claims, b"n" * 32, key)


def test_report_data_for_another_nonce_is_refused(workspace: Workspace) -> None:
    key = generate_ephemeral()[1]
    claims = SnpVerifier(roots=FakeAmd.create("Milan").roots).verify(
        _bound(workspace, b"old nonce, replayed".ljust(32), key), workspace, NOW
    )
    with pytest.raises(AttestationError, match="report_data \\(offset 0x50\\) does not bind"):
        check_binding(claims, b"n" * 32, key)


def test_report_data_for_another_key_is_refused(workspace: Workspace) -> None:
    claims = SnpVerifier(roots=FakeAmd.create("Milan").roots).verify(
        _bound(workspace, b"n" * 32, generate_ephemeral()[1]), workspace, NOW
    )
    with pytest.raises(AttestationError, match="does not bind this nonce and ephemeral key"):
        check_binding(claims, b"n" * 32, generate_ephemeral()[1])


def test_real_report_does_not_bind_our_nonce(workspace: Workspace) -> None:
    claims = verify_evidence(snp_evidence(vs_report(), VS_VCEK), workspace, NOW)
    with pytest.raises(AttestationError, match="does not bind this nonce"):
        check_binding(claims, b"n" * 32, generate_ephemeral()[1])


# the configfs-tsm attester's certificate table feeds the verifier as it is


def test_certificate_table_from_the_host_verifies_the_real_report(workspace: Workspace) -> None:
    fake_ark = FakeAmd.create("Milan").ark  # a host may put anything here: never a root
    table = build_cert_table(
        [
            (GUID_OF["VCEK"], (DATA / "vs_vcek_milan.der").read_bytes()),
            (GUID_OF["ASK"], pem(amd_roots()["Milan"].ask).encode()),
            (GUID_OF["ARK"], pem(fake_ark).encode()),
        ]
    )
    evidence = snp_evidence(vs_report(), *certificates_pem(table))
    assert verify_evidence(evidence, workspace, NOW).measurement == VS_MEASUREMENT
