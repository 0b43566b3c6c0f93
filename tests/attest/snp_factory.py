"""TEST ONLY: a self-made AMD-like PKI and SEV-SNP report signer.

Real AMD signatures cannot produce the refusals that matter most (a report at VMPL 2, a
report_data that binds another key, a revoked VCEK, a CPUID of another family), so these
are built here: an RSA-PSS ARK/ASK pair with AMD's subjects, an ECDSA P-384 VCEK with AMD's
extensions, CRLs, and reports laid out as the ABI specifies. ``FakeAmd.roots`` is what
``SnpVerifier(roots=...)`` takes; AMD's shipped roots refuse all of it. Keys are RSA-2048
(not AMD's 4096) for speed, and generated once per process.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from sealroom.attest.snp.trust import FamilyRoots

NOT_BEFORE = datetime(2024, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(2034, 1, 1, tzinfo=UTC)
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
PRODUCT = {"Milan": "Milan-B0", "Genoa": "Genoa-B1", "Turin": "Turin"}
CPUID = {"Milan": (0x19, 0x01, 0x01), "Genoa": (0x19, 0x11, 0x01), "Turin": (0x1A, 0x02, 0x00)}
DEFAULT_TCB = {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}
TCB_OIDS = {"bootloader": 1, "tee": 2, "snp": 3, "microcode": 8, "fmc": 9}


def amd_name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Engineering"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Advanced Micro Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ext(oid: str, value: bytes) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value)


def tcb_bytes(tcb: dict[str, int], family: str) -> bytes:
    raw = bytearray(8)
    if family == "Turin":
        raw[0], raw[1], raw[2], raw[3] = (
            tcb.get("fmc", 0),
            tcb["bootloader"],
            tcb["tee"],
            tcb["snp"],
        )
    else:
        raw[0], raw[1], raw[6] = tcb["bootloader"], tcb["tee"], tcb["snp"]
    raw[7] = tcb["microcode"]
    return bytes(raw)


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class FakeAmd:
    family: str
    ark_key: rsa.RSAPrivateKey
    ark: x509.Certificate
    ask_key: rsa.RSAPrivateKey
    ask: x509.Certificate
    vcek_key: ec.EllipticCurvePrivateKey
    vcek: x509.Certificate
    chip_id: bytes

    @classmethod
    def create(cls, family: str = "Milan") -> FakeAmd:
        return _create(family)

    @property
    def roots(self) -> dict[str, FamilyRoots]:
        return {self.family: FamilyRoots(self.family, self.ark, self.ask, self.ask)}

    @property
    def vcek_pem(self) -> str:
        return pem(self.vcek)

    def issue_vcek(
        self,
        *,
        chip_id: bytes | None = None,
        tcb: dict[str, int] | None = None,
        product: str | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
        serial: int = 1,
        not_after: datetime = NOT_AFTER,
        signer: rsa.RSAPrivateKey | None = None,
        vlek: bool = False,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A VCEK (or VLEK: no hwid) under this fake ASK (or ``signer``) with AMD's extensions."""
        key = key or ec.generate_private_key(ec.SECP384R1())
        chip_id = self.chip_id if chip_id is None else chip_id
        tcb = dict(DEFAULT_TCB if tcb is None else tcb)
        product = product or PRODUCT[self.family]
        name = product.encode()
        builder = (
            x509.CertificateBuilder()
            .subject_name(amd_name("SEV-VLEK" if vlek else "SEV-VCEK"))
            .issuer_name(self.ask.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(NOT_BEFORE)
            .not_valid_after(not_after)
            .add_extension(_ext("1.3.6.1.4.1.3704.1.2", b"\x16" + bytes([len(name)]) + name), False)
        )
        if not vlek:
            hwid = chip_id[:8] if self.family == "Turin" else chip_id
            builder = builder.add_extension(_ext("1.3.6.1.4.1.3704.1.4", hwid), False)
        if self.family == "Turin":
            tcb.setdefault("fmc", 0)
        for component, svn in tcb.items():
            oid = f"1.3.6.1.4.1.3704.1.3.{TCB_OIDS[component]}"
            builder = builder.add_extension(_ext(oid, bytes([2, 1, svn])), False)
        cert = builder.sign(signer or self.ask_key, hashes.SHA384(), rsa_padding=PSS)
        return key, cert

    def crl(
        self,
        *,
        by: str = "ark",
        revoked: tuple[int, ...] = (),
        last_update: datetime = NOT_BEFORE,
        next_update: datetime = NOT_AFTER,
    ) -> str:
        """A PEM CRL issued by the fake ARK (revokes ASKs) or ASK (revokes VCEKs)."""
        issuer, key = (self.ark, self.ark_key) if by == "ark" else (self.ask, self.ask_key)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.subject)
            .last_update(last_update)
            .next_update(next_update)
        )
        for serial in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(last_update)
                .build()
            )
        crl = builder.sign(key, hashes.SHA384(), rsa_padding=PSS)
        return crl.public_bytes(serialization.Encoding.PEM).decode()

    def report(
        self,
        *,
        report_data: bytes = bytes(64),
        measurement: bytes = b"\x11" * 48,
        vmpl: int = 0,
        policy: int = 0x30000,
        tcb: dict[str, int] | None = None,
        host_data: bytes = bytes(32),
        chip_id: bytes | None = None,
        version: int = 3,
        cpuid_family: str | None = None,
        signing_key: int = 0,
        key: ec.EllipticCurvePrivateKey | None = None,
    ) -> bytes:
        """A report laid out per the ABI (v3 by default, CPUID of this family), signed."""
        raw = bytearray(0x4A0)
        struct.pack_into("<IIQ", raw, 0, version, 1, policy)
        struct.pack_into("<II", raw, 0x30, vmpl, 1)
        tcb_raw = tcb_bytes(dict(DEFAULT_TCB if tcb is None else tcb), self.family)
        raw[0x38:0x40] = tcb_raw
        struct.pack_into("<I", raw, 0x48, signing_key << 2)
        raw[0x50:0x90] = report_data
        raw[0x90:0xC0] = measurement
        raw[0xC0:0xE0] = host_data
        raw[0x180:0x188] = tcb_raw
        if version >= 3:
            raw[0x188:0x18B] = bytes(CPUID[cpuid_family or self.family])
        chip = self.chip_id if chip_id is None else chip_id
        raw[0x1A0:0x1E0] = chip
        raw[0x1E0:0x1E8] = tcb_raw
        raw[0x1F0:0x1F8] = tcb_raw
        signature = (key or self.vcek_key).sign(bytes(raw[:0x2A0]), ec.ECDSA(hashes.SHA384()))
        r, s = decode_dss_signature(signature)
        raw[0x2A0:0x2E8] = r.to_bytes(72, "little")
        raw[0x2E8:0x330] = s.to_bytes(72, "little")
        return bytes(raw)


def _cert(
    subject: str,
    issuer: x509.Name,
    key: rsa.RSAPrivateKey,
    signer: rsa.RSAPrivateKey,
    serial: int,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(amd_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .sign(signer, hashes.SHA384(), rsa_padding=PSS)
    )


@functools.cache
def _create(family: str) -> FakeAmd:
    ark_key = rsa.generate_private_key(65537, 2048)
    ask_key = rsa.generate_private_key(65537, 2048)
    ark = _cert(f"ARK-{family}", amd_name(f"ARK-{family}"), ark_key, ark_key, 0x10000)
    ask = _cert(f"SEV-{family}", ark.subject, ask_key, ark_key, 0x10001)
    chip_id = bytes(range(64)) if family != "Turin" else bytes(range(1, 9)) + bytes(56)
    fake = FakeAmd(family, ark_key, ark, ask_key, ask, ec.generate_private_key(ec.SECP384R1()),
                   ask, chip_id)  # fmt: skip
    fake.vcek_key, fake.vcek = fake.issue_vcek(key=fake.vcek_key)
    return fake
