"""The budget database's schema (numbered migrations, applied by sealroom.sqlite_store) and
its queries. Add a migration by appending to ``MIGRATIONS``; never edit one that has shipped.

A charge row moves ``reserved`` → ``consumed`` (a key was released to its run) → ``charged``
or ``released`` (settled); an open row (``reserved`` or ``consumed``) whose ``expires_at``
has passed belongs to a dead run and is charged in full.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from sealroom.ledger import Ledger

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
    # 2: reservations bound to time and to key release: when each was made, when it expires
    # (its contract's max_runtime_s later) and when a key was first released under it; a
    # new state 'consumed'. SQLite cannot alter a CHECK, so the table is rebuilt. Rows from
    # before this migration have no reservation time: open ones expire an hour (the default
    # max_runtime_s) after the upgrade.
    (
        "ALTER TABLE charges RENAME TO charges_v1",
        """CREATE TABLE charges (
            run_id TEXT NOT NULL,
            contract_id TEXT NOT NULL,
            dataset_id TEXT NOT NULL,
            reserved_epsilon REAL NOT NULL,
            reserved_delta REAL NOT NULL,
            spent_epsilon REAL,
            spent_delta REAL,
            state TEXT NOT NULL
                CHECK (state IN ('reserved', 'consumed', 'charged', 'released')),
            seq INTEGER NOT NULL,
            reserved_at REAL,
            expires_at REAL NOT NULL,
            key_released_at REAL,
            PRIMARY KEY (run_id, contract_id, dataset_id)
        )""",
        """INSERT INTO charges (run_id, contract_id, dataset_id, reserved_epsilon,
            reserved_delta, spent_epsilon, spent_delta, state, seq, reserved_at, expires_at)
           SELECT run_id, contract_id, dataset_id, reserved_epsilon, reserved_delta,
            spent_epsilon, spent_delta, state, seq, NULL,
            CAST(strftime('%s', 'now') AS REAL) + 3600
           FROM charges_v1""",
        "DROP TABLE charges_v1",
        "CREATE INDEX charges_dataset ON charges(contract_id, dataset_id)",
        "CREATE INDEX charges_open ON charges(state, expires_at)",
    ),
)

OPEN_STATES = ("reserved", "consumed")  # a reservation a run still holds


class RunCharge(NamedTuple):
    """One run's share of a dataset budget: ε reserved (open: ``reserved``, or ``consumed``
    once a key was released to the run) or spent (``charged``, ``released``)."""

    run_id: str
    epsilon: float
    state: str


@dataclass(frozen=True)
class DatasetBudget:
    """Where one dataset's budget under one contract stands."""

    dataset_id: str
    contract_id: str
    total_epsilon: float
    spent: float
    reserved: float
    remaining: float
    per_run_epsilon: float = 0.0
    total_delta: float = 0.0
    spent_delta: float = 0.0
    runs: list[RunCharge] = field(default_factory=list)


