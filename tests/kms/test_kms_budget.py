"""Budgets kept where the key is: key release needs and consumes the run's own reservation,
and a provider's `kms serve` keeps the budget of its dataset, out of the operator's reach.

Each test is an attack from issue 13 ("Budget edges") played against a real key service.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealroom.contract.signed import SignedContract
from sealroom.crypto.identity import Party
from sealroom.errors import BudgetExceeded, KeyReleaseDenied, PrivacyError
from sealroom.kms import KeyService, KmsClient
from sealroom.kms.client import TOKEN_ENV, KmsUnavailable
from sealroom.ledger import Ledger
from sealroom.privacy.budget import BudgetBook
from sealroom.privacy.budget_guard import BudgetGate
from sealroom.room.channel import Response
from sealroom.room.operator import OperatorDesk
from sealroom.workspace import Workspace
from tests.kms.conftest import Room, default_policy
from tests.kms.factories import CONTRACT_ID, DATASET_DIGEST, contract_data, store_contract
from tests.kms.http_server import Served, threaded_server

# The factories' contract: dataset mnist, ε 3 per run of 9 in all; the pipeline asks ε 2.


@pytest.fixture
def gated(imported: KeyService, workspace: Workspace) -> KeyService:
    """The embedded key service as the operator opens it: behind the budget gate."""
    imported.guards.append(BudgetGate(workspace))
    return imported


def _reserve(ws: Workspace, run_id: str, epsilon: float = 2.0) -> None:
    from sealroom.contract.store import load_contract

    with BudgetBook(ws) as book:
        book.reserve(run_id, load_contract(ws, CONTRACT_ID).contract, epsilon, 1e-5)


def _states(ws: Workspace) -> dict[str, str]:
    with BudgetBook(ws) as book:
        [budget] = book.summary("mnist")
    return {run.run_id: run.state for run in budget.runs}


def test_one_open_reservation_lets_none_of_five_other_requests_through(
    gated: KeyService, workspace: Workspace, room: Room, data_key: bytes
) -> None:
    """The finding: 5 of 5 further key requests passed under one open reservation."""
    _reserve(workspace, "run-a")
    for run_id in ["run-b", "run-c", "run-d", "run-e", None]:
        with pytest.raises(KeyReleaseDenied) as denied:
            gated.release(room.request(gated, run_id=run_id))
        assert "reservation" in str(denied.value) or "no run id" in str(denied.value)
    assert room.open(gated.release(room.request(gated, run_id="run-a"))) == data_key
    with Ledger.open(workspace) as ledger:
        assert len(ledger.entries("key.denied")) == 5
        assert len(ledger.entries("key.released")) == 1
        [consumed] = ledger.entries("budget.consumed")
    assert consumed.payload == {
        "run_id": "run-a",
        "contract_id": CONTRACT_ID,
        "datasets": ["mnist"],
    }
    assert _states(workspace) == {"run-a": "consumed"}


def test_a_released_key_is_never_released_twice_to_the_same_run(
    gated: KeyService, workspace: Workspace, room: Room
) -> None:
    _reserve(workspace, "run-a")
    gated.release(room.request(gated, run_id="run-a"))
    with pytest.raises(KeyReleaseDenied, match="already received"):
        gated.release(room.request(gated, run_id="run-a"))


def test_a_reservation_smaller_than_the_pipelines_epsilon_unlocks_nothing(
    gated: KeyService, workspace: Workspace, room: Room
) -> None:
    _reserve(workspace, "run-a", epsilon=0.5)  # the pipeline asks ε 2
    with pytest.raises(KeyReleaseDenied, match=r"reserved ε 0\.5"):
        gated.release(room.request(gated, run_id="run-a"))
    assert _states(workspace) == {"run-a": "reserved"}


def test_a_release_denied_after_the_budget_check_consumes_nothing(
    workspace: Workspace, parties: dict[str, Party], data_key: bytes, room: Room
) -> None:
    store_contract(workspace, parties)
    with KeyService(workspace, guards=[BudgetGate(workspace)]) as service:
        policy = default_policy(measurements=["ab" * 32])  # not this room's measurement
        service.import_key(DATASET_DIGEST, data_key, "hospital", CONTRACT_ID, policy)
        _reserve(workspace, "run-a")
        with pytest.raises(KeyReleaseDenied, match="measurement"):
            service.release(room.request(service, run_id="run-a"))
    assert _states(workspace) == {"run-a": "reserved"}  # its settle may still refund it all


# ------------------------------------------------------------------ a provider's own key service


@pytest.fixture
def provider(
    tmp_path: Path,
    workspace: Workspace,
    parties: dict[str, Party],
    data_key: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Served, SignedContract]]:
    """`workspace` is the provider's home running its key service; the contract names it as
    the dataset's ``key_service``; the operator's client token is in the environment."""
    with threaded_server(workspace) as served:
        datasets = contract_data()["datasets"]
        datasets[0]["key_service"] = served.url
        signed = store_contract(workspace, parties, datasets=datasets)
        with KeyService(workspace) as service:
            service.import_key(DATASET_DIGEST, data_key, "hospital", CONTRACT_ID, default_policy())
        monkeypatch.setenv(TOKEN_ENV, served.token)
        yield served, signed


@pytest.fixture
def operator_ws(tmp_path: Path) -> Workspace:
    return Workspace.create(tmp_path / "operator")


def _desk_call(desk: OperatorDesk, op: str, **body: object) -> Response:
    line = json.dumps({"type": "call", "id": 1, "call": {"op": op, **body}}).encode()
    answer = desk.answer(line)
    assert isinstance(answer, Response)
    return answer


def test_the_key_service_settles_no_refund_once_its_key_was_released(
    provider: tuple[Served, SignedContract], workspace: Workspace, room: Room, data_key: bytes
) -> None:
    served, _ = provider
    with KmsClient(served.url) as client:
        assert client.reserve("run-a", CONTRACT_ID, 3.0, 1e-5) == ["mnist"]
        assert room.open(client.release(room.request(client, run_id="run-a"))) == data_key
        assert client.settle("run-a", CONTRACT_ID, 0.0) == 3.0  # claimed 0, charged in full
        with pytest.raises(PrivacyError, match="already charged"):  # replayed settle
            client.settle("run-a", CONTRACT_ID, 0.0)
        with pytest.raises(PrivacyError, match="never reserved"):
            client.settle("run-zz", CONTRACT_ID, 0.0)
        client.reserve("run-b", CONTRACT_ID, 1.0, 1e-5)
        with pytest.raises(PrivacyError, match="reserved only 1"):
            client.settle("run-b", CONTRACT_ID, 2.5)
        with pytest.raises(PrivacyError, match="spent_epsilon"):
            client.settle("run-b", CONTRACT_ID, float("nan"))
        assert client.settle("run-b", CONTRACT_ID, 0.0) == 0.0  # no key left: all returned
        [budget] = client.budgets("mnist")
    assert budget["spent"] == 3.0 and budget["reserved"] == 0.0 and budget["remaining"] == 6.0
    with Ledger.open(workspace) as ledger:
        [charged] = ledger.find("budget.charged", run_id="run-a")
    assert "charged in full" in charged.payload["note"]


def test_an_operator_resetting_its_own_budget_gets_no_key_beyond_the_providers_total(
    provider: tuple[Served, SignedContract], operator_ws: Workspace, room: Room
) -> None:
    """The operator runs three rooms of ε 3 (the total is 9), then deletes its budget.db:
    the key service that holds the key still refuses a fourth run and its key."""
    served, signed = provider
    for n in range(3):
        desk = OperatorDesk(operator_ws, f"run-{n}", signed)
        try:
            assert _desk_call(desk, "budget.reserve", epsilon=3.0, delta=1e-5).ok
            with KmsClient(served.url) as client:
                client.release(room.request(client, run_id=f"run-{n}"))
            desk.finish(None)  # settles in full at the key service
        finally:
            desk.close()
    with Ledger.open(operator_ws) as ledger:
        mirrored = ledger.entries("budget.mirrored")
    assert [e.payload["op"] for e in mirrored] == ["reserve", "settle"] * 3
    assert all(e.payload["key_service"] == served.url for e in mirrored)
    (operator_ws.home / "budget.db").unlink(missing_ok=True)  # the reset

    desk = OperatorDesk(operator_ws, "run-3", signed)
    try:
        refused = _desk_call(desk, "budget.reserve", epsilon=3.0, delta=1e-5)
    finally:
        desk.close()
    assert not refused.ok and refused.error_type == "BudgetExceeded"
    assert "only 0 of the total 9 remains" in refused.error
    with KmsClient(served.url) as client, pytest.raises(KeyReleaseDenied, match="no privacy"):
        client.release(room.request(client, run_id="run-3"))
    with KmsClient(served.url) as client, pytest.raises(BudgetExceeded):
        client.reserve("run-4", CONTRACT_ID, 0.1, 1e-7)


def test_a_room_settling_below_its_reservation_through_a_remote_service_is_charged_in_full(
    provider: tuple[Served, SignedContract], operator_ws: Workspace, room: Room
) -> None:
    served, signed = provider
    desk = OperatorDesk(operator_ws, "run-a", signed)
    try:
        assert _desk_call(desk, "budget.reserve", epsilon=3.0, delta=1e-5).ok
        with KmsClient(served.url) as client:
            client.release(room.request(client, run_id="run-a"))
        assert _desk_call(desk, "budget.settle", spent_epsilon=0.1).ok
        desk.finish(None)
    finally:
        desk.close()
    with KmsClient(served.url) as client:
        [budget] = client.budgets()
    assert budget["spent"] == 3.0
    with Ledger.open(operator_ws) as ledger:
        [settled] = ledger.find("budget.mirrored", op="settle")
    assert settled.payload["charged"] == 3.0 and settled.payload["spent_epsilon"] == 0.1


def test_the_key_service_keeps_no_budget_for_a_contract_whose_key_it_lacks(
    served_empty: Served,
) -> None:
    client = KmsClient(served_empty.url, token=served_empty.token)
    with client, pytest.raises(PrivacyError, match="holds the key of no private dataset"):
        client.reserve("run-a", CONTRACT_ID, 1.0, 1e-5)


def test_every_budget_route_says_when_the_token_is_refused(served_empty: Served) -> None:
    with KmsClient(served_empty.url, token="not-the-token") as client:
        with pytest.raises(KmsUnavailable, match="refused this client's token"):
            client.budgets()
        with pytest.raises(KmsUnavailable, match="refused this client's token"):
            client.reserve("run-a", CONTRACT_ID, 1.0, 1e-5)


@pytest.fixture
def served_empty(workspace: Workspace, parties: dict[str, Party]) -> Iterator[Served]:
    store_contract(workspace, parties)
    with threaded_server(workspace) as served:
        yield served


def test_budget_show_reads_a_key_services_book(
    provider: tuple[Served, SignedContract], operator_ws: Workspace
) -> None:
    from typer.testing import CliRunner

    from sealroom.cli.main import app

    served, _ = provider
    with KmsClient(served.url) as client:
        client.reserve("run-a", CONTRACT_ID, 2.0, 1e-5)
    runner = CliRunner()
    env = {"SEALROOM_HOME": str(operator_ws.home)}
    shown = runner.invoke(app, ["budget", "show", "--key-service", served.url, "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    [budget] = json.loads(shown.stdout)
    assert budget["reserved"] == 2.0 and budget["runs"][0]["run_id"] == "run-a"
    local = runner.invoke(app, ["budget", "show"], env=env)
    assert "no privacy budget has been used yet" in local.output  # not kept here
