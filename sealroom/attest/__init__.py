"""Attestation: attesters produce evidence, verifiers (by TEE type) turn it into claims."""

from sealroom.attest.evidence import (
    REPORT_DATA_SIZE,
    Attester,
    Claims,
    Evidence,
    make_report_data,
)
from sealroom.attest.measure import measure_runtime
from sealroom.attest.software import INSECURE_LABEL, SoftwareAttester, SoftwareVerifier
from sealroom.attest.tsm import ConfigfsTsmAttester
from sealroom.attest.verifiers import VERIFIERS, Verifier, verify_evidence

__all__ = [
    "INSECURE_LABEL",
    "REPORT_DATA_SIZE",
    "VERIFIERS",
    "Attester",
    "Claims",
    "ConfigfsTsmAttester",
    "Evidence",
    "SoftwareAttester",
    "SoftwareVerifier",
    "Verifier",
    "make_report_data",
    "measure_runtime",
    "verify_evidence",
]
