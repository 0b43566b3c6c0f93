"""A stand-in hardware TEE for tests of what sits above the verifiers (key release, CLI,
inference client): the "report" is the claims as JSON, and the stub verifier returns them.

Never registered outside a test: :func:`install` patches ``VERIFIERS`` through pytest's
monkeypatch, so the real (or unavailable) verifier is back when the test ends.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from sealroom.attest.evidence import Claims, Evidence
from sealroom.attest.verifiers import VERIFIERS
from sealroom.workspace import Workspace

SNP_MEASUREMENT = "5a" * 48
TDX_MEASUREMENT = "7d" * 48
SNP_CLAIMS: dict[str, Any] = {
    "tee_type": "sev-snp",
    "measurement": SNP_MEASUREMENT,
    "insecure": False,
    "debug": False,
    "platform": "Milan",
    "signing_key": "vcek",
    "vmpl": 0,
    "tcb": {"bootloader": 3, "tee": 0, "snp": 14, "microcode": 209},
    "host_data": "00" * 32,
}
TDX_CLAIMS: dict[str, Any] = {
    "tee_type": "tdx",
    "measurement": TDX_MEASUREMENT,
    "insecure": False,
    "debug": False,
    "platform": "TDX",
    "signing_key": "pck",
    "tcb_status": "UpToDate",
    "advisory_ids": [],
    "rtmrs": ["11" * 48, "22" * 48, "33" * 48, "00" * 48],
}


class StubHardwareAttester:
    """Evidence of ``claims`` (overridden by keyword) binding the given report_data."""

    def __init__(self, claims: dict[str, Any] | None = None, **overrides: Any) -> None:
        self.claims = {**(claims or SNP_CLAIMS), **overrides}
        self.tee_type = str(self.claims["tee_type"])

    def attest(self, report_data: bytes) -> Evidence:
        body = {
            **self.claims,
            "report_data": base64.b64encode(report_data).decode(),
            "issued_at": datetime.now(UTC).isoformat(),
        }
        return Evidence(tee_type=self.tee_type, payload=json.dumps(body).encode())


class StubHardwareVerifier:
    """Trusts the payload: only for testing the layers that read verified Claims."""

    def __init__(self, tee_type: str) -> None:
        self.tee_type = tee_type

    def verify(self, evidence: Evidence, ws: Workspace, now: datetime | None = None) -> Claims:
        return Claims.model_validate_json(evidence.payload)


def install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the stub verifier for sev-snp and tdx for the current test only."""
    for tee_type in ("sev-snp", "tdx"):
        monkeypatch.setitem(VERIFIERS._entries, tee_type, StubHardwareVerifier(tee_type))
