"""The SEV-SNP attestation report, parsed field by field (AMD SEV-SNP ABI spec, Table 23).

The report is 1184 (0x4A0) bytes, little-endian; bytes 0..0x29F are what the VCEK or VLEK
signs, and 0x2A0.. holds the ECDSA P-384 signature (r and s as 72-byte little-endian
integers). Parsing refuses anything this module does not understand (an unknown version,
signing algorithm or signing key, a set reserved bit): a field it skipped could be one an
attacker controls. Nothing here checks the signature; see :mod:`sealroom.attest.snp.chain`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sealroom.errors import AttestationError

REPORT_SIZE = 0x4A0
SIGNED_SIZE = 0x2A0
SIGNATURE_OFFSET = 0x2A0
SIG_COMPONENT_SIZE = 72  # r and s: 72-byte little-endian fields, of which P-384 uses 48
SUPPORTED_VERSIONS = (2, 3, 5)
ECDSA_P384_SHA384 = 1
POLICY_RESERVED_ONE = 1 << 17  # the ABI requires this bit set
POLICY_DEBUG = 1 << 19
SIGNING_KEYS = {0: "vcek", 1: "vlek"}

# CPUID family/model (reports v3+) -> product family; Genoa includes Bergamo and Siena.
_CPUID_FAMILIES: tuple[tuple[int, range, str], ...] = (
    (0x19, range(0x00, 0x10), "Milan"),
    (0x19, range(0x10, 0x20), "Genoa"),
    (0x19, range(0xA0, 0xB0), "Genoa"),
    (0x1A, range(0x00, 0x20), "Turin"),
)


@dataclass(frozen=True)
class TcbVersion:
    """One TCB_VERSION: the security version of each firmware component."""

    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None = None  # Turin and later only

    def as_dict(self) -> dict[str, int]:
        parts = {
            "bootloader": self.bootloader,
            "tee": self.tee,
            "snp": self.snp,
            "microcode": self.microcode,
        }
        if self.fmc is not None:
            parts["fmc"] = self.fmc
        return parts


def decode_tcb(raw: bytes, family: str) -> TcbVersion:
    """TCB_VERSION bytes by family: Turin added an FMC byte and moved the others."""
    if len(raw) != 8:
        raise AttestationError(f"TCB_VERSION must be 8 bytes, got {len(raw)}")
    if family == "Turin":
        return TcbVersion(bootloader=raw[1], tee=raw[2], snp=raw[3], microcode=raw[7], fmc=raw[0])
    if family in ("Milan", "Genoa"):
        return TcbVersion(bootloader=raw[0], tee=raw[1], snp=raw[6], microcode=raw[7])
    raise AttestationError(f"no TCB_VERSION layout for SEV-SNP family {family!r}")


@dataclass(frozen=True)
class SnpReport:
    """The fields of one attestation report; TCBs stay raw until the family is known."""

    raw: bytes
    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: bytes
    platform_info: int
    author_key_en: bool
    mask_chip_key: bool
    signing_key: str  # "vcek" / "vlek"
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: bytes
    cpuid: tuple[int, int, int] | None  # family, model, stepping (v3+)
    chip_id: bytes
    committed_tcb: bytes
    launch_tcb: bytes
    signature_r: int
    signature_s: int

    @property
    def debug(self) -> bool:
        """DEBUG allowed: the hypervisor may read and write the guest's memory."""
        return bool(self.policy & POLICY_DEBUG)

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[:SIGNED_SIZE]

    @property
    def cpuid_family(self) -> str | None:
        """The product family the report's CPUID names (v3+), None for v2 reports."""
        if self.cpuid is None:
            return None
        family, model, _ = self.cpuid
        for fam, models, name in _CPUID_FAMILIES:
            if family == fam and model in models:
                return name
        raise AttestationError(
            f"report CPUID family 0x{family:02x} model 0x{model:02x} (offset 0x188) is not a "
            "known SEV-SNP product"
        )

    def tcb(self, family: str) -> TcbVersion:
        return decode_tcb(self.reported_tcb, family)


