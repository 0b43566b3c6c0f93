"""The committer: few ledger entries, leases at once, nothing lost when the sink fails."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from sealroom.crypto.signing import SigningKey
from sealroom.ledger.entries import Receipt
from sealroom.ledger.ledger import Ledger
from sealroom.serve.attestation import new_instance_id
from sealroom.serve.commit import CommitFailed, Committer
from sealroom.serve.receipts import BatchSigner, InferenceReceipt, SignedBatch

pytestmark = pytest.mark.anyio
INSTANCE = new_instance_id()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Sink:
    def __init__(self, tmp_path: Path) -> None:
        self.ledger = Ledger(tmp_path / "ledger.db", SigningKey.generate())
        self.calls: list[dict[str, Any]] = []
        self.threads: set[str] = set()
        self.fail = False

    def __call__(self, payload: dict[str, Any]) -> Receipt:
        self.threads.add(threading.current_thread().name)
        if self.fail:
            raise RuntimeError("operator unreachable: token=secret")
        self.calls.append(payload)
        return self.ledger.append("inference.receipts", payload)


def signed_batches(n: int) -> list[SignedBatch]:
    signer = BatchSigner(SigningKey.generate(), INSTANCE)
    batches = []
    for seq in range(n):
        receipt = InferenceReceipt(
            request_sha256="00" * 32,
            response_sha256="11" * 32,
            model_digest="sha256:" + "22" * 32,
            measurement="aa" * 32,
            contract_id="c",
            contract_digest="sha256:" + "33" * 32,
            client="anonymous",
            sequence=seq,
            issued_at=0.0,
            instance=INSTANCE,
            insecure=True,
        )
        batches.append(signer.sign([receipt])[0][2])
    return batches


def committer(sink: Sink, **args: Any) -> Committer:
    return Committer(sink, contract_id="c", instance=INSTANCE, room_key="k", **args)


async def test_roots_are_flushed_together_off_the_event_loop(tmp_path: Path) -> None:
    sink = Sink(tmp_path)
    commit = committer(sink, interval_s=0.05)
    commit.start()
    try:
        for batch in signed_batches(5):
            commit.add(batch)
        for _ in range(100):
            if sink.calls:
                break
            await asyncio.sleep(0.01)
    finally:
        await commit.close()
    assert len(sink.calls) == 1 and len(sink.calls[0]["batches"]) == 5, sink.calls
    assert threading.main_thread().name not in sink.threads


async def test_a_full_set_of_roots_flushes_before_the_interval(tmp_path: Path) -> None:
    sink = Sink(tmp_path)
    commit = committer(sink, interval_s=30, max_batches=4)
    commit.start()
    try:
        for batch in signed_batches(4):
            await asyncio.to_thread(commit.add, batch)  # the batch worker's thread
        for _ in range(200):
            if sink.calls:
                break
            await asyncio.sleep(0.01)
        assert sink.calls and len(sink.calls[0]["batches"]) == 4
    finally:
        await commit.close()


async def test_an_entry_holds_at_most_max_batches_roots(tmp_path: Path) -> None:
    sink = Sink(tmp_path)
    commit = committer(sink, max_batches=3)
    for batch in signed_batches(7):
        commit.add(batch)
    await commit.flush()
    await commit.flush()
    assert [len(c["batches"]) for c in sink.calls] == [3, 3, 1]


async def test_a_lease_is_committed_before_lease_returns(tmp_path: Path) -> None:
    sink = Sink(tmp_path)
    commit = committer(sink, charged={"sha256:" + "aa" * 32: 7})
    await commit.lease("anonymous", 40)
    assert sink.calls[-1]["charged"] == {"anonymous": 40, "sha256:" + "aa" * 32: 7}


async def test_a_failed_flush_keeps_the_roots_and_says_a_fixed_line(tmp_path: Path) -> None:
    sink = Sink(tmp_path)
    sink.fail = True
    commit = committer(sink, max_pending=3)
    batches = signed_batches(3)
    for batch in batches:
        commit.add(batch)
    with pytest.raises(CommitFailed) as failed:
        await commit.flush()
    assert "secret" not in str(failed.value)
    assert commit.pending == 3 and commit.backlogged
    with pytest.raises(CommitFailed):
        await commit.lease("anonymous", 5)
    sink.fail = False
    await commit.flush()
    assert commit.pending == 0 and not commit.backlogged
    found = commit.receipt_for(batches[0].root)
    assert found is not None and found[1]["charged"] == {"anonymous": 5}


async def test_kept_ledger_receipts_are_bounded(tmp_path: Path) -> None:
    sink = Sink(tmp_path)
    commit = committer(sink, keep=2)
    batches = signed_batches(3)
    for batch in batches:
        commit.add(batch)
        await commit.flush()
    assert commit.receipt_for(batches[0].root) is None
    assert commit.receipt_for(batches[2].root) is not None


async def test_nothing_new_writes_nothing(tmp_path: Path) -> None:
    sink = Sink(tmp_path)
    commit = committer(sink)
    await commit.flush()
    assert sink.calls == []