def summarize(
    conn: sqlite3.Connection, dataset_id: str | None = None, expired_by: float | None = None
) -> list[DatasetBudget]:
    """Every budget (or those of one dataset) as the rows stand. ``expired_by`` (a reader
    that may not write, so cannot run expire_open) counts an open reservation past its
    expiry as charged in full, as the next writer will."""
    budgets = conn.execute(
        "SELECT contract_id, dataset_id, per_run_epsilon, total_epsilon, total_delta "
        "FROM budgets WHERE ? IS NULL OR dataset_id = ? ORDER BY dataset_id, contract_id",
        (dataset_id, dataset_id),
    ).fetchall()
    out = []
    for contract_id, ds, per_run, total, total_delta in budgets:
        charges = conn.execute(
            "SELECT run_id, reserved_epsilon, reserved_delta, spent_epsilon, spent_delta, state, "
            "expires_at FROM charges WHERE contract_id = ? AND dataset_id = ? ORDER BY seq",
            (contract_id, ds),
        ).fetchall()
        runs, spent, reserved, spent_delta = [], 0.0, 0.0, 0.0
        for run_id, res_eps, res_delta, sp_eps, sp_delta, state, expires_at in charges:
            if state in OPEN_STATES and expired_by is not None and expires_at <= expired_by:
                state, sp_eps, sp_delta = "charged", res_eps, res_delta
            if state in OPEN_STATES:
                reserved += res_eps
                runs.append(RunCharge(run_id, res_eps, state))
            else:
                spent += sp_eps or 0.0
                spent_delta += sp_delta or 0.0
                runs.append(RunCharge(run_id, sp_eps or 0.0, state))
        out.append(
            DatasetBudget(
                dataset_id=ds,
                contract_id=contract_id,
                total_epsilon=total,
                spent=spent,
                reserved=reserved,
                remaining=max(total - spent - reserved, 0.0),
                per_run_epsilon=per_run,
                total_delta=total_delta,
                spent_delta=spent_delta,
                runs=runs,
            )
        )
    return out


def used(conn: sqlite3.Connection, contract_id: str, dataset_id: str) -> tuple[float, float]:
    """ε and δ spent or held by open reservations (what a new run cannot have)."""
    row = conn.execute(
        "SELECT COALESCE(SUM(CASE WHEN state IN ('reserved', 'consumed') THEN reserved_epsilon "
        "ELSE spent_epsilon END), 0), "
        "COALESCE(SUM(CASE WHEN state IN ('reserved', 'consumed') THEN reserved_delta "
        "ELSE spent_delta END), 0) "
        "FROM charges WHERE contract_id = ? AND dataset_id = ?",
        (contract_id, dataset_id),
    ).fetchone()
    return float(row[0]), float(row[1])


def expire_open(conn: sqlite3.Connection, ledger: Ledger, now: float) -> None:
    """Charge in full every open reservation past its ``expires_at`` (its contract's
    max_runtime_s after it was made): its run is dead (killed, or its operator was) and may
    have trained. One ``budget.charged`` entry per row, noting the expiry."""
    rows = conn.execute(
        "SELECT run_id, contract_id, dataset_id, reserved_epsilon, reserved_delta, expires_at "
        "FROM charges WHERE state IN (?, ?) AND expires_at <= ? ORDER BY seq",
        (*OPEN_STATES, now),
    ).fetchall()
    for run_id, contract_id, dataset_id, eps, delta, expires_at in rows:
        ledger.append(
            "budget.charged",
            {
                "run_id": run_id,
                "contract_id": contract_id,
                "dataset_id": dataset_id,
                "epsilon": eps,
                "delta": delta,
                "note": "expired: the run did not settle within the contract's max_runtime_s; "
                "charged in full",
                "expired_at": expires_at,
            },
        )
        conn.execute(
            "UPDATE charges SET spent_epsilon = reserved_epsilon, spent_delta = reserved_delta, "
            "state = 'charged' WHERE run_id = ? AND contract_id = ? AND dataset_id = ?",
            (run_id, contract_id, dataset_id),
        )


def consume_rows(
    conn: sqlite3.Connection,
    ledger: Ledger,
    run: tuple[str, str],
    datasets: list[str],
    now: float,
) -> None:
    """Mark ``run`` = (run id, contract id)'s reservations on ``datasets`` consumed (a key
    left for the run); one ``budget.consumed`` entry the first time."""
    run_id, contract_id = run
    fresh = [
        dataset_id
        for dataset_id in datasets
        if conn.execute(
            "UPDATE charges SET state = 'consumed', key_released_at = ? WHERE run_id = ? "
            "AND contract_id = ? AND dataset_id = ? AND state = 'reserved'",
            (now, run_id, contract_id, dataset_id),
        ).rowcount
    ]
    if fresh:
        ledger.append(
            "budget.consumed", {"run_id": run_id, "contract_id": contract_id, "datasets": fresh}
        )
