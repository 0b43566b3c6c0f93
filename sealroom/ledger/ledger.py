"""The append-only, hash-chained, signed ledger every other part of sealroom writes to."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sealroom.crypto.signing import SigningKey, b64
from sealroom.errors import LedgerError
from sealroom.ledger.entries import (
    Entry,
    Receipt,
    canonical_payload,
    compute_entry_hash,
    payload_digest,
    signed_message,
    utc_timestamp,
)
from sealroom.ledger.keys import load_or_create_ledger_key
from sealroom.ledger.repository import LedgerRepository, Row
from sealroom.ledger.verify import check_row, verify_chain

if TYPE_CHECKING:
    from sealroom.workspace import Workspace

KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$")


class Ledger:
    """Append entries, read them back, verify the chain. Safe across processes.

    Example::

        with Ledger.open(ws) as ledger:
            receipt = ledger.append("run.started", {"run_id": "r1"})
            receipt.verify(ledger.public_key_b64)
    """

    def __init__(self, db_path: Path, key: SigningKey) -> None:
        self._key = key
        self._repo = LedgerRepository(db_path)

    @classmethod
    def open(cls, ws: Workspace) -> Ledger:
        return cls(ws.ledger_db, load_or_create_ledger_key(ws.keys))

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._repo.close()

    @property
    def public_key_b64(self) -> str:
        """The key auditors use to check receipts offline (``sealroom ledger public-key``)."""
        return self._key.public_b64

    def append(self, kind: str, payload: dict[str, Any]) -> Receipt:
        """Record one entry and return its signed receipt."""
        if not KIND_PATTERN.match(kind):
            raise LedgerError(f"ledger entry kind {kind!r} is not a dotted lower-case name")
        try:
            text = canonical_payload(payload)
        except Exception as exc:  # rfc8785 raises several types for non-JSON values
            raise LedgerError(f"ledger payload for {kind!r} is not JSON: {exc}") from None
        digest = payload_digest(text)

        def build(seq: int, prev_hash: str) -> Row:
            timestamp = utc_timestamp()
            entry_hash = compute_entry_hash(seq, kind, timestamp, prev_hash, digest)
            signature = b64(self._key.sign(signed_message(entry_hash)))
            return Row(seq, kind, text, timestamp, prev_hash, entry_hash, signature)

        row = self._repo.append(build)
        return Receipt(
            seq=row.seq,
            kind=row.kind,
            timestamp=row.timestamp,
            prev_hash=row.prev_hash,
            payload_sha256=digest,
            entry_hash=row.entry_hash,
            signature=row.signature,
        )

    def entries(self, kind: str | None = None) -> list[Entry]:
        """Entries in seq order, optionally of one kind (not verified: call verify() for that)."""
        return [_entry(row) for row in self._repo.rows(kind)]

    def find(self, kind: str, **match: Any) -> list[Entry]:
        """Entries of ``kind`` whose payload has every given key equal to the given value.

        Each entry returned is checked on its own (hash and signature) so callers never act
        on an edited row; call verify() to also catch deleted or reordered ones.
        """
        found = []
        for row in self._repo.rows(kind):
            entry = _entry(row)
            if all(k in entry.payload and entry.payload[k] == v for k, v in match.items()):
                check_row(row, self.public_key_b64)
                found.append(entry)
        return found

    def get(self, seq: int) -> Entry | None:
        row = self._repo.row(seq)
        return _entry(row) if row else None

    def contains(self, receipt: Receipt) -> bool:
        """Whether this ledger holds the entry a receipt speaks for (same seq and hash)."""
        row = self._repo.row(receipt.seq)
        return row is not None and row.entry_hash == receipt.entry_hash

    def verify(self) -> int:
        """Walk the whole chain; return the number of entries or raise ChainBroken(seq)."""
        rows, head = self._repo.snapshot()
        return verify_chain(rows, head, self.public_key_b64)

    def __len__(self) -> int:
        head = self._repo.head()
        return head.seq if head else 0


def _entry(row: Row) -> Entry:
    try:
        payload = json.loads(row.payload)
    except ValueError:
        payload = {"_unreadable": row.payload}
    if not isinstance(payload, dict):
        payload = {"_unreadable": row.payload}
    return Entry(
        seq=row.seq,
        kind=row.kind,
        payload=payload,
        timestamp=row.timestamp,
        prev_hash=row.prev_hash,
        entry_hash=row.entry_hash,
        signature=row.signature,
    )
