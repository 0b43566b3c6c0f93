"""Real published SEV-SNP evidence (sources and pinned time in tests/data/README.md)."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from pathlib import Path

from sealroom.attest.evidence import Evidence
from sealroom.attest.policy import HardwarePolicy, SnpPolicy

DATA = Path(__file__).resolve().parent.parent / "data" / "attest" / "snp"
# Inside every certificate's validity: the VCEKs' notBefore (latest 2025-08-07, oak's Genoa
# VCEK) and notAfter (earliest 2029-09-24, go-sev-guest's Milan VCEK); AMD's roots run to 2045+.
NOW = datetime(2025, 9, 1, tzinfo=UTC)
# virtee/sev's Milan report: policy 0x30000 (debug off), VMPL 0, TCB bl=3 tee=0 snp=8 ucode=115
VS_MEASUREMENT = (
    "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d"
    "3e1a0dc39b2c60bd95b9c480cd81841f"
)


def der_to_pem(path: Path) -> str:
    # not through cryptography: AMD's VCEKs have serial 0, which it warns about on load
    return ssl.DER_cert_to_PEM_cert(path.read_bytes())


def vs_report() -> bytes:
    return bytes.fromhex((DATA / "vs_report_milan.hex").read_text().strip())


def gsg_report() -> bytes:
    return (DATA / "gsg_report_milan.bin").read_bytes()


def oak_report(family: str) -> bytes:
    return (DATA / f"oak_report_{family}.bin").read_bytes()


VS_VCEK = der_to_pem(DATA / "vs_vcek_milan.der")
GSG_VCEK = der_to_pem(DATA / "gsg_vcek_milan.der")
TURIN_VCEK = der_to_pem(DATA / "vs_vcek_turin.der")
OAK_GENOA_VCEK = der_to_pem(DATA / "oak_vcek_genoa.der")
OAK_TURIN_VCEK = der_to_pem(DATA / "oak_vcek_turin.der")

# virtee/sev's Milan report's reported TCB (and its VCEK's)
REAL_TCB = {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}


def snp_evidence(report: bytes, *certs: str) -> Evidence:
    return Evidence(tee_type="sev-snp", payload=report, certificates=list(certs))


def snp_policy(**snp: object) -> HardwarePolicy:
    """The virtee report's measurement allowed, with these SEV-SNP terms."""
    return HardwarePolicy(measurements=[VS_MEASUREMENT], snp=SnpPolicy(**snp))  # type: ignore[arg-type]
