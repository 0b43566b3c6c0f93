"""AMD SEV-SNP: parse attestation reports and verify them against AMD's shipped roots."""

from sealroom.attest.snp.report import SnpReport, TcbVersion, parse_report
from sealroom.attest.snp.trust import FamilyRoots, amd_roots, load_roots
from sealroom.attest.snp.verifier import SnpVerifier, check_binding, verify_snp_report

__all__ = [
    "FamilyRoots",
    "SnpReport",
    "SnpVerifier",
    "TcbVersion",
    "amd_roots",
    "check_binding",
    "load_roots",
    "parse_report",
    "verify_snp_report",
]
