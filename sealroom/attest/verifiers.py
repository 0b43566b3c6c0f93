"""The verifier registry, keyed by TEE type: callers never branch on the kind of TEE.

Add a TEE by registering a verifier here (``VERIFIERS.add("sev-snp", ...)``); the key
service calls :func:`verify_evidence` and reads normalised Claims either way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sealroom.attest.evidence import Claims, Evidence
from sealroom.attest.policy import HardwarePolicy, check_hardware_policy
from sealroom.attest.snp.verifier import SnpVerifier
from sealroom.attest.software import SoftwareVerifier
from sealroom.attest.tdx import TdxVerifier
from sealroom.errors import AttestationError
from sealroom.pipeline.registry import Registry
from sealroom.workspace import Workspace


class Verifier(Protocol):
    tee_type: str

    def verify(
        self, evidence: Evidence, ws: Workspace | None, now: datetime | None = None
    ) -> Claims: ...


VERIFIERS: Registry[Verifier] = Registry("attestation verifier")
VERIFIERS.add("software", SoftwareVerifier())
VERIFIERS.add("sev-snp", SnpVerifier())
VERIFIERS.add("tdx", TdxVerifier())


def verify_evidence(
    evidence: Evidence,
    ws: Workspace | None,
    now: datetime | None = None,
    policy: HardwarePolicy | None = None,
) -> Claims:
    """Normalised claims from evidence of any registered TEE type; AttestationError otherwise.

    ``policy``, when given, is applied to hardware claims (measurement, TCB, VMPL, ...);
    software claims are judged by ``allow_insecure`` elsewhere and pass through.
    """
    if evidence.tee_type not in VERIFIERS:
        known = ", ".join(VERIFIERS.names())
        raise AttestationError(f"no verifier for TEE type {evidence.tee_type!r} (known: {known})")
    claims = VERIFIERS.get(evidence.tee_type).verify(evidence, ws, now)
    if claims.tee_type != evidence.tee_type:
        raise AttestationError(
            f"{evidence.tee_type} verifier returned claims for {claims.tee_type!r}"
        )
    if policy is not None and not claims.insecure:
        check_hardware_policy(claims, policy)
    return claims
