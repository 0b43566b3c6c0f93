"""Dynamic batching: many small requests become one model call.

An asyncio front (``submit``) and ONE worker thread that runs the model (ONNX Runtime
releases the GIL, so the event loop keeps accepting and decrypting while it runs). A batch
is the oldest requests, in order, up to ``max_batch_size`` examples; it is cut when full or
``max_wait_ms`` after its first request arrived (``adaptive``: or as soon as no announced
request is still on its way). A request larger than a batch runs alone.

The queue is bounded in EXAMPLES (a request of 64 examples costs 64 times one of 1):
beyond ``queue_size`` a request is refused at once (:class:`QueueFull`, HTTP 503 with
``Retry-After``), so a flood costs memory proportional to the bound, not to the flood.
A request still waiting after ``timeout_s`` is taken out of the queue and refused
(:class:`RequestTimedOut`, 504); one already running has its result dropped, never handed
to another request. Each job's result travels on its own future: the processor returns
one result per payload, in order, and a length mismatch fails the whole batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sealroom.errors import SealroomError
from sealroom.serve.stats import ServeStats

P = TypeVar("P")
R = TypeVar("R")


class QueueFull(SealroomError):
    """The queue holds ``queue_size`` examples already; try again after ``retry_after`` s."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RequestTimedOut(SealroomError):
    """The request was not answered within the contract's request timeout."""


class ServiceStopped(SealroomError):
    """The batcher is stopping or stopped; nothing more is served."""


class BatchFailed(SealroomError):
    """The batch this request was in failed; fixed message (no data in it)."""


@dataclass(eq=False)
class _Job(Generic[P, R]):
    payload: P
    examples: int
    future: asyncio.Future[R]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.monotonic)
    dropped: bool = False  # timed out after the worker took it: its result goes nowhere


