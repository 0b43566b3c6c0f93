"""The request path: every refusal has its status, a fixed line, and releases nothing."""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serve_harness import MODEL, Room, expected_labels, make_room

from sealroom.contract.inference import ServingLimits
from sealroom.crypto.hpke_context import RoomHpkeKey
from sealroom.crypto.signing import SigningKey
from sealroom.serve.receipts import ReceiptProof, client_fingerprint, verify_receipt_proof
from sealroom.serve.service import ReplayGuard, ServeRefusal

pytestmark = pytest.mark.anyio
CANARY = 1234.5678  # an input value that must never appear in an error line


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def room(tmp_path: Path) -> AsyncIterator[Room]:
    made = make_room(tmp_path, budget=1000, lease_size=16)
    yield made
    await made.service.stop()


def batch(n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)


async def refused(room: Room, body: bytes, status: int) -> ServeRefusal:
    """Assert ``body`` is refused with ``status`` and that nothing was served or charged."""
    before = room.service.stats.snapshot()
    used = {fp: room.service.budget.used(fp) for fp in ("anonymous", *fingerprints(room))}
    with pytest.raises(ServeRefusal) as refusal:
        await room.service.infer(body)
    after = room.service.stats.snapshot()
    assert refusal.value.status == status, str(refusal.value)
    assert after["examples_served"] == before["examples_served"]
    assert after["batches"] == before["batches"]
    if status != 429:
        assert used == {fp: room.service.budget.used(fp) for fp in used}
    assert str(CANARY) not in str(refusal.value) and "alice" not in str(refusal.value)
    return refusal.value


def fingerprints(room: Room) -> list[str]:
    return [client_fingerprint(k.public_b64) for k in room.keys.values()]


async def test_a_request_gets_its_own_answer_and_a_receipt_that_verifies(room: Room) -> None:
    array = batch(3)
    body, key = room.request(array)
    answer = Room.open(await room.service.infer(body), key)
    assert [o["label"] for o in answer["outputs"]] == expected_labels(array)
    proof = ReceiptProof.model_validate(answer["receipt"])
    assert proof.ledger is None
    receipt = proof.receipt
    assert receipt.request_sha256 == key.request_sha256
    assert receipt.client == client_fingerprint(room.keys["alice"].public_b64)
    assert receipt.model_digest == MODEL and receipt.contract_digest == room.contract.digest
    verify_receipt_proof(proof, trusted_signers={room.tee.key.public_b64})
    assert room.service.budget.used(receipt.client) == 3


