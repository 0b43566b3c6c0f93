"""The budget database's schema (numbered migrations, applied by sealroom.sqlite_store) and
its one aggregate query. Add a migration by appending to ``MIGRATIONS``; never edit one
that has shipped.
"""

from __future__ import annotations

import sqlite3

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
