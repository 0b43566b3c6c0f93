"""The same protocol over HTTP: KmsClient against the FastAPI app on a real loopback socket."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi.testclient import TestClient

from sealroom.crypto.identity import Party
from sealroom.errors import KeyReleaseDenied, SealroomError
from sealroom.kms import KeyService, KmsClient, KmsUnavailable
from sealroom.kms.server import check_loopback, create_app
from sealroom.ledger import Ledger
from sealroom.workspace import Workspace
from tests.kms.conftest import Room, default_policy
from tests.kms.factories import CONTRACT_ID, DATASET_DIGEST, make_pipeline, store_contract


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server_url(workspace: Workspace, parties: dict[str, Party], data_key: bytes) -> Iterator[str]:
    store_contract(workspace, parties)
    with KeyService(workspace) as service:
        service.import_key(DATASET_DIGEST, data_key, "hospital", CONTRACT_ID, default_policy())
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(workspace), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("key service did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_release_over_http(server_url: str, room: Room, data_key: bytes) -> None:
    with KmsClient(server_url) as client:
        assert client.health()
        sealed = client.release(room.request(client))
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
    workspace: Workspace,
    room: Room,
    data_key: bytes,
    overrides: dict[str, object],
    reason: str,
) -> None:
    with KmsClient(server_url) as client:
        request = room.request(client, **overrides)
        with pytest.raises(KeyReleaseDenied, match=reason) as denied:
            client.release(request)
    assert base64.b64encode(data_key).decode() not in str(denied.value)
    with Ledger.open(workspace) as ledger:
        [entry] = ledger.entries("key.denied")
    assert reason in entry.payload["reason"]


def test_replay_over_http_is_denied(server_url: str, room: Room) -> None:
    with KmsClient(server_url) as client:
        request = room.request(client)
        client.release(request)
        with pytest.raises(KeyReleaseDenied, match="already used"):
            client.release(request)


def test_malformed_request_is_a_recorded_denial(workspace: Workspace, imported: KeyService) -> None:
    with TestClient(create_app(workspace)) as http:
        response = http.post("/v1/release", content=b'{"nonce": 5}')
    assert response.status_code == 403
    assert "malformed release request" in response.json()["denied"]
    with Ledger.open(workspace) as ledger:
        [entry] = ledger.entries("key.denied")
    assert entry.payload["reason"].startswith("malformed release request")


def test_unreachable_service_is_a_clear_error() -> None:
    with KmsClient(f"http://127.0.0.1:{_free_port()}", timeout=2) as client:
        assert not client.health()
        with pytest.raises(KmsUnavailable, match="unreachable"):
            client.request_nonce()


def test_server_binds_loopback_only() -> None:
    check_loopback("127.0.0.1")
    check_loopback("::1")
    check_loopback("localhost")
    with pytest.raises(SealroomError, match="loopback only"):
        check_loopback("0.0.0.0")


def test_oversized_request_is_a_recorded_denial(workspace: Workspace, imported: KeyService) -> None:
    with TestClient(create_app(workspace)) as http:
        response = http.post("/v1/release", content=b" " * (2 << 20))
    assert response.status_code == 403
    assert "exceeds" in response.json()["denied"]
