"""The HTTP face: statuses and headers for each refusal, public vs operator routes."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_harness import MODEL, Room, expected_labels, make_room

from sealroom.contract.inference import ServingLimits
from sealroom.serve.app import SEALED_TYPE, create_app, guard_settings
from sealroom.serve.attestation import RoomAttestation, verify_room_attestation
from sealroom.serve.receipts import ReceiptProof, client_fingerprint

pytestmark = pytest.mark.anyio
PORT = 8470
TOKEN = "operator-token-" + "x" * 20
BASE = f"http://127.0.0.1:{PORT}"
SEALED = {"content-type": SEALED_TYPE}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def client_for(room: Room) -> httpx.AsyncClient:
    app = create_app(room.service, guard_settings(room.service, PORT, TOKEN))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


@pytest.fixture
async def room(tmp_path: Path) -> AsyncIterator[Room]:
    made = make_room(tmp_path, limits=ServingLimits(max_body_bytes=4096))
    yield made
    await made.service.stop()


def batch(n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)


async def test_a_sealed_request_gets_a_sealed_answer(room: Room) -> None:
    array = batch(2)
    body, key = room.request(array)
    async with client_for(room) as http:
        response = await http.post("/v1/infer", content=body, headers=SEALED)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == SEALED_TYPE
    answer = Room.open(response.content, key)
    assert [o["label"] for o in answer["outputs"]] == expected_labels(array)
    assert b"label" not in response.content  # sealed on the wire


async def test_a_tampered_request_is_a_json_400(room: Room) -> None:
    body, _ = room.request(batch())
    tampered = body[:-1] + bytes([body[-1] ^ 1])  # always an edit (a fixed byte is not, 1 in 256)
    async with client_for(room) as http:
        response = await http.post("/v1/infer", content=tampered, headers=SEALED)
    assert response.status_code == 400
    assert list(response.json()) == ["error"]


async def test_a_wrong_content_type_is_415(room: Room) -> None:
    body, _ = room.request(batch())
    async with client_for(room) as http:
        response = await http.post(
            "/v1/infer", content=body, headers={"content-type": "text/plain"}
        )
    assert response.status_code == 415


async def test_an_oversized_body_is_413_and_never_reaches_the_service(room: Room) -> None:
    body, _ = room.request(batch(400))  # 400 * 4 float32 > 4096 bytes
    assert len(body) > 4096
    async with client_for(room) as http:
        response = await http.post("/v1/infer", content=body, headers=SEALED)
    assert response.status_code == 413
    assert room.service.stats.snapshot()["requests"] == {}


async def test_an_unknown_client_is_403_and_a_replay_is_409(room: Room) -> None:
    from sealroom.crypto.signing import SigningKey

    stranger, _ = room.request(batch(), "mallory", key=SigningKey.generate())
    body, _ = room.request(batch())
    async with client_for(room) as http:
        assert (await http.post("/v1/infer", content=stranger, headers=SEALED)).status_code == 403
        assert (await http.post("/v1/infer", content=body, headers=SEALED)).status_code == 200
        replay = await http.post("/v1/infer", content=body, headers=SEALED)
    assert replay.status_code == 409 and "replayed" in replay.json()["error"]


async def test_over_budget_is_429_without_retry_after(tmp_path: Path) -> None:
    room = make_room(tmp_path, budget=2, lease_size=1)
    try:
        async with client_for(room) as http:
            ok, _ = room.request(batch(2))
            assert (await http.post("/v1/infer", content=ok, headers=SEALED)).status_code == 200
            more, _ = room.request(batch(1))
            response = await http.post("/v1/infer", content=more, headers=SEALED)
        assert response.status_code == 429 and "retry-after" not in response.headers
        assert "query budget spent" in response.json()["error"]
    finally:
        await room.service.stop()


class Gate:
    """Holds the model until released, so a test can fill the queue or outwait a timeout."""

    def __init__(self, room: Room) -> None:
        self.open = threading.Event()
        self.entered = threading.Event()
        run = room.service.engine.run

        def gated(batch: np.ndarray) -> np.ndarray:
            self.entered.set()
            self.open.wait(10)
            return run(batch)

        room.service.engine.run = gated  # type: ignore[method-assign]


async def test_a_flood_is_503_with_retry_after(tmp_path: Path) -> None:
    limits = ServingLimits(max_batch_size=1, max_wait_ms=0, queue_size=2)
    room = make_room(tmp_path, limits=limits)
    gate = Gate(room)
    try:
        async with client_for(room) as http:
            bodies = [room.request(batch(1, seed=i)) for i in range(4)]
            first = asyncio.create_task(
                http.post("/v1/infer", content=bodies[0][0], headers=SEALED)
            )
            await asyncio.to_thread(gate.entered.wait, 5)
            queued = asyncio.create_task(
                http.post("/v1/infer", content=bodies[1][0], headers=SEALED)
            )
            queued2 = asyncio.create_task(
                http.post("/v1/infer", content=bodies[2][0], headers=SEALED)
            )
            while room.service.batcher.queued_examples < 2:
                await asyncio.sleep(0.005)
            flood = await http.post("/v1/infer", content=bodies[3][0], headers=SEALED)
            gate.open.set()
            done = await asyncio.gather(first, queued, queued2)
        assert flood.status_code == 503 and int(flood.headers["retry-after"]) >= 1
        alice = client_fingerprint(room.keys["alice"].public_b64)
        assert room.service.budget.used(alice) == 3  # the refused request was not charged
        assert [r.status_code for r in done] == [200, 200, 200]
        for response, (_, key), seed in zip(done, bodies, range(3), strict=False):
            assert (
                Room.open(response.content, key)["outputs"][0]["label"]
                == expected_labels(batch(1, seed=seed))[0]
            )
    finally:
        gate.open.set()
        await room.service.stop()


async def test_a_request_not_answered_in_time_is_504_and_nothing_is_returned(
    tmp_path: Path,
) -> None:
    limits = ServingLimits(max_batch_size=1, max_wait_ms=0, request_timeout_s=0.2)
    room = make_room(tmp_path, limits=limits)
    gate = Gate(room)
    try:
        async with client_for(room) as http:
            body, _ = room.request(batch(1))
            response = await http.post("/v1/infer", content=body, headers=SEALED)
        assert response.status_code == 504
        assert response.headers["content-type"] == "application/json"
    finally:
        gate.open.set()
        await room.service.stop()


async def test_stats_need_the_operator_token_and_are_aggregate(room: Room) -> None:
    body, _ = room.request(batch(3))
    async with client_for(room) as http:
        await http.post("/v1/infer", content=body, headers=SEALED)
        assert (await http.get("/v1/stats")).status_code == 401
        stats = (await http.get("/v1/stats", headers={"authorization": f"Bearer {TOKEN}"})).json()
    assert stats["requests"] == {"200": 1}
    assert stats["examples_served"] == 3 and stats["batches"] == 1
    assert stats["latency_ms"]["count"] == 1
    for stage in ("http", "open", "checks", "queue", "model", "receipt", "seal", "total"):
        assert stats["stages_ms"][stage]["count"] == 1, stage
    assert room.contract.digest not in str(stats) and "alice" not in str(stats)


async def test_attestation_is_fresh_for_the_nonce_and_verifies(room: Room) -> None:
    nonce = os.urandom(32)
    async with client_for(room) as http:
        response = await http.get("/v1/attestation", params={"nonce": nonce.hex()})
        bad = await http.get("/v1/attestation", params={"nonce": "zz"})
    assert response.status_code == 200 and bad.status_code == 400
    att = RoomAttestation.model_validate_json(response.content)
    assert att.nonce == nonce and att.hpke_public_raw == room.hpke.public_raw
    verify_room_attestation(
        att, nonce=nonce, contract=room.contract, model_digest=MODEL,
        trusted_signers={room.tee.key.public_b64},
    )  # fmt: skip


async def test_commitments_are_public_by_root(room: Room) -> None:
    body, key = room.request(batch(1))
    async with client_for(room) as http:
        response = await http.post("/v1/infer", content=body, headers=SEALED)
        root = ReceiptProof.model_validate(Room.open(response.content, key)["receipt"]).batch.root
        assert (await http.get(f"/v1/commitments/{'0' * 64}")).status_code == 404
        assert (await http.get("/v1/commitments/xyz")).status_code == 400
        await room.service.committer.flush()
        found = await http.get(f"/v1/commitments/{root}")
        health = await http.get("/v1/health")
    assert found.status_code == 200
    assert found.json()["ledger"]["kind"] == "inference.receipts"
    assert root in [b["root"] for b in found.json()["ledger_payload"]["batches"]]
    assert health.json() == {"status": "ok"}


async def test_commitments_tell_a_client_nothing_of_other_clients_usage(
    tmp_path: Path,
) -> None:
    """The public roots' entry names no client and no total: bob, fetching the commitment
    of his own answer, cannot learn how much alice queried (her fingerprint is public)."""
    room = make_room(tmp_path, budget=100, lease_size=4, limits=ServingLimits(max_body_bytes=4096))
    alice = client_fingerprint(room.keys["alice"].public_b64)
    bob = client_fingerprint(room.keys["bob"].public_b64)
    try:
        async with client_for(room) as http:
            for n, who in ((7, "alice"), (3, "bob")):
                body, key = room.request(batch(n), who)
                response = await http.post("/v1/infer", content=body, headers=SEALED)
                assert response.status_code == 200, response.text
            proof = ReceiptProof.model_validate(Room.open(response.content, key)["receipt"])
            await room.service.committer.flush()
            found = await http.get(f"/v1/commitments/{proof.batch.root}")
    finally:
        await room.service.stop()
    assert found.status_code == 200
    payload = found.json()["ledger_payload"]
    assert set(payload) == {"contract_id", "instance", "room_key", "batches"}
    for receipts in room.ledger.entries("inference.receipts"):
        assert "charged" not in receipts.payload
    for leak in (alice, bob, alice[7:], bob[7:], '"charged"'):
        assert leak not in found.text
    # the totals are committed, to their own entry the HTTP face never serves
    [*_, charged] = room.ledger.entries("inference.charged")
    assert charged.payload["charged"] == {alice: 7, bob: 4}  # leases: what was asked, or 4


def test_a_guard_body_limit_above_the_contract_is_refused(tmp_path: Path) -> None:
    from sealroom.errors import SealroomError
    from sealroom.httpguard import GuardSettings

    room = make_room(tmp_path, limits=ServingLimits(max_body_bytes=4096))
    settings = GuardSettings.for_loopback(
        PORT, TOKEN, public_paths=["/v1/infer"], max_body_bytes=1 << 20
    )
    with pytest.raises(SealroomError, match="exceeds the contract"):
        create_app(room.service, settings)


async def test_64_concurrent_clients_over_real_uvicorn_and_nothing_in_the_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    import logging
    import socket

    import uvicorn

    canary = 1234.5678
    room = make_room(tmp_path, limits=ServingLimits(max_batch_size=16, max_wait_ms=2))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(room.service, guard_settings(room.service, port, TOKEN))
    config = uvicorn.Config(app, log_config=None, log_level="debug", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    caplog.set_level(logging.DEBUG)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        arrays = [np.full((1, 4), canary, dtype=np.float32) * (1 + (i % 5)) - i for i in range(64)]
        sealed = [room.request(a, "alice" if i % 2 else "bob") for i, a in enumerate(arrays)]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            bad, _ = room.request(np.full((1, 3), canary, dtype=np.float32))
            refused = await http.post("/v1/infer", content=bad, headers=SEALED)
            responses = await asyncio.gather(
                *(http.post("/v1/infer", content=body, headers=SEALED) for body, _ in sealed)
            )
        assert refused.status_code == 422
        assert [r.status_code for r in responses] == [200] * 64
        for array, (_, key), response in zip(arrays, sealed, responses, strict=True):
            outputs = Room.open(response.content, key)["outputs"]
            assert [o["label"] for o in outputs] == expected_labels(array)
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)
    assert room.sink_calls, "stopping the app flushed the receipts"
    logged = "\n".join(r.getMessage() for r in caplog.records) + "".join(capfd.readouterr())
    assert "/v1/infer" in logged  # the access log ran, and says no more than the path
    for secret in (str(canary), "alice", "bob", arrays[0].tobytes().hex()[:16]):
        assert secret not in logged, secret
