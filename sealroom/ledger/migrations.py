"""Numbered schema migrations of the ledger database (applied by sealroom.sqlite_store).

``PRAGMA user_version`` records the last migration applied. Add a migration by appending to
``MIGRATIONS``; never edit one that has shipped.
"""

from __future__ import annotations

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
    # 3: the head pointer carries the ledger's signature over (seq, entry hash), so that a head
    # "fixed up" after deleting the tail needs the ledger key (empty on ledgers from before:
    # the process that migrates them, holding the key, signs the head it finds).
    ("ALTER TABLE head ADD COLUMN signature TEXT",),
)
