"""Numbered schema migrations of the ledger database, applied in order inside one transaction.

``PRAGMA user_version`` records the last migration applied. Add a migration by appending to
``MIGRATIONS``; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the entries and the head pointer (the last seq and hash, so a deleted tail shows).
    (
        """CREATE TABLE entries (
            seq INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            timestamp TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            entry_hash TEXT NOT NULL,
            signature TEXT NOT NULL
        )""",
        "CREATE INDEX entries_kind ON entries(kind)",
        """CREATE TABLE head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq INTEGER NOT NULL,
            entry_hash TEXT NOT NULL
        )""",
    ),
    # 2: append-only at the database level too (a determined editor can drop these; the
    # hash chain and signatures are what catch them).
    (
        """CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
           BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END""",
        """CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
           BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END""",
    ),
)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; safe when several processes open a new ledger at once."""
    if schema_version(conn) == len(MIGRATIONS):
        return len(MIGRATIONS)
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)  # re-read under the write lock
        for number, statements in enumerate(MIGRATIONS[current:], start=current + 1):
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number:d}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)
