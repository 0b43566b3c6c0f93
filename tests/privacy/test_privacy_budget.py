"""Budget arithmetic, refusals, settling, ledger entries, and parallel reservations."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from sealroom.errors import BudgetExceeded, PrivacyError
from sealroom.ledger import Ledger
from sealroom.privacy.budget import BudgetBook
from sealroom.workspace import Workspace
from tests.privacy.helpers import make_contract


def test_reserve_then_settle_charges_spent_and_returns_the_rest(workspace: Workspace) -> None:
    contract = make_contract()
    with BudgetBook(workspace) as book:
        book.reserve("r1", contract, 3.0, 1e-5)
        [before] = book.summary("mnist")
        assert (before.spent, before.reserved, before.remaining) == (0.0, 3.0, 5.0)
        book.settle("r1", 2.5)
        [after] = book.summary("mnist")
    assert after.spent == 2.5 and after.reserved == 0.0 and after.remaining == pytest.approx(5.5)
    assert after.spent_delta == 1e-5
    assert after.runs == [("r1", 2.5, "charged")]


def test_per_run_limit_refused_with_dataset_named(workspace: Workspace) -> None:
    with BudgetBook(workspace) as book, pytest.raises(BudgetExceeded) as err:
        book.reserve("r1", make_contract(), 5.0, 1e-5)
    assert str(err.value) == "run would spend ε 5 on dataset mnist; per-run limit is 3"


def test_per_run_delta_limit_refused(workspace: Workspace) -> None:
    with BudgetBook(workspace) as book, pytest.raises(BudgetExceeded, match="δ"):
        book.reserve("r1", make_contract(), 1.0, 1e-3)


def test_total_budget_refuses_the_run_that_would_overshoot(workspace: Workspace) -> None:
    contract = make_contract()
    with BudgetBook(workspace) as book:
        book.reserve("r1", contract, 3.0, 1e-5)
        book.settle("r1", 3.0)
        book.reserve("r2", contract, 3.0, 1e-5)  # 6 of 8 spent or reserved
        with pytest.raises(BudgetExceeded, match=r"only 2 of the total 8 remains"):
            book.reserve("r3", contract, 2.5, 1e-5)
        book.reserve("r3", contract, 2.0, 1e-5)
        [state] = book.summary()
    assert state.remaining == 0.0 and state.spent == 3.0 and state.reserved == 5.0


def test_failed_run_returns_everything_it_did_not_spend(workspace: Workspace) -> None:
    contract = make_contract()
    with BudgetBook(workspace) as book:
        book.reserve("r1", contract, 3.0, 1e-5)
        book.settle("r1", 0.0)  # failed before training
        [state] = book.summary("mnist")
    assert state.remaining == 8.0 and state.spent_delta == 0.0
    assert state.runs == [("r1", 0.0, "released")]


def test_reservation_is_all_or_nothing_across_datasets(workspace: Workspace) -> None:
    contract = make_contract(
        datasets={"a": (3.0, 1e-5, 8.0, 1e-4), "b": (1.0, 1e-5, 8.0, 1e-4), "open": None}
    )
    with BudgetBook(workspace) as book:
        with pytest.raises(BudgetExceeded, match="dataset b"):
            book.reserve("r1", contract, 2.0, 1e-5)
        assert book.summary("a") == [] or book.summary("a")[0].reserved == 0.0
        book.reserve("r2", contract, 1.0, 1e-5)
        assert {b.dataset_id: b.reserved for b in book.summary()} == {"a": 1.0, "b": 1.0}


def test_every_change_is_a_ledger_entry(workspace: Workspace) -> None:
    contract = make_contract()
    with BudgetBook(workspace) as book:
        book.reserve("r1", contract, 3.0, 1e-5)
        book.settle("r1", 1.0)
    with Ledger.open(workspace) as ledger:
        kinds = [e.kind for e in ledger.entries()]
        charged = ledger.find("budget.charged", run_id="r1")
        ledger.verify()
    assert kinds == ["budget.reserved", "budget.charged", "budget.released"]
    assert charged[0].payload["epsilon"] == 1.0


def test_settle_without_reservation_and_double_reservation_refused(workspace: Workspace) -> None:
    with BudgetBook(workspace) as book:
        with pytest.raises(PrivacyError, match="no open budget reservation"):
            book.settle("nope", 1.0)
        book.reserve("r1", make_contract(), 1.0, 1e-5)
        with pytest.raises(PrivacyError, match="already has"):
            book.reserve("r1", make_contract(), 1.0, 1e-5)


def test_budgets_persist_across_books(workspace: Workspace) -> None:
    with BudgetBook(workspace) as book:
        book.reserve("r1", make_contract(), 3.0, 1e-5)
    with BudgetBook(workspace) as book:
        assert book.summary("mnist")[0].reserved == 3.0


def _reserve_in_process(home: str, run_id: str, start: object, results: object) -> None:
    ws = Workspace.find(Path(home))
    start.wait()  # type: ignore[attr-defined]
    try:
        with BudgetBook(ws) as book:
            book.reserve(run_id, make_contract(), 1.5, 1e-6)
        results.put((run_id, "ok"))  # type: ignore[attr-defined]
    except BudgetExceeded:
        results.put((run_id, "refused"))  # type: ignore[attr-defined]


def test_parallel_processes_never_overspend(workspace: Workspace) -> None:
    ctx = mp.get_context("fork")
    start, results = ctx.Barrier(8), ctx.Queue()
    procs = [
        ctx.Process(target=_reserve_in_process, args=(str(workspace.home), f"r{i}", start, results))
        for i in range(8)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    outcomes = dict(results.get(timeout=5) for _ in procs)
    assert sorted(outcomes.values()).count("ok") == 5  # 5 x 1.5 = 7.5 <= 8 < 6 x 1.5
    with BudgetBook(workspace) as book:
        [state] = book.summary("mnist")
    assert state.reserved == pytest.approx(7.5) and state.reserved <= state.total_epsilon
    with Ledger.open(workspace) as ledger:
        assert len(ledger.find("budget.reserved")) == 5
        ledger.verify()


def test_release_guard_denies_keys_without_the_runs_reservation(workspace: Workspace) -> None:
    from types import SimpleNamespace

    from sealroom.privacy.budget_guard import BudgetGate
    from tests.privacy.helpers import private_pipeline

    guard = BudgetGate(workspace)
    contract = make_contract()
    pipeline = private_pipeline({"epsilon": 3.0, "delta": 1e-5})
    run1, run2 = SimpleNamespace(run_id="r1"), SimpleNamespace(run_id="r2")
    assert "no privacy budget reservation" in (guard(contract, pipeline, run1) or "")  # type: ignore[arg-type]
    with BudgetBook(workspace) as book:
        book.reserve("r1", contract, 3.0, 1e-5)
    assert guard(contract, pipeline, run1) is None  # type: ignore[arg-type]
    assert "no privacy budget reservation" in (guard(contract, pipeline, run2) or "")  # type: ignore[arg-type]
    assert "no run id" in (guard(contract, pipeline, None) or "")
    assert "no privacy" in (
        guard(contract, pipeline.model_copy(update={"privacy": None}), run1) or ""  # type: ignore[arg-type]
    )
