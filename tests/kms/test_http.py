"""The same protocol over HTTP: KmsClient against the FastAPI app on a real loopback socket."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sealroom.crypto.identity import Party
from sealroom.errors import KeyReleaseDenied, SealroomError
from sealroom.httpguard import check_loopback, write_token
from sealroom.kms import KeyService, KmsClient, KmsUnavailable
from sealroom.kms.server import create_app, guard_settings
from sealroom.ledger import Ledger
from sealroom.workspace import Workspace
from tests.kms.conftest import Room, default_policy
from tests.kms.factories import CONTRACT_ID, DATASET_DIGEST, make_pipeline, store_contract
from tests.kms.http_server import Served, free_port, threaded_server

TOKEN = "t" * 43


@pytest.fixture
def served(workspace: Workspace, parties: dict[str, Party], data_key: bytes) -> Iterator[Served]:
    store_contract(workspace, parties)
    with KeyService(workspace) as service:
        service.import_key(DATASET_DIGEST, data_key, "hospital", CONTRACT_ID, default_policy())
    with threaded_server(workspace) as server:
        yield server


@pytest.fixture
def server_url(served: Served) -> str:
    return served.url


@pytest.fixture
def token(served: Served) -> str:
    return served.token


def test_release_over_http(server_url: str, token: str, room: Room, data_key: bytes) -> None:
    with KmsClient(server_url, token=token) as client:
        assert client.health()
        client.reserve("run-1", CONTRACT_ID, 2.0, 1e-5)  # the contract's dataset is private
        sealed = client.release(room.request(client, run_id="run-1"))
    assert room.open(sealed) == data_key


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"contract_id": "another-contract"}, "not released under contract another-contract"),
        ({"nonce": b"x" * 32}, "nonce was not issued"),
        (
            {"pipeline_model": make_pipeline(privacy={"epsilon": 5.0, "delta": 1e-5})},
            "epsilon 5.0 exceeds dataset mnist's limit 3.0",
        ),
    ],
)
def test_denials_over_http_match_the_embedded_ones(
    server_url: str,
    token: str,
    workspace: Workspace,
    room: Room,
    data_key: bytes,
    overrides: dict[str, object],
    reason: str,
) -> None:
    with KmsClient(server_url, token=token) as client:
        request = room.request(client, **overrides)
        with pytest.raises(KeyReleaseDenied, match=reason) as denied:
            client.release(request)
    assert base64.b64encode(data_key).decode() not in str(denied.value)
    with Ledger.open(workspace) as ledger:
        [entry] = ledger.entries("key.denied")
    assert reason in entry.payload["reason"]


def test_replay_over_http_is_denied(server_url: str, token: str, room: Room) -> None:
    with KmsClient(server_url, token=token) as client:
        client.reserve("run-1", CONTRACT_ID, 2.0, 1e-5)
        request = room.request(client, run_id="run-1")
        client.release(request)
        with pytest.raises(KeyReleaseDenied, match="already used"):
            client.release(request)


def _test_client(workspace: Workspace) -> TestClient:
    guard = guard_settings(8700, TOKEN)
    return TestClient(
        create_app(workspace, guard),
        base_url="http://127.0.0.1:8700",
        headers={"authorization": f"Bearer {TOKEN}"},
    )


def test_malformed_request_is_counted_not_ledgered(
    workspace: Workspace, imported: KeyService
) -> None:
    with _test_client(workspace) as http:
        response = http.post("/v1/release", content=b'{"nonce": 5}')
        stats = http.get("/v1/stats").json()
    assert response.status_code == 400
    assert response.json()["error"].startswith("malformed release request: ")
    assert stats["refused"] == {"malformed": 1}
    with Ledger.open(workspace) as ledger:
        assert ledger.entries("key.denied") == []


def test_client_reads_its_token_from_env_or_file(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with KmsClient(served.url) as client, pytest.raises(KmsUnavailable, match="HTTP 401"):
        client.request_nonce()
    monkeypatch.setenv("SEALROOM_KMS_TOKEN", served.token)
    with KmsClient(served.url) as client:
        assert len(client.request_nonce()) == 32
    monkeypatch.delenv("SEALROOM_KMS_TOKEN")
    write_token(tmp_path / "token", served.token)
    with KmsClient(served.url, token_file=tmp_path / "token") as client:
        assert len(client.request_nonce()) == 32
    monkeypatch.setenv("SEALROOM_KMS_TOKEN_FILE", str(tmp_path / "token"))
    with KmsClient(served.url) as client:
        assert len(client.request_nonce()) == 32


def test_unreachable_service_is_a_clear_error() -> None:
    with KmsClient(f"http://127.0.0.1:{free_port()}", timeout=2) as client:
        assert not client.health()
        with pytest.raises(KmsUnavailable, match="unreachable"):
            client.request_nonce()


def test_server_binds_loopback_only() -> None:
    check_loopback("127.0.0.1")
    check_loopback("::1")
    check_loopback("localhost")
    with pytest.raises(SealroomError, match="loopback only"):
        check_loopback("0.0.0.0")


def test_oversized_request_is_refused_before_the_handler(
    workspace: Workspace, imported: KeyService
) -> None:
    with _test_client(workspace) as http:
        response = http.post("/v1/release", content=b" " * (2 << 20))
        stats = http.get("/v1/stats").json()
    assert response.status_code == 413
    assert "exceeds" in response.json()["error"]
    assert stats["refused"] == {"body_too_large": 1}
    with Ledger.open(workspace) as ledger:
        assert ledger.entries("key.denied") == []
