"""Query budgets: charged before inference, from leases committed before they are spent."""

from __future__ import annotations

import asyncio

import pytest

from sealroom.serve.budget import OverBudget, QueryBudget, charged_totals

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Ledger:
    """A LeaseSink that records what was committed, in order, and can refuse."""

    def __init__(self) -> None:
        self.leases: list[tuple[str, int]] = []
        self.notes: dict[str, int] = {}
        self.fail = False

    async def lease(self, client: str, total: int) -> None:
        await asyncio.sleep(0)
        if self.fail:
            raise RuntimeError("ledger unreachable")
        self.leases.append((client, total))

    def note(self, client: str, total: int) -> None:
        self.notes[client] = total


async def test_every_charge_is_inside_a_committed_lease() -> None:
    ledger = Ledger()
    budget = QueryBudget(1000, ledger, lease_size=10)
    for _ in range(25):
        await budget.charge("sha256:aa", 1)
        committed = max(total for client, total in ledger.leases if client == "sha256:aa")
        assert budget.used("sha256:aa") <= committed
    assert ledger.leases == [("sha256:aa", 10), ("sha256:aa", 20), ("sha256:aa", 30)]


async def test_over_budget_is_refused_and_nothing_is_charged() -> None:
    budget = QueryBudget(5, Ledger(), lease_size=2)
    await budget.charge("c", 4)
    with pytest.raises(OverBudget, match="4 of 5 examples charged, this request needs 2"):
        await budget.charge("c", 2)
    assert budget.used("c") == 4
    await budget.charge("c", 1)
    with pytest.raises(OverBudget):
        await budget.charge("c", 1)


async def test_a_lease_never_exceeds_the_budget() -> None:
    ledger = Ledger()
    budget = QueryBudget(7, ledger, lease_size=100)
    await budget.charge("c", 1)
    assert ledger.leases == [("c", 7)]


async def test_clients_have_separate_budgets() -> None:
    budget = QueryBudget(3, Ledger(), lease_size=1)
    await budget.charge("a", 3)
    await budget.charge("b", 3)
    with pytest.raises(OverBudget):
        await budget.charge("a", 1)


async def test_a_restart_reloads_committed_totals_so_a_crash_only_over_charges() -> None:
    ledger = Ledger()
    budget = QueryBudget(100, ledger, lease_size=10)
    await budget.charge("c", 3)  # lease to 10 committed, 3 used, then the room crashes
    committed = dict(ledger.leases)
    restarted = QueryBudget(100, ledger, charged=committed, lease_size=10)
    assert restarted.used("c") == 10 >= budget.used("c")
    await restarted.charge("c", 90)
    with pytest.raises(OverBudget):
        await restarted.charge("c", 1)


async def test_a_failed_lease_commit_refuses_and_charges_nothing() -> None:
    ledger = Ledger()
    ledger.fail = True
    budget = QueryBudget(100, ledger, lease_size=10)
    with pytest.raises(RuntimeError):
        await budget.charge("c", 1)
    assert budget.used("c") == 0 and budget.leased("c") == 0


async def test_concurrent_charges_share_leases_and_never_pass_the_budget() -> None:
    ledger = Ledger()
    budget = QueryBudget(50, ledger, lease_size=8)
    results = await asyncio.gather(
        *(budget.charge("c", 3) for _ in range(30)), return_exceptions=True
    )
    served = sum(1 for r in results if r is None)
    assert served == 16 and budget.used("c") == 48
    assert all(isinstance(r, OverBudget) for r in results if r is not None)
    assert budget.used("c") <= max(total for _, total in ledger.leases)


async def test_an_unlimited_budget_counts_without_leases() -> None:
    ledger = Ledger()
    budget = QueryBudget(None, ledger)
    await budget.charge("anonymous", 4)
    await budget.charge("anonymous", 2)
    assert ledger.leases == [] and ledger.notes == {"anonymous": 6}


def test_restart_totals_are_the_highest_committed_per_client_of_this_contract() -> None:
    payloads = [
        {"contract_id": "c", "charged": {"a": 10, "b": 3}},
        {"contract_id": "c", "charged": {"a": 20}},
        {"contract_id": "other", "charged": {"a": 999}},
        {"contract_id": "c", "charged": {"a": 15, "b": -1, "x": True}},
    ]
    assert charged_totals(payloads, "c") == {"a": 20, "b": 3}
