"""Ledger entries and receipts, and the hash that chains them.

entry_hash = SHA-256(RFC 8785 JSON of {domain, seq, kind, timestamp, prev_hash, payload_sha256})
and the ledger key signs ``"<domain>:<entry_hash>"``. Because the hash covers the payload's
digest rather than the payload, a receipt (without the payload) is enough to check the
signature offline, and the payload an auditor holds can then be matched to the digest.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import rfc8785
from pydantic import BaseModel, ConfigDict

from sealroom.crypto.signing import unb64, verify_signature
from sealroom.errors import SignatureError
from sealroom.ledger.errors import ReceiptInvalid

DOMAIN = "sealroom.ledger.entry.v1"
HEAD_DOMAIN = "sealroom.ledger.head.v1"
GENESIS_HASH = "0" * 64


def canonical_payload(payload: dict[str, Any]) -> str:
    """The payload as stored and hashed: RFC 8785 JSON text."""
    return rfc8785.dumps(payload).decode("utf-8")


def payload_digest(payload_json: str) -> str:
    return hashlib.sha256(payload_json.encode("utf-8")).hexdigest()


def utc_timestamp(now: datetime | None = None) -> str:
    """ISO 8601 UTC with microseconds, e.g. ``2026-11-23T07:46:01.123456Z``."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def compute_entry_hash(
    seq: int, kind: str, timestamp: str, prev_hash: str, payload_sha256: str
) -> str:
    body: dict[str, Any] = {
        "domain": DOMAIN,
        "seq": seq,
        "kind": kind,
        "timestamp": timestamp,
        "prev_hash": prev_hash,
        "payload_sha256": payload_sha256,
    }
    return hashlib.sha256(rfc8785.dumps(body)).hexdigest()


def signed_message(entry_hash: str) -> bytes:
    """The bytes the ledger key signs for one entry (domain-separated)."""
    return f"{DOMAIN}:{entry_hash}".encode("ascii")


def head_message(seq: int, entry_hash: str) -> bytes:
    """The bytes the ledger key signs for its head pointer (a domain of its own, so an entry's
    signature never doubles as a head's)."""
    return f"{HEAD_DOMAIN}:{seq:d}:{entry_hash}".encode("ascii")


class Receipt(BaseModel):
    """Proof that the ledger recorded an entry; verifiable offline with the ledger public key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int
    kind: str
    timestamp: str
    prev_hash: str
    payload_sha256: str
    entry_hash: str
    signature: str  # base64 Ed25519 signature by the ledger key over signed_message(entry_hash)

    def verify(self, ledger_public_key_b64: str) -> None:
        """Raise ReceiptInvalid unless the hash matches the fields and the ledger signed it."""
        expected = compute_entry_hash(
            self.seq, self.kind, self.timestamp, self.prev_hash, self.payload_sha256
        )
        if expected != self.entry_hash:
            raise ReceiptInvalid(
                f"receipt for ledger entry {self.seq}: entry hash does not match its fields"
            )
        try:
            signature = unb64(self.signature, "receipt signature")
            verify_signature(
                ledger_public_key_b64, signature, signed_message(self.entry_hash), "ledger"
            )
        except SignatureError:
            raise ReceiptInvalid(
                f"receipt for ledger entry {self.seq}: signature does not verify "
                "with the ledger public key"
            ) from None

    def check_payload(self, payload: dict[str, Any]) -> None:
        """Raise ReceiptInvalid unless ``payload`` is the one this receipt's entry recorded."""
        if payload_digest(canonical_payload(payload)) != self.payload_sha256:
            raise ReceiptInvalid(
                f"receipt for ledger entry {self.seq}: payload does not match the recorded digest"
            )


class Entry(BaseModel):
    """One ledger entry as read back from the database."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int
    kind: str
    payload: dict[str, Any]
    timestamp: str
    prev_hash: str
    entry_hash: str
    signature: str

    @property
    def payload_sha256(self) -> str:
        return payload_digest(canonical_payload(self.payload))

    def receipt(self) -> Receipt:
        return Receipt(
            seq=self.seq,
            kind=self.kind,
            timestamp=self.timestamp,
            prev_hash=self.prev_hash,
            payload_sha256=self.payload_sha256,
            entry_hash=self.entry_hash,
            signature=self.signature,
        )