class DynamicBatcher(Generic[P, R]):
    """Queue ``payload``s and run ``process`` on batches of them in one worker thread.

    ``process(payloads)`` returns one result per payload, in order; a result that is an
    exception is raised to that request only.
    """

    def __init__(
        self,
        process: Callable[[list[P]], Sequence[R | BaseException]],
        *,
        max_batch_size: int,
        max_wait_ms: float,
        queue_size: int,
        timeout_s: float,
        stats: ServeStats | None = None,
        name: str = "sealroom-batcher",
        adaptive: bool = False,
    ) -> None:
        if max_batch_size < 1 or queue_size < 1 or timeout_s <= 0 or max_wait_ms < 0:
            raise ValueError("batcher needs max_batch_size, queue_size >= 1 and timeout_s > 0")
        self._process = process
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self._stats = stats or ServeStats()
        self._cond = threading.Condition()
        self._queue: deque[_Job[P, R]] = deque()
        self._queued = 0  # examples in _queue
        self._stopping = False
        self._batch_seconds = 0.0  # moving average, for Retry-After
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._started = False
        # adaptive: wait for more only while announced requests are on their way (decrypting,
        # being checked); a lone request goes at once instead of paying max_wait for nothing
        self.adaptive = adaptive
        self._announced = 0

    @property
    def queued_examples(self) -> int:
        with self._cond:
            return self._queued

    def start(self) -> None:
        with self._cond:
            if self._started:
                return
            self._started = True
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the running batch, refuse everything queued, and end the worker."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._started:
            self._thread.join(timeout)

    def check_room(self, examples: int) -> None:
        """QueueFull now if ``examples`` would not fit (lets a caller refuse before charging)."""
        with self._cond:
            if self._queued and self._queued + examples > self.queue_size:
                raise QueueFull(
                    f"queue full ({self.queue_size} examples waiting); retry later",
                    self._retry_after(),
                )

    def announce(self) -> None:
        """A request is on its way: an adaptive batch waits for it (up to max_wait)."""
        with self._cond:
            self._announced += 1

    def withdraw(self) -> None:
        """An announced request will not come (refused before it was submitted)."""
        with self._cond:
            self._announced -= 1
            self._cond.notify_all()

    async def submit(self, payload: P, examples: int, announced: bool = False) -> R:
        """The result for ``payload`` (``examples`` >= 1 of them), or QueueFull/timeout.

        ``announced``: this request called :meth:`announce`; it is withdrawn here, under
        the same lock that queues it, so the worker never sees it neither coming nor queued.
        """
        if examples < 1:
            if announced:
                self.withdraw()
            raise ValueError("a request carries at least one example")
        self.start()
        loop = asyncio.get_running_loop()
        job: _Job[P, R] = _Job(payload, examples, loop.create_future(), loop)
        with self._cond:
            if announced:
                self._announced -= 1
                self._cond.notify_all()
            if self._stopping:
                raise ServiceStopped("the inference service is stopping")
            if self._queued and self._queued + examples > self.queue_size:
                raise QueueFull(
                    f"queue full ({self.queue_size} examples waiting); retry later",
                    self._retry_after(),
                )
            self._queue.append(job)
            self._queued += examples
            self._stats.queue_depth(self._queued)
            self._cond.notify_all()
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), self.timeout_s)
        except TimeoutError:
            self._drop(job)
            raise RequestTimedOut(
                f"request not answered within {self.timeout_s:g} s; nothing was returned"
            ) from None
        except asyncio.CancelledError:
            self._drop(job)  # the client went away: free its place in the queue
            raise

    def _drop(self, job: _Job[P, R]) -> None:
        with self._cond:
            job.dropped = True
            try:
                self._queue.remove(job)
            except ValueError:
                return  # already taken by the worker: its result is dropped on delivery
            self._queued -= job.examples
            self._stats.queue_depth(self._queued)

    def _retry_after(self) -> int:
        batches_ahead = self._queued / self.max_batch_size
        return max(1, math.ceil(batches_ahead * self._batch_seconds))

    # ----------------------------------------------------------------- worker thread

    def _take(self) -> list[_Job[P, R]] | None:
        """The next batch (None: stop). Waits for a first job, then up to max_wait for more."""
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            deadline = self._queue[0].enqueued + self.max_wait_s
            while (
                not self._stopping
                and self._queue
                and self._queued < self.max_batch_size
                and (not self.adaptive or self._announced > 0)
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch: list[_Job[P, R]] = []
            size = 0
            while self._queue:
                job = self._queue[0]
                if batch and size + job.examples > self.max_batch_size:
                    break
                self._queue.popleft()
                self._queued -= job.examples
                batch.append(job)
                size += job.examples
                if size >= self.max_batch_size:
                    break
            self._stats.queue_depth(self._queued)
            return batch

    def _work(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                break
            if not batch:
                continue
            now = time.monotonic()
            for job in batch:
                self._stats.stage("queue", now - job.enqueued)
            self._run(batch)
            self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * (time.monotonic() - now)
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
            self._queued = 0
        for job in left:
            _deliver(job, ServiceStopped("the inference service is stopping"))

    def _run(self, batch: list[_Job[P, R]]) -> None:
        self._stats.batch(len(batch), sum(job.examples for job in batch))
        results: Sequence[Any]
        try:
            results = self._process([job.payload for job in batch])
            if len(results) != len(batch):
                raise BatchFailed("the batch returned the wrong number of results")
        except Exception as exc:
            error = exc if isinstance(exc, SealroomError) else None
            results = [error or BatchFailed("the model batch failed")] * len(batch)
        for job, result in zip(batch, results, strict=True):
            if not job.dropped:
                _deliver(job, result)


def _deliver(job: _Job[P, R], result: Any) -> None:
    def settle() -> None:
        if job.future.done():
            return
        if isinstance(result, BaseException):
            job.future.set_exception(result)
        else:
            job.future.set_result(result)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
        job.loop.call_soon_threadsafe(settle)
