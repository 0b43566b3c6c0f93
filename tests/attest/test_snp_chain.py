"""AMD's shipped roots (pinned, RSA-4096, each family's chain) and VCEK chain refusals.

Pinned time: tests/attest/snp_real.py NOW (2025-09-01), see tests/data/README.md.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from sealroom.attest.snp.chain import (
    check_family_roots,
    parse_documents,
    product_family,
    verify_chain,
)
from sealroom.attest.snp.trust import ARK_FINGERPRINTS, FamilyRoots, amd_roots, load_roots
from sealroom.errors import AttestationError
from tests.attest.snp_factory import FakeAmd, pem
from tests.attest.snp_real import NOW, TURIN_VCEK, VS_VCEK

SHIPPED = Path(__file__).resolve().parents[2] / "sealroom" / "attest" / "snp" / "roots"


def _leaf(text: str) -> x509.Certificate:
    return parse_documents([text]).certificates[0]


@pytest.mark.parametrize("family", ["Milan", "Genoa", "Turin"])
def test_each_shipped_family_chain_is_amds(family: str) -> None:
    roots = amd_roots()[family]
    assert roots.ark.fingerprint(hashes.SHA256()).hex() == ARK_FINGERPRINTS[family]
    for cert in (roots.ark, roots.ask, roots.asvk):
        key = cert.public_key() if cert is not None else None
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 4096
    assert roots.asvk is not None
    check_family_roots(roots, NOW)  # ARK self-signed, ASK and ASVK under it, all valid


@pytest.mark.parametrize("family", ["Milan", "Genoa", "Turin"])
def test_shipped_roots_expire_with_amds_dates(family: str) -> None:
    with pytest.raises(AttestationError, match=f"ARK-{family} expired on 204"):
        check_family_roots(amd_roots()[family], datetime(2049, 1, 1, tzinfo=UTC))


def test_real_turin_vcek_chains_to_shipped_turin_roots() -> None:
    result = verify_chain(_leaf(TURIN_VCEK), "vcek", amd_roots()["Turin"], NOW)
    assert result.family == "Turin"
    assert result.crl_checked is False


def test_real_turin_vcek_is_refused_under_milan_roots() -> None:
    with pytest.raises(AttestationError, match="VCEK is for Turin processors, not Milan"):
        verify_chain(_leaf(TURIN_VCEK), "vcek", amd_roots()["Milan"], NOW)


def test_real_milan_vcek_is_refused_under_turin_roots_even_if_it_claimed_turin() -> None:
    milan = _leaf(VS_VCEK)
    assert product_family(milan, "VCEK") == "Milan"
    turin = amd_roots()["Turin"]
    as_if_milan = FamilyRoots("Milan", turin.ark, turin.ask, turin.asvk)
    with pytest.raises(AttestationError, match="issued by 'SEV-Milan', not by ASK-Milan"):
        verify_chain(milan, "vcek", as_if_milan, NOW)


def test_real_vcek_expired_collateral_is_refused() -> None:
    with pytest.raises(AttestationError, match="VCEK expired on 2030-04-03"):
        verify_chain(_leaf(VS_VCEK), "vcek", amd_roots()["Milan"], datetime(2030, 5, 1, tzinfo=UTC))


def test_real_vcek_before_its_validity_is_refused() -> None:
    with pytest.raises(AttestationError, match="VCEK is not valid before 2023-04-03"):
        verify_chain(_leaf(VS_VCEK), "vcek", amd_roots()["Milan"], datetime(2023, 1, 1, tzinfo=UTC))


def _copy_roots(tmp_path: Path) -> Path:
    folder = tmp_path / "roots"
    shutil.copytree(SHIPPED, folder)
    return folder


def test_shipped_roots_load_from_a_copy(tmp_path: Path) -> None:
    assert set(load_roots(_copy_roots(tmp_path))) == {"Milan", "Genoa", "Turin"}


def test_swapped_root_file_is_refused_by_fingerprint(tmp_path: Path) -> None:
    folder = _copy_roots(tmp_path)
    shutil.copy(folder / "genoa_ark.pem", folder / "milan_ark.pem")
    with pytest.raises(
        AttestationError, match=r"milan_ark.pem has SHA-256 4c6598d1.*not AMD's pinned"
    ):
        load_roots(folder)


def test_self_made_root_file_with_amds_subject_is_refused(tmp_path: Path) -> None:
    folder = _copy_roots(tmp_path)
    (folder / "turin_ark.pem").write_text(pem(FakeAmd.create("Turin").ark))
    with pytest.raises(
        AttestationError, match=r"turin_ark.pem has SHA-256 .*not AMD's pinned ARK-Turin"
    ):
        load_roots(folder)


def test_edited_root_file_is_refused(tmp_path: Path) -> None:
    folder = _copy_roots(tmp_path)
    text = (folder / "milan_ark.pem").read_text().splitlines()
    line = text[5]
    text[5] = line[:10] + ("A" if line[10] != "A" else "B") + line[11:]
    (folder / "milan_ark.pem").write_text("\n".join(text) + "\n")
    with pytest.raises(AttestationError, match=r"milan_ark.pem(: unreadable| has SHA-256)"):
        load_roots(folder)


def test_ask_not_signed_by_the_ark_is_refused() -> None:
    real, fake = amd_roots()["Milan"], FakeAmd.create("Milan")
    mixed = FamilyRoots("Milan", real.ark, fake.ask, fake.ask)  # same subject, other signer
    with pytest.raises(AttestationError, match="ASK-Milan signature by ARK-Milan does not verify"):
        verify_chain(fake.vcek, "vcek", mixed, NOW)
    with pytest.raises(AttestationError, match="ASK-Milan signature by ARK-Milan does not verify"):
        check_family_roots(mixed, NOW)


def test_self_made_vcek_with_amds_subjects_is_refused_by_real_roots() -> None:
    fake = FakeAmd.create("Milan")
    with pytest.raises(AttestationError, match="VCEK signature by ASK-Milan does not verify"):
        verify_chain(fake.vcek, "vcek", amd_roots()["Milan"], NOW)


def test_fake_chain_verifies_under_its_own_roots() -> None:
    fake = FakeAmd.create("Milan")
    assert verify_chain(fake.vcek, "vcek", fake.roots["Milan"], NOW).family == "Milan"


# CRLs (self-made: AMD's real CRL revokes nothing we could test against)


def test_crls_of_the_family_are_checked_when_given() -> None:
    fake = FakeAmd.create("Milan")
    crls = parse_documents([fake.crl(by="ark"), fake.crl(by="ask")]).crls
    assert verify_chain(fake.vcek, "vcek", fake.roots["Milan"], NOW, crls).crl_checked is True


def test_revoked_vcek_is_refused() -> None:
    fake = FakeAmd.create("Milan")
    crls = parse_documents([fake.crl(by="ask", revoked=(fake.vcek.serial_number,))]).crls
    with pytest.raises(AttestationError, match="VCEK \\(serial 1\\) is revoked by the CRL of ASK"):
        verify_chain(fake.vcek, "vcek", fake.roots["Milan"], NOW, crls)


def test_revoked_ask_is_refused() -> None:
    fake = FakeAmd.create("Milan")
    crls = parse_documents([fake.crl(by="ark", revoked=(fake.ask.serial_number,))]).crls
    with pytest.raises(AttestationError, match="ASK-Milan \\(serial 65537\\) is revoked"):
        verify_chain(fake.vcek, "vcek", fake.roots["Milan"], NOW, crls)


def test_crl_past_next_update_is_expired_collateral() -> None:
    fake = FakeAmd.create("Milan")
    stale = fake.crl(next_update=datetime(2025, 1, 1, tzinfo=UTC))
    crls = parse_documents([stale]).crls
    with pytest.raises(AttestationError, match="past its nextUpdate \\(2025-01-01\\): expired"):
        verify_chain(fake.vcek, "vcek", fake.roots["Milan"], NOW, crls)


def test_crl_not_signed_by_the_ark_is_refused() -> None:
    fake, other = FakeAmd.create("Milan"), FakeAmd.create("Genoa")
    forged = FakeAmd("Milan", other.ark_key, fake.ark, other.ask_key, fake.ask, fake.vcek_key,
                     fake.vcek, fake.chip_id)  # fmt: skip
    crls = parse_documents([forged.crl(by="ark")]).crls  # ARK-Milan's name, Genoa's key
    with pytest.raises(AttestationError, match="CRL of ARK-Milan does not verify"):
        verify_chain(fake.vcek, "vcek", fake.roots["Milan"], NOW, crls)


def test_unknown_pem_block_is_refused() -> None:
    with pytest.raises(AttestationError, match="unexpected PEM PRIVATE KEY"):
        parse_documents(["-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"])


def test_ark_that_is_not_self_signed_is_refused() -> None:
    real = amd_roots()["Milan"]
    not_a_root = FamilyRoots("Milan", real.ask, real.ask, real.asvk)
    with pytest.raises(AttestationError, match="ARK-Milan is issued by 'ARK-Milan', not by itself"):
        check_family_roots(not_a_root, NOW)


def test_document_without_pem_is_refused() -> None:
    with pytest.raises(AttestationError, match="document 1 holds no PEM certificate or CRL"):
        parse_documents([VS_VCEK, "not a certificate"])
