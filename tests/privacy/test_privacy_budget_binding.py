"""Issue 13, "Budget edges": a reservation is bound to its run, a dead run's reservation is
charged in full after the contract's max_runtime_s, and settle refuses more than reserved.

Key release against a real key service is in tests/kms/test_kms_budget.py; here the book,
the release gate and the operator's desk, with an injected clock where time matters.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sealroom.contract.schema import Contract
from sealroom.contract.signed import SignedContract
from sealroom.errors import PrivacyError
from sealroom.ledger import Ledger
from sealroom.privacy.budget import BUDGET_DB, BudgetBook
from sealroom.privacy.budget_guard import BudgetGate
from sealroom.privacy.budget_store import MIGRATIONS
from sealroom.room.channel import Request, ReserveCall, SettleCall
from sealroom.room.operator import OperatorDesk
from sealroom.workspace import Workspace
from tests.privacy.helpers import make_contract, private_pipeline

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = private_pipeline({"epsilon": 3.0, "delta": 1e-5})


def _contract(max_runtime_s: int = 60) -> Contract:
    contract = make_contract()  # mnist: ε 3 per run, 8 in all
    limits = contract.constraints.model_copy(update={"max_runtime_s": max_runtime_s})
    return contract.model_copy(update={"constraints": limits})


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


DATASET = make_contract().datasets[0].package_digest


def _request(run_id: str | None, package_digest: str = DATASET) -> Any:
    return SimpleNamespace(run_id=run_id, package_digest=package_digest)


def test_the_models_key_checks_the_reservation_but_only_a_data_key_consumes_it(
    workspace: Workspace,
) -> None:
    contract = _contract()
    model = "sha256:" + "ab" * 32
    gate = BudgetGate(workspace)
    with BudgetBook(workspace) as book:
        book.reserve("run-a", contract, 3.0, 1e-5)
    assert gate.consume(contract, PIPELINE, _request("run-a", model)) is None
    with BudgetBook(workspace) as book:
        # no refund after a release is allowed here, yet the whole reservation comes back
        assert book.settle("run-a", 0.0, refund_after_release=False) == 0.0


def test_one_open_reservation_admits_no_other_run(workspace: Workspace) -> None:
    contract = _contract()
    gate = BudgetGate(workspace)
    with BudgetBook(workspace) as book:
        book.reserve("run-a", contract, 3.0, 1e-5)
    refusals = [gate(contract, PIPELINE, _request(f"run-{n}")) for n in "bcdef"]
    assert all(r and "holds no privacy budget reservation" in r for r in refusals)
    assert "no run id" in (gate(contract, PIPELINE, _request(None)) or "")
    assert gate(contract, PIPELINE, _request("run-a")) is None


def test_the_reservation_must_cover_the_pipelines_epsilon_and_delta(workspace: Workspace) -> None:
    contract = _contract()
    with BudgetBook(workspace) as book:
        book.reserve("run-a", contract, 1.0, 1e-5)
        book.reserve("run-b", contract, 3.0, 1e-6)
    gate = BudgetGate(workspace)
    assert "needs ε 3" in (gate(contract, PIPELINE, _request("run-a")) or "")
    assert "needs ε 3, δ 1e-05" in (gate(contract, PIPELINE, _request("run-b")) or "")


def test_a_consumed_reservation_still_opens_the_same_runs_other_keys(workspace: Workspace) -> None:
    contract = _contract()
    gate = BudgetGate(workspace)
    with BudgetBook(workspace) as book:
        book.reserve("run-a", contract, 3.0, 1e-5)
    assert gate.consume(contract, PIPELINE, _request("run-a")) is None
    assert gate(contract, PIPELINE, _request("run-a")) is None  # e.g. the model's key
    assert gate.consume(contract, PIPELINE, _request("run-a")) is None
    with Ledger.open(workspace) as ledger:
        assert len(ledger.entries("budget.consumed")) == 1  # consumed once
    with BudgetBook(workspace) as book:
        [budget] = book.summary("mnist")
    assert budget.runs == [("run-a", 3.0, "consumed")] and budget.remaining == 5.0


def test_settle_refuses_more_than_reserved_and_changes_nothing(workspace: Workspace) -> None:
    with BudgetBook(workspace) as book:
        book.reserve("run-a", _contract(), 2.0, 1e-5)
        with pytest.raises(PrivacyError, match="reserved only 2; settle refused"):
            book.settle("run-a", 2.5)
        [budget] = book.summary("mnist")
        assert budget.runs == [("run-a", 2.0, "reserved")]
        assert book.settle("run-a", 2.0) == 2.0


def test_replayed_and_unknown_settles_are_refused(workspace: Workspace) -> None:
    with BudgetBook(workspace) as book:
        book.reserve("run-a", _contract(), 2.0, 1e-5)
        book.settle("run-a", 1.0)
        with pytest.raises(PrivacyError, match=r"already charged"):
            book.settle("run-a", 0.0)  # a replay would refund the 1.0
        with pytest.raises(PrivacyError, match="never reserved"):
            book.settle("run-x", 0.0)
        with pytest.raises(PrivacyError, match="must be ≥ 0"):
            book.settle("run-a", float("nan"))
        [budget] = book.summary("mnist")
    assert budget.spent == 1.0


def test_no_refund_after_key_release_unless_the_caller_may_refund(workspace: Workspace) -> None:
    contract = _contract()
    gate = BudgetGate(workspace)
    with BudgetBook(workspace) as book:
        book.reserve("remote", contract, 3.0, 1e-5)
        book.reserve("room", contract, 3.0, 1e-5)
    for run_id in ("remote", "room"):
        assert gate.consume(contract, PIPELINE, _request(run_id)) is None
    with BudgetBook(workspace) as book:
        assert book.settle("remote", 0.5, refund_after_release=False) == 3.0
        assert book.settle("room", 0.5) == 0.5  # the embedded service's room channel
        [budget] = book.summary("mnist")
    assert budget.spent == 3.5


def test_a_dead_runs_reservation_is_charged_in_full_after_max_runtime_s(
    workspace: Workspace,
) -> None:
    contract, clock = _contract(max_runtime_s=60), Clock()
    gate = BudgetGate(workspace, clock=clock)
    with BudgetBook(workspace, clock=clock) as book:
        book.reserve("dead", contract, 3.0, 1e-5)
        clock.now += 59.0
        assert book.summary("mnist")[0].runs == [("dead", 3.0, "reserved")]
        assert gate(contract, PIPELINE, _request("dead")) is None
        clock.now += 1.0
        assert gate(contract, PIPELINE, _request("dead")) == (
            "run dead's budget reservation on mnist is expired"
        )
        [budget] = book.summary("mnist")
        assert budget.runs == [("dead", 3.0, "charged")] and budget.spent == 3.0
        assert budget.spent_delta == 1e-5 and budget.remaining == 5.0
        with pytest.raises(PrivacyError, match="already charged"):
            book.settle("dead", 0.0)  # a late settle cannot win it back
    with Ledger.open(workspace) as ledger:
        [charged] = ledger.find("budget.charged", run_id="dead")
    assert charged.payload["epsilon"] == 3.0 and "expired" in charged.payload["note"]


def test_a_sigkilled_run_is_charged_and_admits_no_key_to_the_next_run(
    workspace: Workspace,
) -> None:
    """A real process reserves, then dies by SIGKILL before it can settle."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from sealroom.privacy.budget import BudgetBook
        from sealroom.workspace import Workspace
        from tests.privacy.test_privacy_budget_binding import _contract
        with BudgetBook(Workspace.find(Path({str(workspace.home)!r}))) as book:
            book.reserve("killed", _contract(max_runtime_s=60), 3.0, 1e-5)
        print("reserved", flush=True)
        time.sleep(600)
        """
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "reserved"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    contract, gate = _contract(max_runtime_s=60), BudgetGate(workspace)
    with BudgetBook(workspace) as book:
        assert book.summary("mnist")[0].runs == [("killed", 3.0, "reserved")]  # not yet
    later = Clock(time.time() + 61.0)
    with BudgetBook(workspace, clock=later) as book:
        [budget] = book.summary("mnist")
    assert budget.runs == [("killed", 3.0, "charged")] and budget.remaining == 5.0
    assert "holds no privacy budget reservation" in (
        gate(contract, PIPELINE, _request("next")) or ""
    )
    assert "is charged" in (gate(contract, PIPELINE, _request("killed")) or "")


def test_a_room_that_died_with_its_operator_is_charged_by_the_next_caller(
    workspace: Workspace,
) -> None:
    """The desk's finish never ran (its process died): the next book charges it at expiry."""
    desk = OperatorDesk(workspace, "run-d", SignedContract(contract=_contract(max_runtime_s=5)))
    reserve = ReserveCall(op="budget.reserve", epsilon=2.0, delta=1e-5)
    assert desk.handle(Request(type="call", id=1, call=reserve)).ok
    desk.close()  # and nothing else
    with BudgetBook(workspace, clock=Clock(time.time() + 5.0)) as book:
        [budget] = book.summary("mnist")
    assert budget.runs == [("run-d", 2.0, "charged")]


