"""Privacy budgets that hold across runs: reserve before a run, settle after it.

``BudgetBook`` keeps one budget per (contract, dataset) in ``budget.db`` in the workspace of
whoever holds the dataset's key (the operator's for the embedded key service, the provider's
for a dataset with its own ``key_service``). ``reserve`` checks a run's ε and δ against each
private dataset's per-run limit and what is left of its total, and records the reservation
under the run's id, all inside one ``BEGIN IMMEDIATE`` transaction: concurrent runs (threads
or processes) queue on SQLite's write lock, so the sum of what is spent and reserved never
passes the total.

A reservation is bound to its run: a key goes only to the run whose reservation covers its
pipeline's (ε, δ) (:mod:`sealroom.privacy.budget_guard`); the first data key *consumes* it.
A reservation still open ``max_runtime_s`` (the contract's) after it was made belongs to a
dead run and is charged in full, lazily, by whichever call next opens the book. ``settle``
refuses more than was reserved, and after a key release it refunds nothing unless asked to
by the one caller who may (the embedded service's room channel). Every change is also a
ledger entry (``budget.reserved``, ``budget.consumed``, ``budget.charged``,
``budget.released``), appended while the budget transaction is open so the ledger and the
book cannot disagree.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from sealroom.errors import BudgetExceeded, PrivacyError
from sealroom.ledger import Ledger
from sealroom.privacy.budget_store import (
    MIGRATIONS,
    OPEN_STATES,
    DatasetBudget,
    RunCharge,
    consume_rows,
    expire_open,
    summarize,
    used,
)

__all__ = ["BUDGET_DB", "BudgetBook", "DatasetBudget", "RunCharge", "read_summary"]
from sealroom.sqlite_store import SqliteStore

if TYPE_CHECKING:
    from sealroom.contract.schema import Contract, DatasetPrivacy
    from sealroom.workspace import Workspace

BUDGET_DB = "budget.db"
SLACK = 1e-9  # float noise allowed when comparing sums of ε against a limit


class BudgetBook:
    """Reserve, settle and summarise privacy budgets; safe across threads and processes.

    ``clock`` (seconds since the epoch) decides when a dead run's reservation expires.

    Example::

        with BudgetBook(ws) as book:
            book.reserve("run-1", contract, epsilon=3.0, delta=1e-5)
            ...  # the key service releases keys to run-1 only; the trainer stops at ε 3.0
            book.settle("run-1", spent_epsilon=2.97)
    """

    def __init__(self, ws: Workspace, clock: Callable[[], float] = time.time) -> None:
        self.path = ws.home / BUDGET_DB
        self._clock = clock
        self._ledger = Ledger.open(ws)
        try:
            self._store = SqliteStore(self.path, MIGRATIONS, PrivacyError, "budget database")
        except BaseException:
            self._ledger.close()
            raise
        self._transaction = self._store.transaction

    def __enter__(self) -> BudgetBook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._store.close()
        self._ledger.close()

    # ------------------------------------------------------------------ reserve / settle

    def reserve(
        self,
        run_id: str,
        contract: Contract,
        epsilon: float,
        delta: float,
        datasets: Collection[str] | None = None,
    ) -> list[str]:
        """Reserve (ε, δ) for ``run_id`` on every private dataset of ``contract`` (or on those
        of them named in ``datasets``: the ones whose budget this book keeps), or on none.

        The reservation expires (is charged in full) ``max_runtime_s`` from now. Returns the
        datasets reserved on. Raises BudgetExceeded naming the dataset and the limit a run
        would pass, PrivacyError if the run already has a reservation.
        """
        if not (epsilon >= 0 and delta >= 0):  # NaN fails too
            raise PrivacyError(f"run {run_id}: ε and δ to reserve must be ≥ 0")
        private = [
            (d.id, d.privacy)
            for d in contract.datasets
            if d.privacy is not None and (datasets is None or d.id in datasets)
        ]
        if not private:
            return []
        now = self._clock()
        max_runtime_s = contract.constraints.max_runtime_s
        with self._transaction("IMMEDIATE") as conn:
            expire_open(conn, self._ledger, now)
            taken = conn.execute(
                "SELECT 1 FROM charges WHERE run_id = ? AND contract_id = ?", (run_id, contract.id)
            ).fetchone()
            if taken:
                raise PrivacyError(f"run {run_id} already has a budget reservation")
            for dataset_id, terms in private:
                self._check(conn, contract.id, dataset_id, terms, epsilon, delta)
            receipt = self._ledger.append(
                "budget.reserved",
                {
                    "run_id": run_id,
                    "contract_id": contract.id,
                    "datasets": [dataset_id for dataset_id, _ in private],
                    "epsilon": epsilon,
                    "delta": delta,
                    "max_runtime_s": max_runtime_s,
                },
            )
            for dataset_id, _ in private:
                conn.execute(
                    "INSERT INTO charges (run_id, contract_id, dataset_id, reserved_epsilon, "
                    "reserved_delta, state, seq, reserved_at, expires_at) "
                    "VALUES (?, ?, ?, ?, ?, 'reserved', ?, ?, ?)",
                    (
                        run_id,
                        contract.id,
                        dataset_id,
                        epsilon,
                        delta,
                        receipt.seq,
                        now,
                        now + max_runtime_s,
                    ),
                )
        return [dataset_id for dataset_id, _ in private]

    def _check(
        self,
        conn: sqlite3.Connection,
        contract_id: str,
        dataset_id: str,
        terms: DatasetPrivacy,
        epsilon: float,
        delta: float,
    ) -> None:
        where = f"dataset {dataset_id}"
        if epsilon > terms.per_run_epsilon + SLACK:
            raise BudgetExceeded(
                f"run would spend ε {epsilon:g} on {where}; per-run limit is "
                f"{terms.per_run_epsilon:g}"
            )
        if delta > terms.per_run_delta + SLACK * terms.per_run_delta:
            raise BudgetExceeded(
                f"run would spend δ {delta:g} on {where}; per-run limit is {terms.per_run_delta:g}"
            )
        conn.execute(
            "INSERT OR IGNORE INTO budgets VALUES (?, ?, ?, ?, ?, ?)",
            (
                contract_id,
                dataset_id,
                terms.per_run_epsilon,
                terms.per_run_delta,
                terms.total_epsilon,
                terms.total_delta,
            ),
        )
        used_eps, used_delta = used(conn, contract_id, dataset_id)
        left = terms.total_epsilon - used_eps
        if epsilon > left + SLACK:
            raise BudgetExceeded(
                f"run would spend ε {epsilon:g} on {where}; only {max(left, 0.0):.4g} of the "
                f"total {terms.total_epsilon:g} remains (spent and reserved: {used_eps:.4g})"
            )
        left_delta = terms.total_delta - used_delta
        if delta > left_delta + SLACK * terms.total_delta:
            raise BudgetExceeded(
                f"run would spend δ {delta:g} on {where}; only {max(left_delta, 0.0):.3g} of "
                f"the total δ {terms.total_delta:g} remains"
            )

    def settle(
        self,
        run_id: str,
        spent_epsilon: float,
        *,
        contract_id: str | None = None,
        refund_after_release: bool = True,
    ) -> float:
        """Charge what the run spent and give back the rest of its reservation; the ε charged.

        Refused (PrivacyError, nothing changed) when ``spent_epsilon`` exceeds what the run
        reserved, when the run holds no open reservation (never reserved, settled already,
        or charged in full at expiry), or when ``contract_id`` names another contract. Once a
        key was released under the reservation, ``refund_after_release=False`` (a remote key
        service, which cannot know what the run spent) charges the reservation in full
        whatever is claimed. A failed run settles with what its accountant had spent (0.0 if
        training never started); δ is charged whenever any ε was.
        """
        if not spent_epsilon >= 0:
            raise PrivacyError(f"run {run_id}: spent ε must be ≥ 0")
        with self._transaction("IMMEDIATE") as conn:
            expire_open(conn, self._ledger, self._clock())
            rows = conn.execute(
                "SELECT contract_id, dataset_id, reserved_epsilon, reserved_delta, state "
                "FROM charges WHERE run_id = ? AND state IN (?, ?) "
                "ORDER BY contract_id, dataset_id",
                (run_id, *OPEN_STATES),
            ).fetchall()
            if not rows:
                raise PrivacyError(self._why_not_open(conn, run_id))
            if contract_id is not None and any(row[0] != contract_id for row in rows):
                raise PrivacyError(f"run {run_id} has no open budget reservation on {contract_id}")
            for _, dataset_id, reserved_eps, _, _ in rows:
                if spent_epsilon > reserved_eps + SLACK:
                    raise PrivacyError(
                        f"run {run_id} claims to have spent ε {spent_epsilon:g} on dataset "
                        f"{dataset_id} but reserved only {reserved_eps:g}; settle refused"
                    )
            charged = 0.0
            for row_contract, dataset_id, reserved_eps, reserved_delta, state in rows:
                in_full = state == "consumed" and not refund_after_release
                spent = reserved_eps if in_full else min(spent_epsilon, reserved_eps)
                charged = max(charged, spent)
                self._close(
                    conn,
                    (run_id, row_contract, dataset_id),
                    (reserved_eps, reserved_delta),
                    spent,
                    "a key was released to the run: charged in full" if in_full else None,
                )
            return charged

    def _close(
        self,
        conn: sqlite3.Connection,
        key: tuple[str, str, str],
        reserved: tuple[float, float],
        spent_epsilon: float,
        note: str | None,
    ) -> None:
        """Settle one open row: charge ``spent_epsilon`` (δ with it), return the rest."""
        run_id, contract_id, dataset_id = key
        reserved_eps, reserved_delta = reserved
        spent_delta = reserved_delta if spent_epsilon > 0 else 0.0
        state = "charged" if spent_epsilon > 0 else "released"
        facts = {"run_id": run_id, "contract_id": contract_id, "dataset_id": dataset_id}
        if spent_epsilon > 0:
            extra = {"note": note} if note else {}
            self._ledger.append(
                "budget.charged",
                {**facts, "epsilon": spent_epsilon, "delta": spent_delta, **extra},
            )
        returned = max(reserved_eps - spent_epsilon, 0.0)
        if returned > 0 or spent_epsilon == 0:
            self._ledger.append(
                "budget.released",
                {**facts, "epsilon": returned, "delta": reserved_delta - spent_delta},
            )
        conn.execute(
            "UPDATE charges SET spent_epsilon = ?, spent_delta = ?, state = ? "
            "WHERE run_id = ? AND contract_id = ? AND dataset_id = ?",
            (spent_epsilon, spent_delta, state, run_id, contract_id, dataset_id),
        )

    def _why_not_open(self, conn: sqlite3.Connection, run_id: str) -> str:
        row = conn.execute(
            "SELECT state FROM charges WHERE run_id = ? ORDER BY seq DESC LIMIT 1", (run_id,)
        ).fetchone()
        if row is None:
            return f"run {run_id} has no open budget reservation to settle (it never reserved)"
        return f"run {run_id} has no open budget reservation to settle (already {row[0]})"

    # ------------------------------------------------------------------ key release

    def check_run(
        self,
        run_id: str,
        contract_id: str,
        need: tuple[float, float],
        datasets: Collection[str],
        *,
        consume: bool = False,
    ) -> str | None:
        """Why ``run_id`` may not have a key under ``contract_id``, or None when it may.

        It may when it holds an open reservation on each of ``datasets`` covering ``need``
        (the pipeline's ε, δ). With ``consume`` (the key is leaving now) the reservation
        becomes ``consumed``: the run keeps it for its other keys, and a remote key service
        no longer refunds any of it.
        """
        epsilon, delta = need
        with self._transaction("IMMEDIATE" if consume else "DEFERRED") as conn:
            if consume:
                expire_open(conn, self._ledger, self._clock())
            rows = {
                row[0]: row[1:]
                for row in conn.execute(
                    "SELECT dataset_id, reserved_epsilon, reserved_delta, state, expires_at "
                    "FROM charges WHERE run_id = ? AND contract_id = ?",
                    (run_id, contract_id),
                )
            }
            now = self._clock()
            for dataset_id in sorted(datasets):
                if dataset_id not in rows:
                    return (
                        f"run {run_id} holds no privacy budget reservation for dataset "
                        f"{dataset_id} under contract {contract_id}"
                    )
                reserved_eps, reserved_delta, state, expires_at = rows[dataset_id]
                if state not in OPEN_STATES or expires_at <= now:
                    settled = "expired" if state in OPEN_STATES else state
                    return f"run {run_id}'s budget reservation on {dataset_id} is {settled}"
                if epsilon > reserved_eps + SLACK or delta > reserved_delta * (1 + SLACK):
                    return (
                        f"run {run_id} reserved ε {reserved_eps:g}, δ {reserved_delta:g} on "
                        f"{dataset_id}; its pipeline needs ε {epsilon:g}, δ {delta:g}"
                    )
            if consume:
                consume_rows(conn, self._ledger, (run_id, contract_id), sorted(datasets), now)
        return None

    # ------------------------------------------------------------------ reading

    def summary(self, dataset_id: str | None = None) -> list[DatasetBudget]:
        """Every budget (or those of one dataset): spent, reserved, remaining and the runs."""
        with self._transaction("IMMEDIATE") as conn:
            expire_open(conn, self._ledger, self._clock())
            return summarize(conn, dataset_id)


def read_summary(
    ws: Workspace, dataset_id: str | None = None, now: float | None = None
) -> list[DatasetBudget]:
    """BudgetBook.summary() for a reader that may not write (a dashboard): the database is
    opened read-only, no ledger key is loaded, and a dead run's expired reservation counts
    as charged, as the next writer will record it. Empty when no budget was ever used."""
    path = ws.home / BUDGET_DB
    if not path.is_file():
        return []
    store = SqliteStore(path, MIGRATIONS, PrivacyError, "budget database", readonly=True)
    try:
        with store.transaction("DEFERRED") as conn:
            return summarize(conn, dataset_id, time.time() if now is None else now)
    finally:
        store.close()
