"""Typed evidence and claims: what an attester produces and what every verifier returns.

Evidence is TEE-specific (a signed claims document for the software attester, a hardware
report for SEV-SNP/TDX); Claims are normalised so that the key service never needs to know
which TEE produced them.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sealroom.crypto.signing import unb64
from sealroom.errors import AttestationError, SignatureError

REPORT_DATA_SIZE = 64


class _Bytes64(BaseModel):
    # bytes travel as base64 in JSON (HTTP bodies, receipts), raw in Python.
    model_config = ConfigDict(
        extra="forbid", frozen=True, ser_json_bytes="base64", val_json_bytes="base64"
    )


class Evidence(_Bytes64):
    """What an attester hands to a verifier: an opaque, TEE-specific signed report."""

    tee_type: str = Field(min_length=1, max_length=32)
    payload: bytes = Field(max_length=1 << 16)
    signature: bytes = Field(default=b"", max_length=1 << 12)
    signer: str = ""  # software attester: base64 Ed25519 public key that signed the payload
    # hardware: PEM certificates and CRLs the attester found (SEV-SNP: VCEK or VLEK, maybe
    # ASK/ASVK/ARK from the host's certificate table); never trusted as roots.
    certificates: list[str] = Field(default_factory=list, max_length=8)
    # hardware: vendor collateral as JSON text (TDX: dcap-qvl's QuoteCollateralV3 JSON).
    # Optional: the verifier falls back to the collateral cached in its workspace.
    collateral: str = Field(default="", max_length=1 << 16)


class Claims(_Bytes64):
    """Normalised attestation claims: the only thing a release policy looks at."""

    tee_type: str
    measurement: str = Field(pattern=r"^[0-9a-f]{64,96}$")
    insecure: bool
    debug: bool = False
    report_data: bytes
    issued_at: datetime
    # Hardware facts a release policy may constrain (empty for software evidence).
    platform: str = ""  # SEV-SNP: "Milan" / "Genoa" / "Turin"; TDX: "TDX"
    signing_key: str = ""  # "vcek" / "vlek" (SEV-SNP), "pck" (TDX)
    vmpl: int | None = None  # SEV-SNP: the VM privilege level that asked for the report
    tcb: dict[str, int] = Field(default_factory=dict)  # SEV-SNP: reported TCB by component
    host_data: str = ""  # SEV-SNP: hex of the 32 bytes the host bound at launch
    tcb_status: str = ""  # TDX: dcap-qvl's status ("UpToDate", "SWHardeningNeeded", ...)
    advisory_ids: list[str] = Field(default_factory=list)  # TDX: Intel advisories that apply
    rtmrs: list[str] = Field(default_factory=list)  # TDX: RTMR0..3 hex

    @field_validator("report_data")
    @classmethod
    def _report_data_size(cls, value: bytes) -> bytes:
        if len(value) != REPORT_DATA_SIZE:
            raise ValueError(f"report_data must be {REPORT_DATA_SIZE} bytes, got {len(value)}")
        return value


class Attester(Protocol):
    """Produces evidence binding ``report_data`` (64 bytes) to the running room."""

    tee_type: str

    def attest(self, report_data: bytes) -> Evidence: ...


def verification_time(now: datetime | None, label: str) -> datetime:
    """The moment a hardware verifier checks validity windows at: ``now``, else the clock.

    Vendor collateral expires, so a verifier is handed the time it judges at; a naive time
    would be read in the host's zone, so it is refused.
    """
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise AttestationError(f"{label} verification time must be timezone-aware (UTC)")
    return now


def raw_public_key(public_key_b64: str) -> bytes:
    """The 32 raw bytes of a base64 X25519 public key; AttestationError if malformed."""
    try:
        raw = unb64(public_key_b64, "ephemeral public key")
    except SignatureError as exc:
        raise AttestationError(str(exc)) from None
    if len(raw) != 32:
        raise AttestationError(f"ephemeral public key has {len(raw)} bytes, expected 32")
    return raw


def make_report_data(nonce: bytes, ephemeral_public_key_b64: str) -> bytes:
    """SHA-512(nonce || raw ephemeral public key): binds freshness and the key to the evidence."""
    return hashlib.sha512(nonce + raw_public_key(ephemeral_public_key_b64)).digest()


def binds(claims: Claims, nonce: bytes, ephemeral_public_key_b64: str) -> bool:
    """Whether verified claims carry exactly this nonce and key (constant-time compare);
    AttestationError if the key is malformed. Every evidence type is held to this rule."""
    expected = make_report_data(nonce, ephemeral_public_key_b64)
    return hmac.compare_digest(claims.report_data, expected)
