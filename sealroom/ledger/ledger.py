"""The append-only, hash-chained, signed ledger every other part of sealroom writes to."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from sealroom.crypto.signing import SigningKey, b64
from sealroom.errors import LedgerError
from sealroom.ledger.entries import (
    Entry,
    Receipt,
    canonical_payload,
    compute_entry_hash,
    head_message,
    payload_digest,
    signed_message,
    utc_timestamp,
)
from sealroom.ledger.errors import ChainBroken, NotInLedger
from sealroom.ledger.keys import load_or_create_ledger_key
from sealroom.ledger.pins import HeadPin
from sealroom.ledger.repository import Head, LedgerRepository, Row
from sealroom.ledger.verify import check_row, verify_chain, verify_links

if TYPE_CHECKING:
    from sealroom.ledger.verify import ChainStatus
    from sealroom.workspace import Workspace

KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$")


class LedgerView:
    """Read and verify a ledger with nothing but its public key (an auditor's copy).

    Example::

        with LedgerView.open_copy(Path("ledger.db"), public_key) as view:
            view.verify(expect=parse_pin("7:3f2a..."))
    """

    def __init__(self, repo: LedgerRepository, public_key_b64: str) -> None:
        self._repo = repo
        self._public = public_key_b64

    @classmethod
    def open_copy(cls, db_path: Path, public_key_b64: str) -> LedgerView:
        """Open an existing ledger database read-only; nothing is created or migrated."""
        return cls(LedgerRepository(db_path, readonly=True), public_key_b64)

    def __enter__(self) -> Self:
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
    def path(self) -> Path:
        return self._repo.path

    @property
    def public_key_b64(self) -> str:
        """The key auditors use to check receipts offline (``sealroom ledger public-key``)."""
        return self._public

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

    def newest(self, offset: int = 0, limit: int = 100, kind: str | None = None) -> list[Entry]:
        """A page of entries, newest first (not verified: see status())."""
        return [_entry(row) for row in self._repo.newest(kind, offset, limit)]

    def count(self, kind: str | None = None, after: int = 0) -> int:
        """How many entries (of ``kind``) have a seq above ``after``."""
        return self._repo.count(kind, after)

    def kinds(self) -> dict[str, int]:
        """Entry kinds present, with their counts."""
        return self._repo.kinds()

    def row_problem(self, seq: int) -> str | None:
        """Why entry ``seq`` on its own (payload, hash, ledger signature) does not verify;
        None when it does or is absent."""
        row = self._repo.row(seq)
        if row is None:
            return None
        try:
            check_row(row, self.public_key_b64)
        except ChainBroken as exc:
            return str(exc)
        return None

    def head(self) -> Head | None:
        """The recorded head (seq, hash, head signature), not verified."""
        return self._repo.head()

    def get(self, seq: int) -> Entry | None:
        row = self._repo.row(seq)
        return _entry(row) if row else None

    def contains(self, receipt: Receipt) -> bool:
        """Whether this ledger holds the entry a receipt speaks for (same seq and hash)."""
        row = self._repo.row(receipt.seq)
        return row is not None and row.entry_hash == receipt.entry_hash

    def verify(self, expect: HeadPin | None = None) -> int:
        """Walk the whole chain; return the number of entries or raise ChainBroken(seq).

        With ``expect`` the ledger must also hold that entry (NotInLedger otherwise): a longer
        ledger is fine, a shorter, replaced or forked one is not.
        """
        return len(self._verified_rows(expect))

    def verify_links(self) -> int:
        """verify() by hashes and the head's signature only (sealroom.ledger.verify.verify_links):
        as binding, much cheaper on a long ledger; ChainBroken(seq) the same way."""
        rows, head = self._repo.snapshot()
        return verify_links(rows, head, self.public_key_b64)

    def verified_head(self, expect: HeadPin | None = None) -> HeadPin | None:
        """verify(), then the head to pin (``sealroom ledger head``); None when empty."""
        rows = self._verified_rows(expect)
        return HeadPin(rows[-1].seq, rows[-1].entry_hash) if rows else None

    def _verified_rows(self, expect: HeadPin | None) -> list[Row]:
        rows, head = self._repo.snapshot()
        verify_chain(rows, head, self.public_key_b64)
        if expect is not None:
            _require(rows, expect, self.path)
        return rows

    def check_entry(self, pin: HeadPin) -> Entry:
        """The entry ``pin`` names, once the chain from entry 1 up to it verifies.

        NotInLedger when this ledger does not hold it (a receipt from before a rollback, an
        empty replacement ledger, a fork); ChainBroken when the entries before it do not verify.
        """
        rows, _ = self._repo.snapshot()
        row = _require(rows, pin, self.path)
        prefix = [r for r in rows if r.seq <= pin.seq]
        verify_chain(prefix, Head(pin.seq, pin.entry_hash), self.public_key_b64, signed_head=False)
        return _entry(row)

    def __len__(self) -> int:
        head = self._repo.head()
        return head.seq if head else 0

    def snapshot(self) -> tuple[list[Row], Head | None]:
        """Every row as stored and the head, read in one transaction (not verified)."""
        return self._repo.snapshot()

    def status(self) -> ChainStatus:
        """The whole chain walked like verify(), but the first bad entry is reported, not
        raised: a viewer shows every entry and marks that one and those after it."""
        from sealroom.ledger.verify import chain_status  # beside verify_chain, for a viewer

        rows, head = self._repo.snapshot()
        return chain_status(rows, head, self.public_key_b64)


class Ledger(LedgerView):
    """Append entries, read them back, verify the chain. Safe across processes.

    Example::

        with Ledger.open(ws) as ledger:
            receipt = ledger.append("run.started", {"run_id": "r1"})
            receipt.verify(ledger.public_key_b64)
    """

    def __init__(self, db_path: Path, key: SigningKey) -> None:
        super().__init__(LedgerRepository(db_path), key.public_b64)
        self._key = key
        if self._repo.migrated_from in (1, 2):  # written before heads were signed
            self._repo.sign_head(lambda head: self._sign_head(head.seq, head.entry_hash))

    def _sign_head(self, seq: int, entry_hash: str) -> str:
        return b64(self._key.sign(head_message(seq, entry_hash)))

    @classmethod
    def open(cls, ws: Workspace) -> Ledger:
        return cls(ws.ledger_db, load_or_create_ledger_key(ws.keys))

    def append(self, kind: str, payload: dict[str, Any]) -> Receipt:
        """Record one entry and return its signed receipt."""
        if not KIND_PATTERN.match(kind):
            raise LedgerError(f"ledger entry kind {kind!r} is not a dotted lower-case name")
        try:
            text = canonical_payload(payload)
        except Exception as exc:  # rfc8785 raises several types for non-JSON values
            raise LedgerError(f"ledger payload for {kind!r} is not JSON: {exc}") from None
        digest = payload_digest(text)

        def build(seq: int, prev_hash: str) -> tuple[Row, str]:
            timestamp = utc_timestamp()
            entry_hash = compute_entry_hash(seq, kind, timestamp, prev_hash, digest)
            signature = b64(self._key.sign(signed_message(entry_hash)))
            row = Row(seq, kind, text, timestamp, prev_hash, entry_hash, signature)
            return row, self._sign_head(seq, entry_hash)

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


def _require(rows: list[Row], pin: HeadPin, path: Path) -> Row:
    """The row ``pin`` names, or NotInLedger saying why not."""
    row = next((r for r in rows if r.seq == pin.seq), None)
    if row is None:
        raise NotInLedger(
            pin.seq,
            f"ledger entry {pin.seq} is not in the ledger at {path} "
            "(rolled back or another ledger)",
        )
    if row.entry_hash != pin.entry_hash:
        raise NotInLedger(
            pin.seq,
            f"ledger entry {pin.seq} in the ledger at {path} has hash {row.entry_hash[:16]}…, "
            f"not {pin.entry_hash[:16]}… (rolled back and rewritten, forked, or another ledger)",
        )
    return row


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
