"""The ledger's SQLite repository: WAL mode, schema migrations, one writer at a time.

Appends run under ``BEGIN IMMEDIATE`` so the read of the head and the insert of the next
entry happen under one write lock: concurrent processes queue up instead of forking the chain.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from sealroom.errors import LedgerError
from sealroom.ledger.entries import GENESIS_HASH
from sealroom.ledger.migrations import MIGRATIONS
from sealroom.sqlite_store import SqliteStore


class Row(NamedTuple):
    seq: int
    kind: str
    payload: str
    timestamp: str
    prev_hash: str
    entry_hash: str
    signature: str


class Head(NamedTuple):
    seq: int
    entry_hash: str
    signature: str | None = None  # the ledger's signature over head_message(seq, entry_hash)


# Spelled out in full (no string building) so every statement is a constant.
_INSERT = (
    "INSERT INTO entries (seq, kind, payload, timestamp, prev_hash, entry_hash, signature) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_ALL = (
    "SELECT seq, kind, payload, timestamp, prev_hash, entry_hash, signature "
    "FROM entries ORDER BY seq"
)
_SELECT_KIND = (
    "SELECT seq, kind, payload, timestamp, prev_hash, entry_hash, signature "
    "FROM entries WHERE kind = ? ORDER BY seq"
)
_SELECT_SEQ = (
    "SELECT seq, kind, payload, timestamp, prev_hash, entry_hash, signature "
    "FROM entries WHERE seq = ?"
)
_SELECT_NEWEST = (
    "SELECT seq, kind, payload, timestamp, prev_hash, entry_hash, signature "
    "FROM entries WHERE ? IS NULL OR kind = ? ORDER BY seq DESC LIMIT ? OFFSET ?"
)
_COUNT = "SELECT COUNT(*) FROM entries WHERE (? IS NULL OR kind = ?) AND seq > ?"
_KINDS = "SELECT kind, COUNT(*) FROM entries GROUP BY kind ORDER BY kind"
_UPSERT_HEAD = (
    "INSERT INTO head (id, seq, entry_hash, signature) VALUES (1, ?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, entry_hash = excluded.entry_hash, "
    "signature = excluded.signature"
)
_SIGN_HEAD = "UPDATE head SET signature = ? WHERE id = 1 AND seq = ? AND entry_hash = ?"


class LedgerRepository:
    """Rows in, rows out; hashing and signing live in :mod:`sealroom.ledger.ledger`."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        self._store = SqliteStore(
            path, MIGRATIONS, LedgerError, "ledger database", readonly=readonly
        )
        self._transaction = self._store.transaction

    def close(self) -> None:
        self._store.close()

    @property
    def migrated_from(self) -> int:
        """The schema version the database had when this process opened it."""
        return self._store.migrated_from

    def append(self, build: Callable[[int, str], tuple[Row, str]]) -> Row:
        """Insert ``build(next_seq, prev_hash)`` (the entry and its head signature) as the next
        entry, atomically with the head."""
        with self._transaction("IMMEDIATE") as conn:
            head = _read_head(conn)
            seq, prev = (head.seq + 1, head.entry_hash) if head else (1, GENESIS_HASH)
            row, head_signature = build(seq, prev)
            conn.execute(_INSERT, row)
            conn.execute(_UPSERT_HEAD, (row.seq, row.entry_hash, head_signature))
            return row

    def sign_head(self, sign: Callable[[Head], str]) -> None:
        """Sign an unsigned head (a ledger written before heads were signed)."""
        with self._transaction("IMMEDIATE") as conn:
            head = _read_head(conn)
            if head is not None and head.signature is None:
                conn.execute(_SIGN_HEAD, (sign(head), head.seq, head.entry_hash))

    def snapshot(self) -> tuple[list[Row], Head | None]:
        """All rows in seq order and the head, read in one consistent transaction."""
        with self._transaction("DEFERRED") as conn:
            rows = [Row(*r) for r in conn.execute(_SELECT_ALL)]
            return rows, _read_head(conn)

    def rows(self, kind: str | None = None) -> list[Row]:
        with self._transaction("DEFERRED") as conn:
            if kind is None:
                cursor = conn.execute(_SELECT_ALL)
            else:
                cursor = conn.execute(_SELECT_KIND, (kind,))
            return [Row(*r) for r in cursor]

    def newest(self, kind: str | None, offset: int, limit: int) -> list[Row]:
        """One page of rows, newest first (optionally of one kind)."""
        with self._transaction("DEFERRED") as conn:
            cursor = conn.execute(_SELECT_NEWEST, (kind, kind, limit, offset))
            return [Row(*r) for r in cursor]

    def count(self, kind: str | None = None, after: int = 0) -> int:
        """Rows (of ``kind``) whose seq is above ``after``."""
        with self._transaction("DEFERRED") as conn:
            return int(conn.execute(_COUNT, (kind, kind, after)).fetchone()[0])

    def kinds(self) -> dict[str, int]:
        """Each entry kind present and how many entries it has."""
        with self._transaction("DEFERRED") as conn:
            return {str(k): int(n) for k, n in conn.execute(_KINDS)}

    def row(self, seq: int) -> Row | None:
        with self._transaction("DEFERRED") as conn:
            found = conn.execute(_SELECT_SEQ, (seq,)).fetchone()
        return Row(*found) if found else None

    def head(self) -> Head | None:
        with self._transaction("DEFERRED") as conn:
            return _read_head(conn)


def _read_head(conn: sqlite3.Connection) -> Head | None:
    # SELECT * so that a read-only copy from before migration 3 (no signature column) reads too.
    cursor = conn.execute("SELECT * FROM head WHERE id = 1")
    found = cursor.fetchone()
    if found is None:
        return None
    values = dict(zip([c[0] for c in cursor.description], found, strict=True))
    signature = values.get("signature")
    return Head(int(values["seq"]), str(values["entry_hash"]), signature)
