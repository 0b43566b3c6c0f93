"""VCEK (or VLEK) -> ASK (or ASVK) -> ARK, and the VCEK's AMD extensions against the report.

AMD signs every certificate in these chains with RSA-PSS, SHA-384, MGF1-SHA-384 and a
48-byte salt; anything else is refused rather than negotiated. The VCEK carries, as X.509
extensions, the chip it belongs to (hwid), its product (e.g. "Milan-B0") and the TCB it was
issued for: a VCEK is only evidence for a report from that chip at that TCB.

CRLs: AMD's KDS publishes one CRL per family, signed by the ARK, listing revoked ASKs/ASVKs.
A CRL given with the evidence or cached in the workspace is checked (signature, freshness,
the serials); a missing CRL is accepted and reported (``ChainResult.crl_checked`` False),
because AMD has never revoked an ASK and verification must work offline. A CRL that is
present but bad (wrong signature, past nextUpdate) is a refusal, never skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from sealroom.attest.pem import load_block, pem_blocks
from sealroom.attest.snp.report import SnpReport, decode_tcb
from sealroom.attest.snp.trust import FamilyRoots
from sealroom.errors import AttestationError

OID_PRODUCT_NAME = "1.3.6.1.4.1.3704.1.2"
OID_HWID = "1.3.6.1.4.1.3704.1.4"
OID_TCB = {
    "bootloader": "1.3.6.1.4.1.3704.1.3.1",
    "tee": "1.3.6.1.4.1.3704.1.3.2",
    "snp": "1.3.6.1.4.1.3704.1.3.3",
    "microcode": "1.3.6.1.4.1.3704.1.3.8",
    "fmc": "1.3.6.1.4.1.3704.1.3.9",
}
LEAF_SUBJECT = {"vcek": "SEV-VCEK", "vlek": "SEV-VLEK"}
TURIN_HWID_SIZE = 8
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


@dataclass(frozen=True)
class Collateral:
    """Certificates and CRLs parsed from PEM documents (evidence or workspace cache)."""

    certificates: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...]


@dataclass(frozen=True)
class ChainResult:
    family: str
    leaf: x509.Certificate
    crl_checked: bool


def parse_documents(documents: list[str]) -> Collateral:
    """Every PEM certificate and CRL in ``documents``; an unknown or broken block is refused."""
    certs: list[x509.Certificate] = []
    crls: list[x509.CertificateRevocationList] = []
    for index, text in enumerate(documents):
        # non-ASCII text can only lie outside the blocks, which are ASCII by pattern
        blocks = pem_blocks(text.encode("ascii", "replace"))
        if not blocks:
            raise AttestationError(f"SEV-SNP document {index} holds no PEM certificate or CRL")
        for kind, block in blocks:
            try:
                loaded = load_block(kind, block)
            except ValueError as exc:
                raise AttestationError(
                    f"SEV-SNP document {index}: bad PEM {kind} ({exc})"
                ) from None
            if isinstance(loaded, x509.Certificate):
                certs.append(loaded)
            elif isinstance(loaded, x509.CertificateRevocationList):
                crls.append(loaded)
            else:
                raise AttestationError(f"SEV-SNP document {index}: unexpected PEM {kind}")
    return Collateral(tuple(certs), tuple(crls))


def common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def _ext(cert: x509.Certificate, oid: str) -> bytes | None:
    try:
        extensions = list(cert.extensions)
    except (ValueError, x509.DuplicateExtension) as exc:
        raise AttestationError(
            f"{common_name(cert.subject)} has malformed extensions ({exc})"
        ) from None
    for ext in extensions:
        if ext.oid.dotted_string == oid:
            value = ext.value
            return value.value if isinstance(value, x509.UnrecognizedExtension) else None
    return None


def _der_int(raw: bytes, what: str) -> int:
    # AMD encodes each TCB part as a DER INTEGER of 1..2 content bytes (0..255)
    if len(raw) < 3 or raw[0] != 0x02 or raw[1] != len(raw) - 2 or raw[1] > 2:
        raise AttestationError(f"VCEK extension {what} is not a small DER INTEGER")
    return int.from_bytes(raw[2:], "big", signed=True)


def product_family(cert: x509.Certificate, what: str) -> str:
    """The family a VCEK/VLEK names in its productName extension ("Milan-B0" -> "Milan")."""
    raw = _ext(cert, OID_PRODUCT_NAME)
    if raw is not None:
        # IA5String: tag 0x16, short length
        if len(raw) < 2 or raw[0] != 0x16 or raw[1] != len(raw) - 2:
            raise AttestationError(f"{what} productName extension is not an IA5String")
        return raw[2:].decode("ascii", "replace").split("-")[0]
    issuer = common_name(cert.issuer)  # a VLEK may lack productName; its issuer names the family
    for prefix in ("SEV-VLEK-", "SEV-"):
        if issuer.startswith(prefix):
            return issuer[len(prefix) :]
    raise AttestationError(f"{what} names no AMD product (no productName, issuer {issuer!r})")


def _check_time(cert: x509.Certificate, what: str, now: datetime) -> None:
    if now < cert.not_valid_before_utc:
        raise AttestationError(f"{what} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}")
    if now > cert.not_valid_after_utc:
        raise AttestationError(
            f"{what} expired on {cert.not_valid_after_utc:%Y-%m-%d} (collateral out of date)"
        )


def _check_pss(child: x509.Certificate, parent: x509.Certificate, what: str, by: str) -> None:
    if child.issuer != parent.subject:
        raise AttestationError(
            f"{what} is issued by {common_name(child.issuer)!r}, not by {by} "
            f"({common_name(parent.subject)!r})"
        )
    _verify_pss(parent, child.signature, child.tbs_certificate_bytes, f"{what} signature by {by}")


def _verify_pss(signer: x509.Certificate, signature: bytes, data: bytes, what: str) -> None:
    key = signer.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise AttestationError(f"{what}: the signer is not an RSA key")
    try:
        key.verify(signature, data, _PSS, hashes.SHA384())
    except InvalidSignature:
        raise AttestationError(
            f"{what} does not verify (RSA-PSS SHA-384, salt 48): not AMD's chain"
        ) from None


def _check_crls(
    crls: tuple[x509.CertificateRevocationList, ...],
    issuers: list[tuple[x509.Certificate, str, x509.Certificate, str]],
    now: datetime,
) -> bool:
    """Checks every CRL issued by a chain certificate; True when at least one applied."""
    checked = False
    for crl in crls:
        for signer, signer_name, subject, subject_name in issuers:
            if crl.issuer != signer.subject:
                continue
            _verify_pss(signer, crl.signature, crl.tbs_certlist_bytes, f"CRL of {signer_name}")
            next_update = crl.next_update_utc
            if next_update is None or now > next_update:
                raise AttestationError(
                    f"CRL of {signer_name} is past its nextUpdate "
                    f"({next_update:%Y-%m-%d}): expired collateral"
                    if next_update
                    else f"CRL of {signer_name} has no nextUpdate"
                )
            if now < crl.last_update_utc:
                raise AttestationError(f"CRL of {signer_name} is not valid yet")
            if crl.get_revoked_certificate_by_serial_number(subject.serial_number) is not None:
                raise AttestationError(
                    f"{subject_name} (serial {subject.serial_number}) is revoked by the CRL of "
                    f"{signer_name}"
                )
            checked = True
    return checked


def _check_anchor(
    ark: x509.Certificate, inter: x509.Certificate, inter_name: str, family: str, now: datetime
) -> None:
    _check_pss(ark, ark, f"ARK-{family}", "itself")
    _check_pss(inter, ark, inter_name, f"ARK-{family}")
    _check_time(ark, f"ARK-{family}", now)
    _check_time(inter, inter_name, now)


def check_family_roots(roots: FamilyRoots, now: datetime) -> None:
    """ARK self-signed, ASK (and ASVK when present) signed by it, all valid at ``now``."""
    _check_anchor(roots.ark, roots.ask, f"ASK-{roots.family}", roots.family, now)
    if roots.asvk is not None:
        _check_anchor(roots.ark, roots.asvk, f"ASVK-{roots.family}", roots.family, now)


def verify_chain(
    leaf: x509.Certificate,
    signing_key: str,
    roots: FamilyRoots,
    now: datetime,
    crls: tuple[x509.CertificateRevocationList, ...] = (),
) -> ChainResult:
    """The leaf chains to ``roots`` (one family's ARK) at ``now``, and no given CRL revokes it."""
    name = signing_key.upper()
    inter_name = "ASK" if signing_key == "vcek" else "ASVK"
    family = product_family(leaf, name)
    if family != roots.family:
        raise AttestationError(
            f"the {name} is for {family} processors, not {roots.family}: wrong family's chain"
        )
    if common_name(leaf.subject) != LEAF_SUBJECT[signing_key]:
        raise AttestationError(
            f"the report is {name}-signed but the certificate is {common_name(leaf.subject)!r}"
        )
    ark, inter = roots.ark, roots.intermediate(signing_key)
    _check_anchor(ark, inter, f"{inter_name}-{family}", family, now)
    _check_pss(leaf, inter, name, f"{inter_name}-{family}")
    _check_time(leaf, name, now)
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise AttestationError(f"the {name} key is not ECDSA P-384")
    checked = _check_crls(
        crls,
        [
            (ark, f"ARK-{family}", inter, f"{inter_name}-{family}"),
            (inter, f"{inter_name}-{family}", leaf, name),
        ],
        now,
    )
    return ChainResult(family=family, leaf=leaf, crl_checked=checked)


def check_leaf_matches(report: SnpReport, result: ChainResult) -> None:
    """The VCEK's chip, product and TCB are the report's: a VCEK vouches for nothing else."""
    leaf, family, name = result.leaf, result.family, report.signing_key.upper()
    reported_family = report.cpuid_family
    if reported_family is not None and reported_family != family:
        raise AttestationError(
            f"the report's CPUID (offset 0x188) is a {reported_family} processor, "
            f"the {name} is for {family}"
        )
    if report.signing_key == "vcek":
        hwid = _ext(leaf, OID_HWID)
        want = report.chip_id[:TURIN_HWID_SIZE] if family == "Turin" else report.chip_id
        if hwid is None or hwid != want:
            raise AttestationError(
                "the VCEK's hwid is not the report's chip_id (offset 0x1a0): a VCEK of another chip"
            )
    tcb = decode_tcb(report.reported_tcb, family).as_dict()
    for component, svn in tcb.items():
        raw = _ext(leaf, OID_TCB[component])
        if raw is None:
            raise AttestationError(f"the {name} has no {component} TCB extension")
        cert_svn = _der_int(raw, f"{component} TCB")
        if cert_svn != svn:
            raise AttestationError(
                f"reported TCB {component} is {svn} (offset 0x180) but the {name} was issued "
                f"for {cert_svn}"
            )