def _u32(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<I", data, offset)[0])


def _u64(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<Q", data, offset)[0])


def _zero(data: bytes, start: int, end: int, what: str) -> None:
    if any(data[start:end]):
        raise AttestationError(
            f"SEV-SNP report {what} (offset 0x{start:x}..0x{end:x}) must be zero"
        )


def parse_report(data: bytes) -> SnpReport:
    """An :class:`SnpReport`, or AttestationError naming the malformed field and offset."""
    if len(data) != REPORT_SIZE:
        raise AttestationError(
            f"SEV-SNP report is {len(data)} bytes, expected {REPORT_SIZE} (0x{REPORT_SIZE:x})"
        )
    version = _u32(data, 0x00)
    if version not in SUPPORTED_VERSIONS:
        raise AttestationError(
            f"SEV-SNP report version {version} (offset 0x0) is not supported "
            f"(known: {', '.join(map(str, SUPPORTED_VERSIONS))})"
        )
    policy = _u64(data, 0x08)
    if not policy & POLICY_RESERVED_ONE:
        raise AttestationError("SEV-SNP guest policy (offset 0x8) has reserved bit 17 clear")
    vmpl = _u32(data, 0x30)
    if vmpl > 3:
        raise AttestationError(f"SEV-SNP report VMPL {vmpl} (offset 0x30) is not 0..3")
    algo = _u32(data, 0x34)
    if algo != ECDSA_P384_SHA384:
        raise AttestationError(
            f"SEV-SNP signature algorithm {algo} (offset 0x34) is not 1 (ECDSA P-384 SHA-384)"
        )
    info = _u32(data, 0x48)
    if info >> 5:
        raise AttestationError(
            f"SEV-SNP signer info 0x{info:x} (offset 0x48) has reserved bits set"
        )
    key_code = (info >> 2) & 0b111
    if key_code not in SIGNING_KEYS:
        raise AttestationError(
            f"SEV-SNP signing key {key_code} (offset 0x48 bits 2-4) is neither VCEK (0) nor "
            "VLEK (1): the report is not signed by an AMD key"
        )
    mask_chip_key = bool(info & 0b10)
    if mask_chip_key:
        raise AttestationError("SEV-SNP report has MASK_CHIP_KEY set (offset 0x48): it is unsigned")
    _zero(data, 0x4C, 0x50, "reserved field")
    cpuid: tuple[int, int, int] | None = None
    if version >= 3:
        cpuid = (data[0x188], data[0x189], data[0x18A])
        _zero(data, 0x18B, 0x1A0, "reserved field after CPUID")
    else:
        _zero(data, 0x188, 0x1A0, "reserved field")
    r_raw = data[SIGNATURE_OFFSET : SIGNATURE_OFFSET + SIG_COMPONENT_SIZE]
    s_raw = data[SIGNATURE_OFFSET + SIG_COMPONENT_SIZE : SIGNATURE_OFFSET + 2 * SIG_COMPONENT_SIZE]
    # the signature area is not itself signed: every byte beyond r and s must be zero, or a
    # flipped bit there would pass unnoticed
    _zero(data, SIGNATURE_OFFSET + 2 * SIG_COMPONENT_SIZE, REPORT_SIZE, "signature padding")
    _zero(data, SIGNATURE_OFFSET + 48, SIGNATURE_OFFSET + SIG_COMPONENT_SIZE, "signature r padding")
    _zero(
        data,
        SIGNATURE_OFFSET + SIG_COMPONENT_SIZE + 48,
        SIGNATURE_OFFSET + 2 * SIG_COMPONENT_SIZE,
        "signature s padding",
    )
    return SnpReport(
        raw=bytes(data),
        version=version,
        guest_svn=_u32(data, 0x04),
        policy=policy,
        family_id=data[0x10:0x20],
        image_id=data[0x20:0x30],
        vmpl=vmpl,
        signature_algo=algo,
        current_tcb=data[0x38:0x40],
        platform_info=_u64(data, 0x40),
        author_key_en=bool(info & 0b1),
        mask_chip_key=mask_chip_key,
        signing_key=SIGNING_KEYS[key_code],
        report_data=data[0x50:0x90],
        measurement=data[0x90:0xC0],
        host_data=data[0xC0:0xE0],
        id_key_digest=data[0xE0:0x110],
        author_key_digest=data[0x110:0x140],
        report_id=data[0x140:0x160],
        report_id_ma=data[0x160:0x180],
        reported_tcb=data[0x180:0x188],
        cpuid=cpuid,
        chip_id=data[0x1A0:0x1E0],
        committed_tcb=data[0x1E0:0x1E8],
        launch_tcb=data[0x1F0:0x1F8],
        signature_r=int.from_bytes(r_raw, "little"),
        signature_s=int.from_bytes(s_raw, "little"),
    )
