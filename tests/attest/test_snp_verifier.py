"""The SEV-SNP verifier end to end on real Milan evidence, and its negative matrix.

Pinned time: tests/attest/snp_real.py NOW (2025-09-01), see tests/data/README.md.
Refusals real AMD signatures cannot produce (VMPL, report_data binding, revocation, CPUID
of another family) use the test-only self-made PKI in snp_factory.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sealroom.attest import Evidence, verify_evidence
from sealroom.attest.collateral import collateral_dir
from sealroom.attest.policy import HardwarePolicy, SnpPolicy, check_hardware_policy
from sealroom.attest.snp import SnpVerifier, verify_snp_report
from sealroom.attest.snp.trust import amd_roots
from sealroom.errors import AttestationError
from sealroom.workspace import Workspace
from tests.attest.snp_factory import FakeAmd, pem
from tests.attest.snp_real import (
    GSG_VCEK,
    NOW,
    OAK_GENOA_VCEK,
    OAK_TURIN_VCEK,
    REAL_TCB,
    TURIN_VCEK,
    VS_MEASUREMENT,
    VS_VCEK,
    gsg_report,
    oak_report,
    snp_evidence,
    snp_policy,
    vs_report,
)

# real evidence, end to end


def test_real_milan_report_verifies_to_claims(workspace: Workspace) -> None:
    claims = verify_evidence(snp_evidence(vs_report(), VS_VCEK), workspace, NOW)
    assert claims.tee_type == "sev-snp"
    assert claims.insecure is False
    assert claims.debug is False
    assert claims.measurement == VS_MEASUREMENT
    assert claims.platform == "Milan"
    assert claims.signing_key == "vcek"
    assert claims.vmpl == 0
    assert claims.tcb == REAL_TCB
    assert claims.host_data == "00" * 32
    assert claims.issued_at == NOW


@pytest.mark.parametrize(
    ("family", "vcek", "tcb", "measurement_prefix"),
    [
        ("genoa", OAK_GENOA_VCEK, {"bootloader": 10, "tee": 0, "snp": 25, "microcode": 84},
         "c57729018b0a6fb9"),
        ("turin", OAK_TURIN_VCEK,
         {"fmc": 0, "bootloader": 1, "tee": 0, "snp": 2, "microcode": 71}, "f924dd18f168df60"),
    ],
)  # fmt: skip
def test_real_genoa_and_turin_reports_verify_to_claims(
    workspace: Workspace, family: str, vcek: str, tcb: dict[str, int], measurement_prefix: str
) -> None:
    claims = verify_evidence(snp_evidence(oak_report(family), vcek), workspace, NOW)
    assert claims.platform == family.capitalize()
    assert claims.tcb == tcb  # Turin's TCB_VERSION has an FMC byte and other positions
    assert claims.measurement.startswith(measurement_prefix)
    assert (claims.vmpl, claims.debug, claims.signing_key) == (0, False, "vcek")


def test_real_turin_report_with_a_genoa_vcek_is_refused_by_cpuid(workspace: Workspace) -> None:
    with pytest.raises(
        AttestationError, match=r"CPUID .* is a Turin processor, the VCEK is for Genoa"
    ):
        verify_evidence(snp_evidence(oak_report("turin"), OAK_GENOA_VCEK), workspace, NOW)


def test_real_genoa_report_with_a_milan_vcek_is_refused_by_cpuid(workspace: Workspace) -> None:
    with pytest.raises(
        AttestationError, match=r"CPUID .* is a Genoa processor, the VCEK is for Milan"
    ):
        verify_evidence(snp_evidence(oak_report("genoa"), VS_VCEK), workspace, NOW)


def test_real_turin_report_with_another_turin_chips_vcek_is_refused(workspace: Workspace) -> None:
    with pytest.raises(AttestationError, match="hwid is not the report's chip_id"):
        verify_evidence(snp_evidence(oak_report("turin"), TURIN_VCEK), workspace, NOW)


def test_real_milan_report_passes_a_matching_policy(workspace: Workspace) -> None:
    policy = snp_policy(min_tcb=REAL_TCB, families=["Milan"], signing_keys=["vcek"])
    claims = verify_evidence(snp_evidence(vs_report(), VS_VCEK), workspace, NOW, policy=policy)
    assert claims.measurement == VS_MEASUREMENT


def test_vcek_is_found_in_the_workspace_collateral(workspace: Workspace) -> None:
    folder = collateral_dir(workspace) / "snp"
    folder.mkdir(parents=True)
    (folder / "gsg.pem").write_text(GSG_VCEK)
    (folder / "vs.pem").write_text(VS_VCEK)
    claims = verify_evidence(snp_evidence(vs_report()), workspace, NOW)
    assert claims.tcb == REAL_TCB


def test_no_vcek_anywhere_is_refused(workspace: Workspace) -> None:
    with pytest.raises(AttestationError, match="no VCEK certificate with the evidence or in"):
        verify_evidence(snp_evidence(vs_report()), workspace, NOW)


def test_real_debug_report_verifies_but_is_refused_for_debug(workspace: Workspace) -> None:
    parsed, result = verify_snp_report(gsg_report(), [GSG_VCEK], NOW)  # AMD really signed it
    assert parsed.debug is True and result.family == "Milan"
    with pytest.raises(AttestationError, match="policy 0xb0000 \\(offset 0x8\\) allows debugging"):
        verify_evidence(snp_evidence(gsg_report(), GSG_VCEK), workspace, NOW)


# negative matrix: tampering


def _flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


@pytest.mark.parametrize(
    ("offset", "bit", "match"),
    [
        (0x50, 0, "signature \\(offset 0x2a0\\) does not verify"),  # report_data
        (0x8F, 7, "signature \\(offset 0x2a0\\) does not verify"),  # report_data, last byte
        (0x90, 0, "signature \\(offset 0x2a0\\) does not verify"),  # measurement
        (0xBF, 3, "signature \\(offset 0x2a0\\) does not verify"),  # measurement, last byte
        (0x0A, 3, "signature \\(offset 0x2a0\\) does not verify"),  # policy: DEBUG bit
        (0x0A, 1, "reserved bit 17 clear"),  # policy: the must-be-one bit
        (0x30, 0, "signature \\(offset 0x2a0\\) does not verify"),  # VMPL 0 -> 1
        (0xC0, 0, "signature \\(offset 0x2a0\\) does not verify"),  # host_data
        (0x180, 0, "reported TCB bootloader is 2 \\(offset 0x180\\)"),  # reported_tcb
        (0x187, 0, "reported TCB microcode is 114"),  # reported_tcb
        (0x1A0, 0, "hwid is not the report's chip_id \\(offset 0x1a0\\)"),  # chip_id
        (0x1DF, 7, "hwid is not the report's chip_id"),  # chip_id, last byte
        (0x1F0, 0, "signature \\(offset 0x2a0\\) does not verify"),  # launch_tcb
        (0x48, 2, "no VLEK certificate"),  # signing key VCEK -> VLEK
        (0x2A0, 0, "signature \\(offset 0x2a0\\) does not verify"),  # r
        (0x2CF, 7, "signature \\(offset 0x2a0\\) does not verify"),  # r, top byte
        (0x2E8, 0, "signature \\(offset 0x2a0\\) does not verify"),  # s
        (0x317, 7, "signature \\(offset 0x2a0\\) does not verify"),  # s, top byte
        (0x2D0, 0, "signature r padding"),
        (0x49F, 7, "signature padding"),
    ],
)
def test_flipped_bit_is_refused(workspace: Workspace, offset: int, bit: int, match: str) -> None:
    tampered = _flip(vs_report(), offset, bit)
    with pytest.raises(AttestationError, match=match):
        verify_evidence(snp_evidence(tampered, VS_VCEK), workspace, NOW)


def test_zero_filled_report_is_refused_plainly(workspace: Workspace) -> None:
    evidence = Evidence(tee_type="sev-snp", payload=b"\0" * 1184)
    with pytest.raises(AttestationError, match=r"version 0 \(offset 0x0\) is not supported"):
        verify_evidence(evidence, workspace)


@pytest.mark.parametrize(
    ("report", "vcek"),
    [(vs_report(), VS_VCEK), (oak_report("genoa"), OAK_GENOA_VCEK),
     (oak_report("turin"), OAK_TURIN_VCEK)],
    ids=["milan-v2", "genoa-v5", "turin-v5"],
)  # fmt: skip
def test_every_single_byte_flip_is_refused(report: bytes, vcek: str) -> None:
    verify_snp_report(report, [vcek], NOW)  # the untouched report verifies
    for offset in range(len(report)):
        with pytest.raises(AttestationError):
            verify_snp_report(_flip(report, offset, offset % 8), [vcek], NOW)


@pytest.mark.parametrize(
    ("payload", "match"),
    [(vs_report()[:-16], "1168 bytes, expected 1184"), (vs_report() + bytes(16), "1200 bytes")],
)
def test_truncated_or_oversized_report_is_refused(
    workspace: Workspace, payload: bytes, match: str
) -> None:
    with pytest.raises(AttestationError, match=match):
        verify_evidence(snp_evidence(payload, VS_VCEK), workspace, NOW)


# negative matrix: certificates


def test_another_chips_real_vcek_is_refused(workspace: Workspace) -> None:
    with pytest.raises(AttestationError, match="hwid is not the report's chip_id"):
        verify_evidence(snp_evidence(vs_report(), GSG_VCEK), workspace, NOW)


def test_real_turin_vcek_for_a_milan_report_is_refused(workspace: Workspace) -> None:
    with pytest.raises(AttestationError, match="hwid is not the report's chip_id"):
        verify_evidence(snp_evidence(vs_report(), TURIN_VCEK), workspace, NOW)


def test_turin_vcek_with_only_milan_roots_is_refused(workspace: Workspace) -> None:
    verifier = SnpVerifier(roots={"Milan": amd_roots()["Milan"]})
    with pytest.raises(AttestationError, match="no AMD roots for SEV-SNP family 'Turin'"):
        verifier.verify(snp_evidence(vs_report(), TURIN_VCEK), workspace, NOW)


def test_vcek_for_another_family_than_the_reports_cpuid_is_refused(workspace: Workspace) -> None:
    turin = FakeAmd.create("Turin")
    report = turin.report(cpuid_family="Milan")  # a Milan CPU's report, Turin-signed
    verifier = SnpVerifier(roots=turin.roots)
    with pytest.raises(AttestationError, match="CPUID \\(offset 0x188\\) is a Milan processor"):
        verifier.verify(snp_evidence(report, turin.vcek_pem), workspace, NOW)


def test_self_made_chain_is_refused_by_amds_roots(workspace: Workspace) -> None:
    fake = FakeAmd.create("Milan")
    # the attester's own ARK/ASK travel along: they are never trusted as roots
    evidence = snp_evidence(fake.report(), fake.vcek_pem, pem(fake.ask), pem(fake.ark))
    with pytest.raises(AttestationError, match="VCEK signature by ASK-Milan does not verify"):
        verify_evidence(evidence, workspace, NOW)


def test_expired_real_vcek_is_refused(workspace: Workspace) -> None:
    later = datetime(2030, 5, 1, tzinfo=UTC)
    with pytest.raises(AttestationError, match="VCEK expired on 2030-04-03"):
        verify_evidence(snp_evidence(vs_report(), VS_VCEK), workspace, later)


def test_expired_crl_in_the_workspace_is_refused(workspace: Workspace) -> None:
    fake = FakeAmd.create("Milan")
    folder = collateral_dir(workspace) / "snp"
    folder.mkdir(parents=True)
    (folder / "crl.pem").write_text(fake.crl(next_update=datetime(2025, 5, 1, tzinfo=UTC)))
    with pytest.raises(AttestationError, match="CRL of ARK-Milan is past its nextUpdate"):
        SnpVerifier(roots=fake.roots).verify(
            snp_evidence(fake.report(), fake.vcek_pem), workspace, NOW
        )


def test_revoked_vcek_is_refused(workspace: Workspace) -> None:
    fake = FakeAmd.create("Milan")
    crl = fake.crl(by="ask", revoked=(fake.vcek.serial_number,))
    with pytest.raises(AttestationError, match="VCEK \\(serial 1\\) is revoked"):
        SnpVerifier(roots=fake.roots).verify(
            snp_evidence(fake.report(), fake.vcek_pem, crl), workspace, NOW
        )


def test_report_signed_by_another_key_with_this_chips_vcek_is_refused(
    workspace: Workspace,
) -> None:
    fake = FakeAmd.create("Milan")
    _, twin = fake.issue_vcek()  # same chip and TCB, another key
    with pytest.raises(AttestationError, match="signature \\(offset 0x2a0\\) does not verify"):
        SnpVerifier(roots=fake.roots).verify(snp_evidence(fake.report(), pem(twin)), workspace, NOW)


def test_vcek_of_another_tcb_is_refused(workspace: Workspace) -> None:
    fake = FakeAmd.create("Milan")
    _, newer = fake.issue_vcek(key=fake.vcek_key, tcb={**REAL_TCB, "snp": 9})
    with pytest.raises(AttestationError, match=r"reported TCB snp is 8 .* issued for 9"):
        SnpVerifier(roots=fake.roots).verify(
            snp_evidence(fake.report(), pem(newer)), workspace, NOW
        )


def test_the_fake_chain_round_trips(workspace: Workspace) -> None:
    fake = FakeAmd.create("Milan")
    claims = SnpVerifier(roots=fake.roots).verify(
        snp_evidence(fake.report(vmpl=1), fake.vcek_pem, fake.crl(), fake.crl(by="ask")),
        workspace,
        NOW,
    )
    assert (claims.platform, claims.vmpl, claims.tcb) == ("Milan", 1, REAL_TCB)


def test_vlek_signed_report_verifies_under_the_asvk(workspace: Workspace) -> None:
    fake = FakeAmd.create("Milan")
    key, vlek = fake.issue_vcek(vlek=True)
    report = fake.report(signing_key=1, key=key)
    claims = SnpVerifier(roots=fake.roots).verify(snp_evidence(report, pem(vlek)), workspace, NOW)
    assert claims.signing_key == "vlek"
    policy = HardwarePolicy(measurements=[claims.measurement], snp=SnpPolicy(signing_keys=["vcek"]))
    with pytest.raises(AttestationError, match="signed by a vlek key; the policy allows vcek"):
        check_hardware_policy(claims, policy)


def test_vcek_offered_for_a_vlek_signed_report_is_refused(workspace: Workspace) -> None:
    fake = FakeAmd.create("Milan")
    report = fake.report(signing_key=1)
    with pytest.raises(AttestationError, match="no VLEK certificate"):
        SnpVerifier(roots=fake.roots).verify(snp_evidence(report, fake.vcek_pem), workspace, NOW)


def test_naive_verification_time_is_refused(workspace: Workspace) -> None:
    with pytest.raises(AttestationError, match="timezone-aware"):
        verify_evidence(snp_evidence(vs_report(), VS_VCEK), workspace, datetime(2025, 9, 1))
