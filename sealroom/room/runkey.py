"""The room's per-run key: generated in the room, bound into its evidence, signs its record.

A run record signed by this key proves that the room which produced the evidence wrote it:
report_data = SHA-512(domain || run id || 0 || raw Ed25519 public key), so the evidence
(signed by the TEE, or by the workspace's software attestation key) names exactly one key
for exactly one run. The ledger countersigns the whole record, room signature included.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from sealroom.attest.evidence import Claims, Evidence
from sealroom.crypto.signing import SigningKey, b64, unb64, verify_signature
from sealroom.errors import AttestationError, SignatureError
from sealroom.ledger.entries import canonical_payload

REPORT_DOMAIN = b"sealroom.room.run-key.v1\0"
RECORD_DOMAIN = b"sealroom.room.run-record.v1\0"
SIGNATURE_FIELD = "room_signature"
SOFTWARE = "software"


def room_report_data(run_id: str, public_key_b64: str) -> bytes:
    """The 64 bytes a room's evidence carries for its run key (domain-separated SHA-512)."""
    try:
        raw = unb64(public_key_b64, "room public key")
    except SignatureError as exc:
        raise AttestationError(str(exc)) from None
    if len(raw) != 32:
        raise AttestationError(f"room public key has {len(raw)} bytes, expected 32")
    return hashlib.sha512(REPORT_DOMAIN + run_id.encode("utf-8") + b"\0" + raw).digest()


def record_message(payload: dict[str, Any]) -> bytes:
    """What the room key signs: the record's canonical JSON without the signature itself."""
    unsigned = {k: v for k, v in payload.items() if k != SIGNATURE_FIELD}
    return RECORD_DOMAIN + canonical_payload(unsigned).encode("utf-8")


class RunKey:
    """An Ed25519 key that exists only in one room process for one run (never stored)."""

    def __init__(self) -> None:
        self._key = SigningKey.generate()

    @property
    def public_b64(self) -> str:
        return self._key.public_b64

    def sign_record(self, payload: dict[str, Any]) -> str:
        return b64(self._key.sign(record_message(payload)))


def evidence_claims(evidence: Evidence, now: datetime | None = None) -> Claims:
    """Claims of evidence checkable offline, without any workspace.

    Software evidence is checked against the key it names (self-consistent only: it is
    INSECURE whoever signed it). Hardware evidence goes to its TEE verifier with the vendor
    roots shipped in the package and the collateral the evidence carries, as of ``now``
    (a receipt is checked as of its run, since vendor collateral expires within weeks).
    """
    if evidence.tee_type != SOFTWARE:
        from sealroom.attest.verifiers import VERIFIERS

        if evidence.tee_type not in VERIFIERS:
            raise AttestationError(f"no verifier for TEE type {evidence.tee_type[:32]!r}")
        claims = VERIFIERS.get(evidence.tee_type).verify(evidence, None, now)
        if claims.tee_type != evidence.tee_type or claims.insecure:
            raise AttestationError(f"{evidence.tee_type} verifier returned foreign claims")
        return claims
    try:
        verify_signature(evidence.signer, evidence.signature, evidence.payload, "room evidence")
        claims = Claims.model_validate_json(evidence.payload)
    except SignatureError:
        raise AttestationError("room evidence signature does not verify") from None
    except ValidationError:
        raise AttestationError("room evidence claims are malformed") from None
    if claims.tee_type != SOFTWARE or not claims.insecure:
        raise AttestationError("software evidence must claim tee_type software and insecure")
    return claims


def check_room_signature(
    payload: dict[str, Any],
    run_id: str,
    room_key: str,
    evidence: Evidence,
    now: datetime | None = None,
) -> Claims:
    """AttestationError unless the room key signed ``payload`` and the evidence binds that key.

    ``now``: when the evidence must have been valid (hardware evidence; the run's start).
    """
    try:
        signature = unb64(str(payload.get(SIGNATURE_FIELD, "")), "room signature")
        verify_signature(room_key, signature, record_message(payload), "room")
    except SignatureError:
        raise AttestationError(
            f"run {run_id}: the room signature does not verify with the room key"
        ) from None
    claims = evidence_claims(evidence, now)
    if claims.report_data != room_report_data(run_id, room_key):
        raise AttestationError(
            f"run {run_id}: the room evidence does not bind this room key to this run"
        )
    return claims
