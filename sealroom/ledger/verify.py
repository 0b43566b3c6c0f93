"""Walk the hash chain and name the first entry that was edited, deleted, reordered or forged."""

from __future__ import annotations

import json
from typing import NamedTuple

from sealroom.crypto.signing import unb64, verify_signature
from sealroom.errors import SignatureError
from sealroom.ledger.entries import (
    GENESIS_HASH,
    canonical_payload,
    compute_entry_hash,
    head_message,
    payload_digest,
    signed_message,
)
from sealroom.ledger.errors import ChainBroken
from sealroom.ledger.repository import Head, Row


def check_row(row: Row, public_key_b64: str, signature: bool = True) -> None:
    """One entry on its own: canonical payload, hash over its fields, ledger signature
    (``signature`` False: the first two only)."""
    try:
        payload = json.loads(row.payload)
        canonical = isinstance(payload, dict) and canonical_payload(payload) == row.payload
    except (ValueError, TypeError):
        canonical = False
    if not canonical:
        raise ChainBroken(row.seq, "was edited: its payload is not the canonical JSON recorded")
    expected = compute_entry_hash(
        row.seq, row.kind, row.timestamp, row.prev_hash, payload_digest(row.payload)
    )
    if expected != row.entry_hash:
        raise ChainBroken(row.seq, "was edited: its hash does not match its contents")
    if not signature:
        return
    try:
        signed = unb64(row.signature, "ledger signature")
        verify_signature(public_key_b64, signed, signed_message(row.entry_hash), "ledger")
    except SignatureError:
        raise ChainBroken(row.seq, "has a signature that does not verify (ledger key)") from None


def verify_chain(
    rows: list[Row],
    head: Head | None,
    public_key_b64: str,
    signed_head: bool = True,
    trusted: int = 0,
    row_signatures: bool = True,
) -> int:
    """Check every entry in seq order; return how many there are or raise ChainBroken.

    ``signed_head`` False checks a prefix against an entry pinned elsewhere (a receipt) rather
    than against the ledger's own head pointer. ``trusted``: the first rows were checked
    before and the caller made sure they are byte for byte the same, so only their order and
    links are walked again (a reader that re-verifies a growing ledger). ``row_signatures``
    False checks each entry's hash but not its signature (see :func:`verify_links`).
    """
    prev_hash = GENESIS_HASH
    expected_seq = 1
    for row in rows:
        if row.seq > expected_seq:
            raise ChainBroken(expected_seq, "is missing (deleted)")
        if row.seq < expected_seq:  # cannot happen with seq as primary key; kept for safety
            raise ChainBroken(row.seq, "appears twice")
        if row.prev_hash != prev_hash:
            raise ChainBroken(row.seq, "does not link to the entry before it (reordered/inserted)")
        if expected_seq > trusted:
            check_row(row, public_key_b64, signature=row_signatures)
        prev_hash = row.entry_hash
        expected_seq += 1
    last = expected_seq - 1
    head_seq = head.seq if head else 0
    if head_seq > last:
        raise ChainBroken(last + 1, "is missing (deleted from the end)")
    if head_seq < last:
        raise ChainBroken(head_seq + 1, "was not appended by the ledger (beyond its recorded head)")
    if head is not None and head.entry_hash != prev_hash:
        raise ChainBroken(last, "does not match the ledger's recorded head hash")
    if head is not None and signed_head:
        _check_head_signature(head, public_key_b64)
    return last


def verify_links(rows: list[Row], head: Head | None, public_key_b64: str) -> int:
    """The chain checked by its hashes and ONE signature, the head's; ChainBroken as verify_chain.

    Each entry's hash is recomputed over its fields and the digest of its stored payload
    text, and must be the next entry's ``prev_hash``; the head the ledger key signed must be
    the last. Given SHA-256 this binds every entry as firmly as checking each signature
    (changing one entry changes every later hash, up to the signed head) at a fraction of
    the cost: a page over a long ledger checks signatures only of the entries it shows.
    """
    return verify_chain(rows, head, public_key_b64, row_signatures=False)


def _check_head_signature(head: Head, public_key_b64: str) -> None:
    """A head moved back over a deleted tail needs the ledger key to be signed again."""
    reason = "is the recorded head, but the head is not signed by the ledger key (rolled back?)"
    if head.signature is None:
        raise ChainBroken(head.seq, reason)
    try:
        signature = unb64(head.signature, "head signature")
        verify_signature(
            public_key_b64, signature, head_message(head.seq, head.entry_hash), "ledger"
        )
    except SignatureError:
        raise ChainBroken(head.seq, reason) from None


class ChainStatus(NamedTuple):
    """What a walk of the chain found, for a reader that shows rather than refuses (the
    dashboard): ``first_bad`` None means every entry and the signed head verify; otherwise
    it is the first bad sequence number (entries from it on are untrusted) and ``reason``
    says why, as ChainBroken words it."""

    entries: int
    first_bad: int | None = None
    reason: str | None = None

    @property
    def verified(self) -> bool:
        return self.first_bad is None


def chain_status(
    rows: list[Row], head: Head | None, public_key_b64: str, trusted: int = 0
) -> ChainStatus:
    """verify_chain() that reports the first failing entry instead of raising."""
    try:
        return ChainStatus(verify_chain(rows, head, public_key_b64, trusted=trusted))
    except ChainBroken as exc:
        return ChainStatus(len(rows), exc.seq, str(exc))