async def test_tampered_ciphertext_is_refused(room: Room) -> None:
    body, _ = room.request(batch())
    tampered = bytearray(body)
    tampered[len(body) // 2] ^= 1
    refusal = await refused(room, bytes(tampered), 400)
    assert "cannot be opened" in str(refusal)


async def test_a_request_sealed_to_another_hpke_key_is_refused(room: Room) -> None:
    body, _ = room.request(batch(), room_public=RoomHpkeKey.generate().public_raw)
    await refused(room, body, 400)


async def test_an_unknown_client_is_refused(room: Room) -> None:
    body, _ = room.request(batch(), "mallory", key=SigningKey.generate())
    assert "not listed" in str(await refused(room, body, 403))


async def test_a_wrong_client_signature_is_refused(room: Room) -> None:
    body, _ = room.request(batch(), "alice", key=room.keys["bob"])
    assert "signature does not verify" in str(await refused(room, body, 401))


async def test_an_unsigned_request_to_a_restricted_contract_is_refused(room: Room) -> None:
    body, _ = room.request(batch(), None)
    await refused(room, body, 401)


async def test_a_request_for_another_contract_is_refused(room: Room) -> None:
    body, _ = room.request(batch(), contract_digest="sha256:" + "ee" * 32)
    assert "another contract" in str(await refused(room, body, 409))


async def test_a_replayed_request_is_refused_and_not_charged_twice(room: Room) -> None:
    body, key = room.request(batch(2))
    Room.open(await room.service.infer(body), key)
    alice = client_fingerprint(room.keys["alice"].public_b64)
    assert room.service.budget.used(alice) == 2
    assert "replayed" in str(await refused(room, body, 409))
    assert room.service.budget.used(alice) == 2


@pytest.mark.parametrize("skew", [-120.0, 120.0])
async def test_a_stale_or_future_request_is_refused(room: Room, skew: float) -> None:
    body, _ = room.request(batch(), issued_at=time.time() + skew)
    assert "stale" in str(await refused(room, body, 400))


def test_replay_guard_forgets_only_what_would_be_stale() -> None:
    guard = ReplayGuard(window_s=60)
    guard.check_fresh(1000.0, 1030.0)
    guard.remember(b"a" * 16, 1000.0, 1030.0)
    with pytest.raises(ServeRefusal, match="replayed"):
        guard.remember(b"a" * 16, 1000.0, 1059.0)
    guard.remember(b"b" * 16, 1100.0, 1061.0)  # evicts "a": it is stale from now on
    with pytest.raises(ServeRefusal, match="stale"):
        guard.check_fresh(1000.0, 1061.0)
    for bad in (math.nan, math.inf):
        with pytest.raises(ServeRefusal, match="stale"):
            guard.check_fresh(bad, 1000.0)


def test_a_full_replay_set_refuses_instead_of_forgetting() -> None:
    guard = ReplayGuard(window_s=60, max_entries=2)
    guard.remember(b"a" * 16, 1000.0, 1000.0)
    guard.remember(b"b" * 16, 1000.0, 1000.0)
    with pytest.raises(ServeRefusal) as refusal:
        guard.remember(b"c" * 16, 1000.0, 1000.0)
    assert refusal.value.status == 503


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((2, 5), CANARY, dtype=np.float32), "shape \\[4\\]"),
        (np.full((2, 4), CANARY, dtype=np.float64), "float32"),
        (np.full((65, 4), CANARY, dtype=np.float32), "1 to 64 examples"),
        (np.full((2, 2, 2), CANARY, dtype=np.float32), "shape \\[4\\]"),
    ],
)
async def test_an_input_the_signature_does_not_describe_is_refused(
    room: Room, array: np.ndarray, message: str
) -> None:
    body, _ = room.request(array)
    refusal = await refused(room, body, 422)
    assert message.replace("\\", "") in str(refusal)


async def test_over_budget_is_refused_and_the_lease_was_committed_first(tmp_path: Path) -> None:
    room = make_room(tmp_path, budget=5, lease_size=2)
    try:
        body, key = room.request(batch(4))
        Room.open(await room.service.infer(body), key)
        alice = client_fingerprint(room.keys["alice"].public_b64)
        leased = [call["charged"].get(alice, 0) for call in room.sink_calls]
        assert leased and max(leased) >= 4  # committed before the answer came back
        body, _ = room.request(batch(2))
        refusal = await refused(room, body, 429)
        assert "4 of 5" in str(refusal)
        assert refusal.retry_after is None
    finally:
        await room.service.stop()


async def test_a_restart_reloads_the_committed_totals(tmp_path: Path) -> None:
    first = make_room(tmp_path, budget=10, lease_size=4)
    body, key = first.request(batch(3))
    Room.open(await first.service.infer(body), key)
    await first.service.stop()
    alice = client_fingerprint(first.keys["alice"].public_b64)
    committed = max(call["charged"][alice] for call in first.sink_calls if alice in call["charged"])
    assert committed >= 3
    second = make_room(
        tmp_path, budget=10, lease_size=4, keys=first.keys, charged={alice: committed}
    )
    try:
        assert second.service.budget.used(alice) == committed  # starts from the ledger
        body, key = second.request(batch(10 - committed), key=first.keys["alice"])
        Room.open(await second.service.infer(body), key)
        body, _ = second.request(batch(1), key=first.keys["alice"])
        await refused(second, body, 429)
    finally:
        await second.service.stop()


async def test_a_lease_that_cannot_be_committed_refuses_with_503(tmp_path: Path) -> None:
    room = make_room(tmp_path, budget=10, fail_sink=True)
    try:
        body, _ = room.request(batch(1))
        with pytest.raises(ServeRefusal) as refusal:
            await room.service.infer(body)
        assert refusal.value.status == 503
        assert room.service.stats.snapshot()["examples_served"] == 0
    finally:
        await room.service.stop()


