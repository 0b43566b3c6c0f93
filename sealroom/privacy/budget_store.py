"""The budget database: numbered migrations, WAL, and opening safely when processes race.

Same shape as the ledger's repository: ``PRAGMA user_version`` records the last migration
applied; add one by appending to ``MIGRATIONS`` and never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sealroom.errors import LedgerError

BUSY_TIMEOUT_S = 60.0
T = TypeVar("T")

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the terms of each (contract, dataset) budget and one row per run and dataset.
    (
        """CREATE TABLE budgets (
            contract_id TEXT NOT NULL,
            dataset_id TEXT NOT NULL,
            per_run_epsilon REAL NOT NULL,
            per_run_delta REAL NOT NULL,
            total_epsilon REAL NOT NULL,
            total_delta REAL NOT NULL,
            PRIMARY KEY (contract_id, dataset_id)
        )""",
        """CREATE TABLE charges (
            run_id TEXT NOT NULL,
            contract_id TEXT NOT NULL,
            dataset_id TEXT NOT NULL,
            reserved_epsilon REAL NOT NULL,
            reserved_delta REAL NOT NULL,
            spent_epsilon REAL,
            spent_delta REAL,
            state TEXT NOT NULL CHECK (state IN ('reserved', 'charged', 'released')),
            seq INTEGER NOT NULL,
            PRIMARY KEY (run_id, contract_id, dataset_id)
        )""",
        "CREATE INDEX charges_dataset ON charges(contract_id, dataset_id)",
    ),
)


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def when_unlocked(open_: Callable[[], T]) -> T:
    """Retry opening while another process holds the lock a new database's setup needs.

    Switching a fresh database to WAL takes an exclusive lock that SQLite does not wait
    for (no busy handler), so processes opening a new workspace at once see "locked".
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            return open_()
        except (sqlite3.OperationalError, LedgerError) as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def migrate(conn: sqlite3.Connection) -> None:
    if int(conn.execute("PRAGMA user_version").fetchone()[0]) == len(MIGRATIONS):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        for number, statements in enumerate(MIGRATIONS[current:], start=current + 1):
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number:d}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def used(conn: sqlite3.Connection, contract_id: str, dataset_id: str) -> tuple[float, float]:
    """ε and δ spent or held by open reservations (what a new run cannot have)."""
    row = conn.execute(
        "SELECT COALESCE(SUM(CASE state WHEN 'reserved' THEN reserved_epsilon "
        "ELSE spent_epsilon END), 0), "
        "COALESCE(SUM(CASE state WHEN 'reserved' THEN reserved_delta ELSE spent_delta END), 0) "
        "FROM charges WHERE contract_id = ? AND dataset_id = ?",
        (contract_id, dataset_id),
    ).fetchone()
    return float(row[0]), float(row[1])
