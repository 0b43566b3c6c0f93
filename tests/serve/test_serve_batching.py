"""The dynamic batcher: right answer to the right request, bounded queue, timeouts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import pytest

from sealroom.serve.batching import (
    BatchFailed,
    DynamicBatcher,
    QueueFull,
    RequestTimedOut,
    ServiceStopped,
)
from sealroom.serve.stats import ServeStats

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Model:
    """Concatenates the batch, runs one 'model' call (x * 3 + 1), splits it back."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []  # examples per request, per batch
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, payloads: list[np.ndarray]) -> Sequence[np.ndarray]:
        self.entered.set()
        assert self.gate.wait(5)
        self.batches.append([len(p) for p in payloads])
        out = np.concatenate(payloads) * 3 + 1
        bounds = np.cumsum([len(p) for p in payloads])[:-1]
        return np.split(out, bounds)


def batcher(model: Model, **overrides: float) -> DynamicBatcher[np.ndarray, np.ndarray]:
    settings: dict[str, float] = {
        "max_batch_size": 8,
        "max_wait_ms": 5,
        "queue_size": 64,
        "timeout_s": 5,
    }
    settings.update(overrides)
    return DynamicBatcher(
        model,
        max_batch_size=int(settings["max_batch_size"]),
        max_wait_ms=settings["max_wait_ms"],
        queue_size=int(settings["queue_size"]),
        timeout_s=settings["timeout_s"],
        stats=ServeStats(),
    )


async def test_interleaved_requests_get_exactly_their_own_outputs() -> None:
    model = Model()
    runner = batcher(model, max_batch_size=16, max_wait_ms=3, queue_size=256)
    rng = np.random.default_rng(1)
    inputs = [rng.normal(size=(int(rng.integers(1, 4)), 2)) for _ in range(64)]

    async def one(i: int) -> np.ndarray:
        await asyncio.sleep(float(rng.random()) * 0.01)
        return await runner.submit(inputs[i], len(inputs[i]))

    try:
        outputs = await asyncio.gather(*(one(i) for i in range(64)))
    finally:
        runner.stop()
    for given, got in zip(inputs, outputs, strict=True):
        np.testing.assert_array_equal(got, given * 3 + 1)
    assert any(len(batch) > 1 for batch in model.batches)  # requests were really batched
    assert all(sum(batch) <= 16 for batch in model.batches)


async def test_a_batch_waits_for_more_requests_up_to_max_wait() -> None:
    model = Model()
    runner = batcher(model, max_wait_ms=200)
    try:
        first = asyncio.create_task(runner.submit(np.ones((1, 2)), 1))
        await asyncio.sleep(0.02)
        second = asyncio.create_task(runner.submit(np.ones((2, 2)), 2))
        await asyncio.gather(first, second)
    finally:
        runner.stop()
    assert model.batches == [[1, 2]]


async def test_a_full_batch_goes_without_waiting() -> None:
    model = Model()
    runner = batcher(model, max_batch_size=4, max_wait_ms=1000)
    try:
        started = asyncio.get_running_loop().time()
        await asyncio.gather(*(runner.submit(np.ones((2, 2)), 2) for _ in range(2)))
        assert asyncio.get_running_loop().time() - started < 0.5
    finally:
        runner.stop()
    assert model.batches == [[2, 2]]


async def test_a_request_larger_than_a_batch_runs_alone() -> None:
    model = Model()
    runner = batcher(model, max_batch_size=4)
    try:
        out = await runner.submit(np.ones((6, 2)), 6)
    finally:
        runner.stop()
    assert out.shape == (6, 2) and model.batches == [[6]]


async def test_a_flood_beyond_the_queue_is_refused_with_retry_after() -> None:
    model = Model()
    model.gate.clear()  # the worker blocks in its first batch
    runner = batcher(model, max_batch_size=1, queue_size=4, max_wait_ms=0)
    try:
        running = asyncio.create_task(runner.submit(np.ones((1, 2)), 1))
        await asyncio.to_thread(model.entered.wait, 5)
        queued = [asyncio.create_task(runner.submit(np.ones((2, 2)), 2)) for _ in range(2)]
        await asyncio.sleep(0.01)
        assert runner.queued_examples == 4
        with pytest.raises(QueueFull, match="queue full") as refused:
            await runner.submit(np.ones((1, 2)), 1)
        assert refused.value.retry_after >= 1
        model.gate.set()
        await asyncio.gather(running, *queued)
    finally:
        runner.stop()