async def test_an_open_contract_serves_anonymous_clients_from_one_budget(tmp_path: Path) -> None:
    room = make_room(tmp_path, open_=True, budget=3, lease_size=1)
    try:
        body, key = room.request(batch(2), None)
        answer = Room.open(await room.service.infer(body), key)
        assert answer["receipt"]["receipt"]["client"] == "anonymous"
        body, _ = room.request(batch(2), None)
        await refused(room, body, 429)
    finally:
        await room.service.stop()


async def test_64_concurrent_requests_each_get_their_own_answer(tmp_path: Path) -> None:
    limits = ServingLimits(max_batch_size=16, max_wait_ms=5, queue_size=1024)
    room = make_room(tmp_path, limits=limits)
    try:
        arrays = [batch(1 + i % 3, seed=i) for i in range(64)]
        sealed = [room.request(a, "alice" if i % 2 else "bob") for i, a in enumerate(arrays)]
        answers = await asyncio.gather(*(room.service.infer(body) for body, _ in sealed))
        for array, (_, key), body in zip(arrays, sealed, answers, strict=True):
            answer = Room.open(body, key)
            assert [o["label"] for o in answer["outputs"]] == expected_labels(array)
            assert answer["receipt"]["receipt"]["request_sha256"] == key.request_sha256
        stats = room.service.stats.snapshot()
        assert stats["batches"] < 64 and stats["examples_served"] == sum(len(a) for a in arrays)
        sequences = sorted(
            Room.open(b, k)["receipt"]["receipt"]["sequence"]
            for b, (_, k) in zip(answers, sealed, strict=True)
        )
        assert sequences == list(range(64))
    finally:
        await room.service.stop()


async def test_batch_roots_are_committed_and_their_ledger_receipts_kept(room: Room) -> None:
    body, key = room.request(batch(1))
    proof = ReceiptProof.model_validate(Room.open(await room.service.infer(body), key)["receipt"])
    await room.service.committer.flush()
    found = room.service.commitment(proof.batch.root)
    assert found is not None
    ledger_receipt, payload = found
    assert ledger_receipt.kind == "inference.receipts"
    assert proof.batch.root in [b["root"] for b in payload["batches"]]
    full = proof.model_copy(update={"ledger": ledger_receipt, "ledger_payload": payload})
    verify_receipt_proof(
        full,
        ledger_public_key=room.ledger.public_key_b64,
        trusted_signers={room.tee.key.public_b64},
    )


async def test_refusal_lines_are_fixed_and_never_echo_the_request(room: Room) -> None:
    lines: set[str] = set()
    for _ in range(2):
        body, _ = room.request(np.full((1, 3), CANARY, dtype=np.float32), request_id=os.urandom(16))
        lines.add(str(await refused(room, body, 422)))
    assert len(lines) == 1


async def test_operator_calls_never_overlap_and_attestations_are_bounded(tmp_path: Path) -> None:
    room = make_room(tmp_path)
    service = room.service
    active = {"now": 0, "most": 0}
    guard = threading.Lock()

    def counted(call: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def wrapper(arg: Any) -> Any:
            with guard:
                active["now"] += 1
                active["most"] = max(active["most"], active["now"])
            time.sleep(0.02)
            with guard:
                active["now"] -= 1
            return call(arg)

        return wrapper

    service._attest = counted(service._attest)  # type: ignore[method-assign]
    service._sink = counted(service._sink)  # type: ignore[method-assign]
    try:
        body, key = room.request(batch(1))
        Room.open(await service.infer(body), key)
        results = await asyncio.gather(
            *(service.attestation(os.urandom(32)) for _ in range(6)),
            service.committer.flush(force=True),
            return_exceptions=True,
        )
    finally:
        await service.stop()
    refusals = [r for r in results if isinstance(r, ServeRefusal)]
    assert active["most"] == 1
    assert refusals and all(r.status == 503 for r in refusals)
    assert sum(1 for r in results[:6] if not isinstance(r, BaseException)) == 4
