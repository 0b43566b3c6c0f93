"""Privacy budgets that hold across runs: reserve before a run, settle after it.

``BudgetBook`` keeps one budget per (contract, dataset) in ``budget.db`` in the workspace.
``reserve`` checks a run's ε and δ against each private dataset's per-run limit and what
is left of its total, and records the reservation, all inside one ``BEGIN IMMEDIATE``
transaction: concurrent runs (threads or processes) queue on SQLite's write lock, so the
sum of what is spent and reserved never passes the total. Every change is also a ledger
entry (``budget.reserved``, ``budget.charged``, ``budget.released``), appended while the
budget transaction is open so the ledger and the book cannot disagree.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, NamedTuple

from sealroom.errors import BudgetExceeded, PrivacyError
from sealroom.ledger import Ledger
from sealroom.privacy.budget_store import MIGRATIONS, used
from sealroom.sqlite_store import SqliteStore

if TYPE_CHECKING:
    from sealroom.contract.schema import Contract, DatasetPrivacy
    from sealroom.pipeline.schema import Pipeline
    from sealroom.workspace import Workspace

BUDGET_DB = "budget.db"
SLACK = 1e-9  # float noise allowed when comparing sums of ε against a limit


class RunCharge(NamedTuple):
    """One run's share of a dataset budget: ε reserved (open) or spent (settled)."""

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


class BudgetBook:
    """Reserve, settle and summarise privacy budgets; safe across threads and processes.

    Example::

        with BudgetBook(ws) as book:
            book.reserve("run-1", contract, epsilon=3.0, delta=1e-5)
            ...  # train; the trainer stops before passing ε 3.0
            book.settle("run-1", spent_epsilon=2.97)
    """

    def __init__(self, ws: Workspace) -> None:
        self.path = ws.home / BUDGET_DB
        self._ledger = Ledger.open(ws)
        try:
            self._store = SqliteStore(self.path, MIGRATIONS, PrivacyError, "budget database")
        except BaseException:
            self._ledger.close()
            raise
        self._transaction = self._store.transaction

    def __enter__(self) -> BudgetBook:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._store.close()
        self._ledger.close()

    # ------------------------------------------------------------------ reserve / settle

    def reserve(self, run_id: str, contract: Contract, epsilon: float, delta: float) -> None:
        """Reserve (ε, δ) on every private dataset of ``contract`` for ``run_id``, or none.

        Raises BudgetExceeded naming the dataset and the limit a run would pass.
        """
        if epsilon < 0 or delta < 0:
            raise PrivacyError(f"run {run_id}: ε and δ to reserve must be ≥ 0")
        private = [(d.id, d.privacy) for d in contract.datasets if d.privacy is not None]
        if not private:
            return
        with self._transaction("IMMEDIATE") as conn:
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
                },
            )
            for dataset_id, _ in private:
                conn.execute(
                    "INSERT INTO charges (run_id, contract_id, dataset_id, reserved_epsilon, "
                    "reserved_delta, state, seq) VALUES (?, ?, ?, ?, ?, 'reserved', ?)",
                    (run_id, contract.id, dataset_id, epsilon, delta, receipt.seq),
                )

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

    def settle(self, run_id: str, spent_epsilon: float) -> None:
        """Charge what the run spent and give back the rest of its reservation.

        A failed run settles with what its accountant had spent (0.0 if training never
        started); δ is charged whenever any ε was.
        """
        if spent_epsilon < 0:
            raise PrivacyError(f"run {run_id}: spent ε must be ≥ 0")
        with self._transaction("IMMEDIATE") as conn:
            rows = conn.execute(
                "SELECT contract_id, dataset_id, reserved_epsilon, reserved_delta FROM charges "
                "WHERE run_id = ? AND state = 'reserved' ORDER BY contract_id, dataset_id",
                (run_id,),
            ).fetchall()
            if not rows:
                raise PrivacyError(f"run {run_id} has no open budget reservation to settle")
            for contract_id, dataset_id, reserved_eps, reserved_delta in rows:
                spent_delta = reserved_delta if spent_epsilon > 0 else 0.0
                state = "charged" if spent_epsilon > 0 else "released"
                facts = {"run_id": run_id, "contract_id": contract_id, "dataset_id": dataset_id}
                if spent_epsilon > 0:
                    self._ledger.append(
                        "budget.charged", {**facts, "epsilon": spent_epsilon, "delta": spent_delta}
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

    # ------------------------------------------------------------------ reading

    def has_open_reservation(self, contract_id: str, epsilon: float, delta: float) -> bool:
        """Whether some run holds an unsettled reservation covering (ε, δ) on this contract."""
        with self._transaction("DEFERRED") as conn:
            row = conn.execute(
                "SELECT 1 FROM charges WHERE contract_id = ? AND state = 'reserved' "
                "AND reserved_epsilon >= ? AND reserved_delta >= ? LIMIT 1",
                (contract_id, epsilon - SLACK, delta * (1 - SLACK)),
            ).fetchone()
            return row is not None

    def summary(self, dataset_id: str | None = None) -> list[DatasetBudget]:
        """Every budget (or those of one dataset): spent, reserved, remaining and the runs."""
        with self._transaction("DEFERRED") as conn:
            budgets = conn.execute(
                "SELECT contract_id, dataset_id, per_run_epsilon, total_epsilon, total_delta "
                "FROM budgets WHERE ? IS NULL OR dataset_id = ? ORDER BY dataset_id, contract_id",
                (dataset_id, dataset_id),
            ).fetchall()
            out = []
            for contract_id, ds, per_run, total, total_delta in budgets:
                charges = conn.execute(
                    "SELECT run_id, reserved_epsilon, spent_epsilon, spent_delta, state "
                    "FROM charges WHERE contract_id = ? AND dataset_id = ? ORDER BY seq",
                    (contract_id, ds),
                ).fetchall()
                runs, spent, reserved, spent_delta = [], 0.0, 0.0, 0.0
                for run_id, res_eps, sp_eps, sp_delta, state in charges:
                    if state == "reserved":
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


def reservation_guard(ws: Workspace) -> Callable[[Contract, Pipeline, object], str | None]:
    """A key-service release guard: no key for a private contract without a reservation.

    Use as ``KeyService(ws, guards=[reservation_guard(ws)])``: the room must have reserved
    the pipeline's (ε, δ) before it asks for keys, so an overshooting run gets none.
    """

    def guard(contract: Contract, pipeline: Pipeline, request: object) -> str | None:
        if not any(d.privacy is not None for d in contract.datasets):
            return None
        if pipeline.privacy is None:
            return f"contract {contract.id} has privacy budgets but the pipeline has no privacy"
        privacy = pipeline.privacy
        with BudgetBook(ws) as book:
            if book.has_open_reservation(contract.id, privacy.epsilon, privacy.delta):
                return None
        return (
            f"no privacy budget reserved on contract {contract.id} for ε {privacy.epsilon:g}, "
            f"δ {privacy.delta:g}"
        )

    return guard