async def test_a_timed_out_request_leaves_the_queue_and_is_never_run() -> None:
    model = Model()
    model.gate.clear()
    runner = batcher(model, max_batch_size=1, max_wait_ms=0, timeout_s=0.2)
    try:
        blocker = asyncio.create_task(runner.submit(np.ones((1, 2)), 1))
        await asyncio.to_thread(model.entered.wait, 5)
        with pytest.raises(RequestTimedOut, match="nothing was returned"):
            await runner.submit(np.full((3, 2), 7.0), 3)
        assert runner.queued_examples == 0
        model.gate.set()
        with pytest.raises(RequestTimedOut):
            await blocker  # it waited as long: also timed out, its result dropped
        after = await runner.submit(np.ones((1, 2)), 1)
        np.testing.assert_array_equal(after, np.full((1, 2), 4.0))
    finally:
        runner.stop()
    assert [b[0] for b in model.batches] == [1, 1]  # the 3-example request never ran


async def test_a_failing_batch_fails_its_requests_with_a_fixed_line() -> None:
    def broken(payloads: list[str]) -> Sequence[str]:
        raise RuntimeError("secret input bytes here")

    runner: DynamicBatcher[str, str] = DynamicBatcher(
        broken, max_batch_size=4, max_wait_ms=1, queue_size=8, timeout_s=5
    )
    try:
        with pytest.raises(BatchFailed) as failed:
            await runner.submit("x", 1)
    finally:
        runner.stop()
    assert "secret" not in str(failed.value)


async def test_a_per_request_error_goes_to_that_request_only() -> None:
    def half(payloads: list[int]) -> Sequence[int | BaseException]:
        return [BatchFailed("odd") if p % 2 else p for p in payloads]

    runner: DynamicBatcher[int, int] = DynamicBatcher(
        half, max_batch_size=4, max_wait_ms=20, queue_size=8, timeout_s=5
    )
    try:
        results = await asyncio.gather(
            *(runner.submit(i, 1) for i in range(4)), return_exceptions=True
        )
    finally:
        runner.stop()
    assert results[0] == 0 and results[2] == 2
    assert isinstance(results[1], BatchFailed) and isinstance(results[3], BatchFailed)


async def test_a_stopped_batcher_refuses() -> None:
    runner = batcher(Model())
    runner.stop()
    with pytest.raises(ServiceStopped):
        await runner.submit(np.ones((1, 2)), 1)


async def test_an_adaptive_batch_goes_at_once_when_nothing_else_is_coming() -> None:
    model = Model()
    runner = batcher(model, max_wait_ms=2000)
    runner.adaptive = True
    try:
        started = asyncio.get_running_loop().time()
        await runner.submit(np.ones((1, 2)), 1)
        assert asyncio.get_running_loop().time() - started < 1.0
    finally:
        runner.stop()


async def test_an_adaptive_batch_waits_for_an_announced_request() -> None:
    model = Model()
    runner = batcher(model, max_wait_ms=2000)
    runner.adaptive = True
    try:
        runner.announce()  # e.g. still being decrypted
        first = asyncio.create_task(runner.submit(np.ones((1, 2)), 1))
        await asyncio.sleep(0.05)
        assert model.batches == []  # the first waits for the announced one
        await runner.submit(np.ones((2, 2)), 2, announced=True)
        await first
        runner.announce()
        lone = asyncio.create_task(runner.submit(np.ones((1, 2)), 1))
        await asyncio.sleep(0.05)
        runner.withdraw()  # refused before it was queued: the waiting batch goes now
        await asyncio.wait_for(lone, 1.0)
    finally:
        runner.stop()
    assert model.batches == [[1, 2], [1]]
