"""Hardware TEE verification slots that refuse until a real verifier is registered.

The attester for SEV-SNP and TDX guests lives in :mod:`sealroom.attest.tsm` (configfs-tsm).
"""

from __future__ import annotations

from datetime import datetime

from sealroom.attest.evidence import Claims, Evidence
from sealroom.errors import AttestationError
from sealroom.workspace import Workspace


class UnavailableVerifier:
    """A registered TEE type whose verification this build cannot do: always refuses."""

    def __init__(self, tee_type: str, label: str) -> None:
        self.tee_type = tee_type
        self.label = label

    def verify(self, evidence: Evidence, ws: Workspace, now: datetime | None = None) -> Claims:
        raise AttestationError(f"{self.label} verification is not available on this host")
