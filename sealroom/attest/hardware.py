"""Hardware TEEs through Linux configfs-tsm: a real attester, and verifiers that refuse.

``/sys/kernel/config/tsm/report`` gives one interface to SEV-SNP and TDX guests: write 64
bytes of report data to ``inblob``, read the signed report from ``outblob``. Verifying such a
report needs the vendor's certificate chain (AMD VCEK / Intel PCS) and collateral this host
does not have, so the verifiers registered here refuse plainly instead of pretending.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

from sealroom.attest.evidence import REPORT_DATA_SIZE, Claims, Evidence
from sealroom.errors import AttestationError
from sealroom.workspace import Workspace

TSM_REPORT_DIR = Path("/sys/kernel/config/tsm/report")
# configfs-tsm provider names -> sealroom TEE types
PROVIDERS = {"sev_guest": "sev-snp", "tdx_guest": "tdx"}


class ConfigfsTsmAttester:
    """Asks the kernel for a SEV-SNP or TDX report binding ``report_data``."""

    def __init__(self, root: Path = TSM_REPORT_DIR) -> None:
        if not root.is_dir():
            raise AttestationError(f"no configfs-tsm report interface at {root}: not a TEE guest")
        self.root = root
        self.tee_type = "unknown"

    def attest(self, report_data: bytes) -> Evidence:
        if len(report_data) != REPORT_DATA_SIZE:
            raise AttestationError(f"report data must be {REPORT_DATA_SIZE} bytes")
        entry = Path(tempfile.mkdtemp(dir=self.root, prefix="sealroom-"))
        try:
            (entry / "inblob").write_bytes(report_data)
            report = (entry / "outblob").read_bytes()
            provider = (entry / "provider").read_text().strip()
            certs = entry / "auxblob"
            chain = certs.read_bytes().decode("ascii", "replace") if certs.exists() else ""
        except OSError as exc:
            raise AttestationError(f"configfs-tsm report failed in {entry}: {exc}") from None
        finally:
            entry.rmdir()
        self.tee_type = PROVIDERS.get(provider, provider)
        return Evidence(
            tee_type=self.tee_type,
            payload=report,
            certificates=[chain] if chain else [],
        )


class UnavailableVerifier:
    """A registered TEE type whose verification this build cannot do: always refuses."""

    def __init__(self, tee_type: str, label: str) -> None:
        self.tee_type = tee_type
        self.label = label

    def verify(self, evidence: Evidence, ws: Workspace, now: datetime | None = None) -> Claims:
        raise AttestationError(f"{self.label} verification is not available on this host")