def test_the_room_cannot_settle_more_than_it_reserved_and_finish_charges_it(
    workspace: Workspace,
) -> None:
    desk = OperatorDesk(workspace, "run-r", SignedContract(contract=_contract()))
    reserve = ReserveCall(op="budget.reserve", epsilon=2.0, delta=1e-5)
    assert desk.handle(Request(type="call", id=1, call=reserve)).ok
    settle = SettleCall(op="budget.settle", spent_epsilon=2.5)
    refused = desk.handle(Request(type="call", id=2, call=settle))
    assert not refused.ok and "reserved only 2" in (refused.error or "")
    desk.finish("the room died")
    desk.close()
    with BudgetBook(workspace) as book:
        [budget] = book.summary("mnist")
    assert budget.runs == [("run-r", 2.0, "charged")]


def test_a_budget_db_from_before_the_binding_is_read_and_its_open_runs_expire(
    workspace: Workspace,
) -> None:
    path = workspace.home / BUDGET_DB
    with sqlite3.connect(path) as conn:
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        conn.execute("INSERT INTO budgets VALUES ('c1', 'mnist', 3.0, 1e-5, 8.0, 1e-4)")
        conn.execute(
            "INSERT INTO charges VALUES ('old', 'c1', 'mnist', 3.0, 1e-5, 2.5, 1e-5, 'charged', 1)"
        )
        conn.execute(
            "INSERT INTO charges VALUES ('open', 'c1', 'mnist', 2.0, 1e-5, NULL, NULL, "
            "'reserved', 2)"
        )
    conn.close()
    now = time.time()
    with BudgetBook(workspace, clock=Clock(now)) as book:
        [budget] = book.summary("mnist")
        assert budget.runs == [("old", 2.5, "charged"), ("open", 2.0, "reserved")]
    with BudgetBook(workspace, clock=Clock(now + 3601.0)) as book:
        [budget] = book.summary("mnist")
    assert budget.runs == [("old", 2.5, "charged"), ("open", 2.0, "charged")]
    assert budget.spent == 4.5
